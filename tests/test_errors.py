"""Bad input gets a clear error at the boundary: it names the parameter, what was expected and the fix."""

import numpy as np
import pandas as pd
import pytest

from flops_fit import (
    PlantedLaw, find_optimal, fit_isoflops, fit_power_laws, load_results, plan_sweep, run_sweep,
)
from flops_fit.examples import GPT

from .conftest import Stack

SMALL = {"vocab_size": 256, "n_layer": 2}


class NoCount:
    def __init__(self, width: int) -> None:
        self.width = width


class Picky:
    """Accepts only even widths below 1000."""

    def __init__(self, width: int) -> None:
        if width % 2 or width >= 1000:
            raise ValueError("width must be even and below 1000")
        self.width = width

    def num_params(self) -> int:
        return self.width**2


class AlwaysFails:
    def __init__(self, width: int) -> None:
        raise RuntimeError("cannot build anything")

    def num_params(self) -> int:
        return 1


def test_factory_without_num_params():
    with pytest.raises(TypeError, match=r"num_params\(\).*NoCount.*Add `def num_params"):
        plan_sweep(NoCount, "width", [1e15])


def test_num_params_returning_garbage():
    class Bad(Picky):
        def num_params(self):
            return "many"

    with pytest.raises(TypeError, match="must return a non-negative integer. Got 'many'"):
        plan_sweep(Bad, "width", [1e15])


def test_size_knob_the_factory_rejects():
    with pytest.raises(ValueError, match=r"'model_size_param' parameter of plan_sweep .* Got 'd_modle'"):
        plan_sweep(GPT, "d_modle", [1e15], model_kwargs=SMALL)


def test_factory_that_rejects_every_value():
    with pytest.raises(ValueError, match="rejected every value of 'width'.*RuntimeError: cannot build anything"):
        plan_sweep(AlwaysFails, "width", [1e15])


def test_knob_that_does_not_change_size():
    with pytest.raises(ValueError, match="a knob that changes num_params"):
        plan_sweep(GPT, "n_head", [1e15], model_kwargs={"vocab_size": 256, "d_model": 64})


def test_factory_that_rejects_some_values_is_searched_around():
    plan = plan_sweep(Picky, "width", [1e9], points_per_budget=7)
    assert (plan["size"] % 2 == 0).all() and (plan["size"] < 1000).all()


def test_size_values_with_a_rejected_value():
    with pytest.raises(ValueError, match=r"'size_values' parameter.*3 was rejected with ValueError"):
        plan_sweep(Picky, "width", [1e9], size_values=[2, 3, 4, 8, 16, 32, 64, 128])


@pytest.mark.parametrize("budgets,match", [
    ([1e15, -1e16], "positive, finite"),
    ([0, 1e16], "positive, finite"),
    ([1e15, float("inf")], "positive, finite"),
    ([1e15, 1e16, 1e15], "duplicate budget"),
    ([], "non-empty"),
    ("1e15", "list of positive FLOP counts"),
    (["a lot"], "list of positive FLOP counts"),
])
def test_bad_budgets(budgets, match):
    with pytest.raises(ValueError, match=r"'compute_budgets' parameter of plan_sweep.*" + match):
        plan_sweep(GPT, "d_model", budgets, model_kwargs=SMALL)


def test_find_optimal_without_budgets():
    with pytest.raises(ValueError, match="'compute_budgets' parameter of find_optimal"):
        find_optimal(GPT, "d_model", dataset="d", loss_fn="l")


@pytest.mark.parametrize("kwargs,param", [
    ({"points_per_budget": 2}, "points_per_budget"),
    ({"points_per_budget": 7.5}, "points_per_budget"),
    ({"tokens_per_param": 0}, "tokens_per_param"),
    ({"size_span": 1}, "size_span"),
    ({"multiple_of": 0}, "multiple_of"),
    ({"size_range": (10, 5)}, "size_range"),
    ({"size_values": [8, -1]}, "size_values"),
    ({"size_values": [8, 16], "size_range": (8, 16)}, "size_range"),
    ({"flop_convention": "7N"}, "flop_convention"),
])
def test_bad_planning_options(kwargs, param):
    with pytest.raises(ValueError, match=f"'{param}' parameter of plan_sweep"):
        plan_sweep(GPT, "d_model", [1e15], model_kwargs=SMALL, **kwargs)


def test_coarse_knob_with_too_few_sizes():
    with pytest.raises(ValueError, match="cannot serve"):
        plan_sweep(Stack, "depth", [1e11], size_range=(1, 3))


def test_run_sweep_bad_inputs(gpt_plan):
    with pytest.raises(ValueError, match=r"'mode' parameter of run_sweep must be one of \['mock', 'local'\]"):
        run_sweep(gpt_plan, mode="cloud")
    with pytest.raises(ValueError, match="'plan' parameter of run_sweep.*Missing: \\['tokens'\\]"):
        run_sweep(gpt_plan.drop(columns="tokens"))
    with pytest.raises(ValueError, match="'plan' parameter.*unique run_id"):
        run_sweep(pd.concat([gpt_plan, gpt_plan.head(1)]))
    with pytest.raises(ValueError, match="'law' parameter of run_sweep must be a PlantedLaw"):
        run_sweep(gpt_plan, law={"E": 1.7})
    with pytest.raises(ValueError, match="'seed' parameter"):
        run_sweep(gpt_plan, seed=-1)
    with pytest.raises(ValueError, match="'plan' parameter.*DataFrame"):
        run_sweep([1, 2, 3])
    held = find_optimal(GPT, "d_model", compute_budgets=[1e17, 1e18], model_kwargs={"n_layer": 2})  # a SweepPlan
    with pytest.raises(ValueError, match=r"Got 'SweepPlan' instead\. A SweepPlan holds its plan as \.plan: pass "
                                         r"run_sweep\(plan\.plan, \.\.\.\), or call plan\.run\(mode=\.\.\.\)"):
        run_sweep(held, mode="mock")


def test_results_missing_columns():
    frame = pd.DataFrame({"params": [1e6, 2e6, 4e6], "loss": [3.0, 2.9, 3.1]})
    with pytest.raises(ValueError, match=r"'results' parameter of fit_isoflops.*Missing: \['tokens', 'budget \(or flops\)'\]"):
        fit_isoflops(frame)
    with pytest.raises(ValueError, match=r"'results' parameter of load_results.*Missing"):
        load_results(frame)


def test_fewer_than_three_points_at_a_budget():
    params = np.array([1e6, 2e6, 4e6, 1e7, 2e7])
    frame = pd.DataFrame({"params": params, "tokens": 1e18 / (6 * params), "loss": [3.1, 3.0, 3.05, 3.2, 3.3],
                          "budget": [1e18, 1e18, 1e18, 1e19, 1e19]})
    with pytest.raises(ValueError, match=r"at least 3 distinct model sizes.*2 at budget 1e\+19.*drop it"):
        fit_isoflops(frame)


def test_fit_power_laws_needs_two_usable_budgets():
    optima = pd.DataFrame({"budget": [1e18], "params_opt": [1e7], "tokens_opt": [1.6e10], "loss_opt": [3.0]})
    with pytest.raises(ValueError, match="at least 2 budgets with a located minimum"):
        fit_power_laws(optima)
    with pytest.raises(ValueError, match="'optima' parameter of fit_power_laws.*Missing"):
        fit_power_laws(optima.drop(columns="loss_opt"))


def test_load_results_bad_sources(tmp_path):
    with pytest.raises(ValueError, match="'source' parameter of load_results.*existing"):
        load_results(tmp_path / "nope.csv")
    (tmp_path / "runs.txt").write_text("x")
    with pytest.raises(ValueError, match="'source' parameter of load_results.*ending in"):
        load_results(tmp_path / "runs.txt")
    with pytest.raises(ValueError, match="'columns' parameter of load_results"):
        load_results(pd.DataFrame({"a": [1]}), columns={"n": "params"})


def test_no_usable_rows():
    frame = pd.DataFrame({"params": [1e6], "tokens": [1e9], "loss": [float("nan")], "budget": [1e18]})
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="at least one completed run"):
        fit_isoflops(frame)


def test_bad_law_value():
    with pytest.raises(ValueError, match="PlantedLaw.beta must be positive"):
        PlantedLaw(beta=-0.1)


def test_bad_model_kwargs_key_is_blamed_on_model_kwargs():
    with pytest.raises(ValueError, match=r"'model_kwargs' parameter of plan_sweep.*rejected \['foo'\]"):
        plan_sweep(GPT, "d_model", [1e15], model_kwargs={"foo": 1, "n_layer": 2})
    with pytest.raises(ValueError, match=r"'model_size_param' parameter of plan_sweep"):
        plan_sweep(GPT, "d_modle", [1e15], model_kwargs={"n_layer": 2})


def test_knob_inside_model_kwargs():
    with pytest.raises(ValueError, match=r"'model_kwargs' parameter of plan_sweep must be free of the size knob"):
        plan_sweep(GPT, "d_model", [1e15], model_kwargs={"d_model": 64})


def test_num_params_as_a_property():
    class Prop(Picky):
        num_params = property(lambda self: self.width)

    with pytest.raises(TypeError, match="whose num_params is a int, not a method"):
        plan_sweep(Prop, "width", [1e9])


def test_boolean_budget_is_refused():
    with pytest.raises(ValueError, match="True is not a number"):
        plan_sweep(GPT, "d_model", [True, 1e15], model_kwargs=SMALL)


def test_find_optimal_checks_everything_before_planning():
    common = dict(dataset="d", loss_fn="l", model_kwargs=SMALL)
    with pytest.raises(ValueError, match="at least 2 budgets"):
        find_optimal(GPT, "d_model", compute_budgets=[1e15], **common)
    for kwargs, param in [({"mode": "real"}, "mode"), ({"seed": -3}, "seed"), ({"law": 1.69}, "law"),
                          ({"extrapolate_to": [-1]}, "extrapolate_to")]:
        with pytest.raises(ValueError, match=f"'{param}' parameter of find_optimal"):
            find_optimal(GPT, "d_model", compute_budgets=[1e15, 1e16], train=False, **kwargs, **common)


def test_fit_power_laws_checks_values():
    optima = pd.DataFrame({"budget": [1e18, 1e19, 1e20], "params_opt": [1e7, np.nan, 1e8],
                           "tokens_opt": [1.6e10, 5e10, 1.6e11], "loss_opt": [3.0, 2.8, 2.6]})
    with pytest.raises(ValueError, match="positive, finite numbers"):
        fit_power_laws(optima)
    dupes = optima.assign(params_opt=[1e7, 3e7, 1e8], budget=[1e18, 1e18, 1e20])
    with pytest.raises(ValueError, match="one row per budget"):
        fit_power_laws(dupes)
    with pytest.raises(ValueError, match="'confidence' parameter of fit_power_laws"):
        fit_power_laws(dupes, confidence="0.9")


def test_result_accessors_reject_bad_arguments(tmp_path):
    result = find_optimal(GPT, "d_model", dataset="d", loss_fn="l", compute_budgets=[1e15, 1e16, 1e17],
                          model_kwargs=SMALL)
    with pytest.raises(ValueError, match="'quantity' parameter of Result.exponent"):
        result.exponent("Params")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="'html_dir' parameter of Result.plot"):
        result.plot(html_dir=tmp_path / "file")
    with pytest.raises(ValueError, match="'compute' parameter of Result.predict"):
        result.predict([1e21, 1e22])
