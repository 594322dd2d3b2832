"""strategy="adaptive": a small start, brackets found by measurement, refinement per FLOP, a stop, resume."""

import concurrent.futures as cf
import math
import warnings

import pytest

import flops_fit as ff
from flops_fit.examples import GPT
from flops_fit.planning.adaptive import REASONS

BUDGETS = [1e17, 1e18, 1e19]
SMALL = {"model_kwargs": {"n_layer": 4}}


def adaptive(seed=0, **options):
    events = options.pop("callbacks", [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ff.FitWarning)
        result = ff.find_optimal(GPT, "d_model", "mock", "mock", BUDGETS, mode="mock", seed=seed,
                                 strategy="adaptive", callbacks=events, **{**SMALL, **options})
    return result


def bracketed(result, budget):
    runs = result.results[(result.results["budget"] == budget) & (result.results["status"] == "completed")]
    means = runs.groupby("params")["loss"].mean().sort_index().to_numpy()
    return 0 < means.argmin() < len(means) - 1


def test_the_start_design_is_three_sizes_about_the_prior():
    plan = ff.plan_sweep(GPT, "d_model", BUDGETS, strategy="adaptive", **SMALL)
    assert plan.groupby("budget").size().tolist() == [3, 3, 3]
    assert (plan["reason"] == "new budget").all()
    for budget, group in plan.groupby("budget"):
        prior = math.sqrt(budget / (6 * 20))  # N at 20 tokens per parameter
        params = sorted(group["params"])
        assert params[0] < prior < params[2]
        assert 5 < params[2] / params[0] < 200  # about the fixed design's span of 100x
    # a fixed plan of the same budgets says why each run is there too
    assert (ff.plan_sweep(GPT, "d_model", BUDGETS, **SMALL)["reason"] == "grid").all()


def test_an_adaptive_sweep_brackets_every_budget_and_says_why_it_stopped():
    events = []
    result = adaptive(parallel=3, target_precision=0.2, callbacks=[events.append])
    runs = result.results
    assert set(runs["reason"]) <= set(REASONS) and "refine" in set(runs["reason"])
    assert result.optima["usable"].all() and len(result.optima) >= 3
    assert all(bracketed(result, b) for b in BUDGETS)
    steps = [e for e in events if e["type"] == "adaptive"]
    assert steps[-1]["stop"] == "target precision reached" and steps[-1]["precision"] <= 0.2
    assert all(len(e["proposed"]) <= 3 or set(e["reasons"]) == {"new budget"} for e in steps)
    p = result.predict(100 * max(BUDGETS))
    assert (p["optimal_params_high"] - p["optimal_params_low"]) / (2 * p["optimal_params"]) <= 0.2
    # the default cap is what the fixed design would spend
    assert runs["flops"].sum() <= 9 * sum(BUDGETS) * 1.001
    # recorded in the results (and so in the store) with the reason
    assert runs.loc[runs["reason"] == "refine", "status"].eq("completed").all()


@pytest.mark.parametrize("tokens_per_param", [0.2, 2000.0])
def test_a_prior_ten_times_off_is_bracketed_by_measurement(tokens_per_param):
    """The prior's N_opt about 10x off (its D/N 100x): adaptive walks to the minima (bench_adaptive.py compares)."""
    result = adaptive(tokens_per_param=tokens_per_param, parallel=3, target_precision=0.3)
    side = "bracket left" if tokens_per_param < 20 else "bracket right"
    assert side in set(result.results["reason"])
    assert all(bracketed(result, b) for b in BUDGETS) and result.optima["usable"].all()


def test_the_compute_cap_stops_it_and_is_never_exceeded():
    start = ff.plan_sweep(GPT, "d_model", BUDGETS, strategy="adaptive", **SMALL)["flops"].sum()
    events = []
    result = adaptive(max_compute=start * 1.05, target_precision=0.01, callbacks=[events.append])
    assert result.results["flops"].sum() <= start * 1.05
    stop = [e for e in events if e["type"] == "adaptive"][-1]["stop"]
    assert "max_compute" in stop


def test_a_restarted_sweep_continues_and_retrains_nothing(tmp_path):
    store = tmp_path / "sweep"
    first = []
    start = ff.plan_sweep(GPT, "d_model", BUDGETS, strategy="adaptive", **SMALL)["flops"].sum()
    adaptive(store=store, parallel=2, max_compute=start * 1.3, target_precision=0.05, callbacks=[first.append])
    stored = ff.SweepStore(store)
    assert stored.spec().strategy == "adaptive" and stored.spec().max_compute == pytest.approx(start * 1.3)
    assert set(stored.plan()["reason"]) <= set(REASONS) and "refine" in set(stored.plan()["reason"])
    records = stored.finished()
    assert "reason" in records.columns and len(records) == len(stored.plan())
    # go on with a larger cap: what finished is reused, only new runs start
    again = []
    result = adaptive(store=store, parallel=2, max_compute=start * 2, target_precision=0.05,
                      callbacks=[again.append])
    started = {e["run_id"] for e in again if e["type"] == "run_start"}
    assert started and not started & set(records["run_id"])
    assert len(result.results) == len(ff.SweepStore(store).plan()) > len(records)
    # and once more with nothing left to add: nothing runs
    last = []
    adaptive(store=store, parallel=2, max_compute=start * 2, target_precision=0.05, callbacks=[last.append])
    assert not [e for e in last if e["type"] == "run_start"]


def test_an_adaptive_sweep_resumed_with_other_settings_is_refused(tmp_path):
    store = tmp_path / "sweep"
    adaptive(store=store, target_precision=0.4)
    with pytest.raises(ValueError, match=r"'spec' parameter of run_sweep.*tokens_per_param"):
        adaptive(store=store, target_precision=0.4, tokens_per_param=40)


def test_batches_keep_an_executor_busy():
    with cf.ThreadPoolExecutor(2) as pool:
        events = []
        result = adaptive(executor=pool, parallel=2, target_precision=0.3, callbacks=[events.append])
    assert result.optima["usable"].all()
    assert any(len(e["proposed"]) == 2 for e in events if e["type"] == "adaptive")


@pytest.mark.parametrize("option, value, words", [
    ("target_precision", 0, "strictly between 0 and 1"),
    ("target_precision", 1.0, "strictly between 0 and 1"),
    ("target_precision", "5%", "strictly between 0 and 1"),
    ("parallel", 0, "'parallel' parameter"),
    ("strategy", "greedy", "one of \\['fixed', 'adaptive'\\]"),
    ("max_compute", 1e10, "'max_compute' parameter.*at least one run"),
    ("max_compute", 2e17, "'max_compute' parameter.*start design"),
])
def test_bad_adaptive_settings_are_named(option, value, words):
    with pytest.raises(ValueError, match=words):
        ff.plan_sweep(GPT, "d_model", BUDGETS, **SMALL, **{"strategy": "adaptive", option: value})


def test_run_sweep_runs_an_adaptive_plan_by_its_spec():
    spec = ff.PlanSpec(strategy="adaptive", target_precision=0.3, parallel=3, model_kwargs={"n_layer": 4})
    plan = ff.plan_sweep(GPT, "d_model", BUDGETS, spec=spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ff.FitWarning)
        results = ff.run_sweep(plan, GPT, mode="mock", spec=spec)
    assert len(results) > len(plan) and set(results["reason"]) <= set(REASONS)
    with pytest.raises(ValueError, match="'model_cls' parameter of run_sweep"):
        ff.run_sweep(plan, mode="mock", spec=spec)
    other = ff.plan_sweep(GPT, "d_model", BUDGETS, spec=spec, flop_convention="6N_non_embedding")
    with pytest.raises(ValueError, match="'plan' parameter of run_sweep"):
        ff.run_sweep(other, GPT, mode="mock", spec=spec)


def test_the_sweep_plan_says_it_is_adaptive():
    sweep = ff.find_optimal(GPT, "d_model", compute_budgets=BUDGETS, strategy="adaptive", train=False, **SMALL)
    assert sweep.adaptive and "adaptive: a start design of 9 runs" in repr(sweep)
    assert "until N_opt at 1.00e+21 FLOPs is known within +-10%" in repr(sweep)  # the one formatter's FLOPs
