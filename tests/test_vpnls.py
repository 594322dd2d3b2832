"""The default estimator (VPNLS): unbiased where the parabola is not, honest intervals, repeats and their noise."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import flops_fit as ff
from flops_fit.approaches.frontier import FlopsCurve
from flops_fit.examples import GPT
from flops_fit.jobs import repeat_config

BUDGETS = [1e18, 1e19, 1e20, 1e21, 1e22]
SKEWED = ff.PlantedLaw(A=41900, B=410.7, alpha=0.45, beta=0.15, noise=0.0)  # alpha/beta = 3, issue 12's law


@pytest.fixture(scope="module")
def wide_plan():
    return ff.plan_sweep(GPT, "d_model", BUDGETS, size_span=256, multiple_of=16, model_kwargs={"n_layer": 24})


def test_no_bias_where_the_parabola_has_plenty(wide_plan):
    results = ff.run_sweep(wide_plan, mode="mock", law=SKEWED)
    truth = SKEWED.optimal_params(1e24)
    parabola = ff.Result.from_results(results, estimator="parabola")
    vpnls = ff.Result.from_results(results)
    assert vpnls.estimator == "vpnls"
    assert abs(vpnls.predict(1e24)["optimal_params"] / truth - 1) < 1e-6
    assert abs(parabola.predict(1e24)["optimal_params"] / truth - 1) > 0.1  # the bias issue 12 measured
    assert vpnls.exponent("params") == pytest.approx(SKEWED.a, abs=1e-9)
    loss = vpnls.laws.set_index("quantity").loc["loss"]
    assert loss["floor"] == pytest.approx(SKEWED.E, rel=1e-3)
    assert loss["exponent"] == pytest.approx(-SKEWED.alpha * SKEWED.beta / (SKEWED.alpha + SKEWED.beta), rel=1e-3)


def test_no_bias_under_a_convention_that_is_not_proportional_to_n():
    plan = ff.plan_sweep(GPT, "d_model", BUDGETS[:4], flop_convention="6N_non_embedding",
                         model_kwargs={"n_layer": 4, "vocab_size": 4096})
    results = ff.run_sweep(plan, mode="mock", law=ff.PlantedLaw(noise=0.0))
    result = ff.Result.from_results(results)
    law = result.fit.iloc[0]
    assert law["alpha"] == pytest.approx(0.34, rel=1e-6) and law["beta"] == pytest.approx(0.28, rel=1e-6)
    flops = ff.parametric_frontier(result.fit, [1e21], flops=FlopsCurve.from_results(results))
    measured = result.optima.set_index("budget").loc[1e21, "params_opt"]
    assert measured == pytest.approx(flops["params_opt"].iloc[0], rel=1e-6)


def test_intervals_come_from_the_law_and_cover_the_truth():
    law = ff.PlantedLaw(noise=0.005)
    plan = ff.plan_sweep(GPT, "d_model", BUDGETS[:4], model_kwargs={"n_layer": 6})
    result = ff.Result.from_results(ff.run_sweep(plan, mode="mock", law=law, seed=2))
    p = result.predict(1e23)
    assert p["estimator"] == "vpnls"
    assert p["optimal_params_low"] < law.optimal_params(1e23) < p["optimal_params_high"]
    row = result.laws.set_index("quantity").loc["params"]
    assert row["exponent_lo"] < law.a < row["exponent_hi"]
    assert row["dof"] == len(plan) - 3 * 4 - 2  # the budgets' pooled residuals: 3 constants each, 2 exponents
    boot = result.predict(1e23, interval="bootstrap", n_resamples=30, seed=0)
    assert boot["optimal_params_low"] < p["optimal_params"] < boot["optimal_params_high"]


def test_every_output_names_its_estimator(tmp_path):
    plan = ff.plan_sweep(GPT, "d_model", BUDGETS[:4], model_kwargs={"n_layer": 4})
    results = ff.run_sweep(plan, mode="mock", seed=0)
    for estimator in ("vpnls", "parabola"):
        result = ff.Result.from_results(results, estimator=estimator)
        assert result.predict(1e23)["estimator"] == estimator
        assert f"{estimator} extrapolation" in result.chinchilla_table() and estimator in repr(result)
        figures = result.plot()
        assert all(f"{estimator} fit" in fig.layout.title.text for fig in figures.values())
        result.save(tmp_path / estimator)
        assert json.loads((tmp_path / estimator / "result.json").read_text())["estimator"]["name"] == estimator
        again = ff.load(tmp_path / estimator)
        assert again.estimator == estimator and again.predict(1e23) == result.predict(1e23)
    curves = ff.Result.from_results(results).isoflop_curves()
    assert set(curves["budget"]) == set(BUDGETS[:4]) and ff.Result.from_results(
        results, estimator="parabola").isoflop_curves() is None


def test_bad_input_gets_the_usual_errors():
    plan = ff.plan_sweep(GPT, "d_model", BUDGETS[:3], model_kwargs={"n_layer": 4})
    results = ff.run_sweep(plan, mode="mock", seed=0)
    with pytest.raises(ValueError, match="'estimator' parameter of Result.from_results must be one of"):
        ff.Result.from_results(results, estimator="quadratic")
    thin = results.drop(results.index[results["budget"] == 1e19][2:])
    with pytest.raises(ValueError, match=r"'results' parameter of fit_vpnls must be at least 3 distinct model "
                                         r"sizes at every budget.*2 at budget 1e\+19"):
        ff.fit_vpnls(thin)
    with pytest.raises(ValueError, match="'results' parameter of fit_vpnls must be runs at 2 or more compute"):
        ff.fit_vpnls(results[results["budget"] == 1e18])
    with pytest.raises(ValueError, match="'min_points' parameter of fit_vpnls"):
        ff.fit_vpnls(results, min_points=2)
    with pytest.raises(ValueError, match=r"'optima' parameter of vpnls_laws must be the DataFrame returned by "
                                         r"vpnls_optima\(\).*use fit_power_laws"):
        ff.vpnls_laws(ff.fit_isoflops(results))
    with pytest.raises(ValueError, match="'repeats' parameter of plan_sweep must be an integer greater than 0"):
        ff.plan_sweep(GPT, "d_model", BUDGETS[:3], repeats=0)


def test_repeats_measure_the_noise_and_it_enters_the_intervals():
    plan = ff.plan_sweep(GPT, "d_model", BUDGETS[:4], model_kwargs={"n_layer": 4}, repeats=4)
    assert len(plan) == 4 * (9 + 3) and plan["run_id"].is_unique
    repeated = plan[plan["repeat"] > 0]
    assert repeated.groupby("budget")["size"].nunique().eq(1).all()  # one size per budget, its middle one
    results = ff.run_sweep(plan, mode="mock", law=ff.PlantedLaw(noise=0.01), seed=0)
    same = results.merge(repeated[["budget", "size"]].drop_duplicates(), on=["budget", "size"])
    assert same.groupby("budget")["loss"].nunique().eq(4).all()  # each repeat its own noise
    fit = ff.Result.from_results(results).fit.iloc[0]
    assert fit["noise_dof"] == 4 * 3 and 0.005 < fit["noise_sd"] < 0.02
    assert fit["sigma"] == max(fit["noise_sd"], fit["residual_sd"])

    # runs that do not follow the law's shape scatter about it more than repeats do among themselves
    warped = results.assign(loss=results["loss"] * (1 + 0.05 * np.sin(3 * np.log(results["params"]))))
    result = ff.Result.from_results(warped)
    found = result.diagnostics(emit=False)
    assert "scatter larger than the noise" in found["check"].tolist()
    assert result.fit.iloc[0]["sigma"] == result.fit.iloc[0]["residual_sd"]
    assert "scatter larger than the noise" not in ff.Result.from_results(results).diagnostics(emit=False)["check"].tolist()


def test_a_repeated_training_run_gets_its_own_seed():
    config = ff.TrainConfig(seed=7)
    assert repeat_config(config, {"repeat": 0}).seed == 7
    assert repeat_config(config, {"repeat": 2}).seed == 9
    assert repeat_config(config, {}).seed == 7 and repeat_config(config, {"repeat": pd.NA}).seed == 7


def test_stage_functions_compose():
    plan = ff.plan_sweep(GPT, "d_model", BUDGETS[:4], model_kwargs={"n_layer": 4})
    results = ff.run_sweep(plan, mode="mock", seed=1)
    fit = ff.fit_vpnls(results)
    optima = ff.vpnls_optima(fit, results)
    laws = ff.vpnls_laws(optima)
    assert list(laws["quantity"]) == ["params", "tokens", "loss"] and optima["usable"].all()
    draws = ff.bootstrap_vpnls(results, n_resamples=5, seed=0, targets=[1e23])
    assert set(draws["resample"]) == {1, 2, 3, 4, 5} and set(draws["quantity"]) == {"a", "b", "params", "tokens"}


def test_what_review_found_at_the_edges(tmp_path):
    kwargs = {"model_kwargs": {"n_layer": 4}}
    # repeats that agree exactly (no noise) are not a division by zero
    exact = ff.find_optimal(GPT, "d_model", "d", "l", compute_budgets=BUDGETS[:3], repeats=2,
                            law=ff.PlantedLaw(noise=0.0), **kwargs)
    assert exact.fit.iloc[0]["noise_dof"] == 3 and np.isfinite(exact.exponent("params"))

    # losses that do not curve (flat plus noise) fit or say why, but do not crash
    plan = ff.plan_sweep(GPT, "d_model", BUDGETS[:3], points_per_budget=5, **kwargs)
    flat = plan.assign(loss=3.0 * (1 + 0.01 * np.random.default_rng(0).standard_normal(len(plan))), status="completed")
    with pytest.warns(ff.FitWarning):
        ff.Result.from_results(flat)

    # a 'flops' column holding the nominal budget with rounded token counts is still C = 6ND
    results = ff.run_sweep(ff.plan_sweep(GPT, "d_model", BUDGETS[:4], **kwargs), mode="mock", seed=0)
    rounded = results.assign(tokens=results["tokens"].map(lambda t: float(f"{t:.2g}")), flops=results["budget"])
    assert ff.Result.from_results(rounded).exponent("params") == pytest.approx(
        ff.Result.from_results(results).exponent("params"), abs=0.01)

    # a saved result reloads under another estimator when asked, after its check
    ff.Result.from_results(results).save(tmp_path / "r")
    assert ff.load(tmp_path / "r", estimator="parabola").estimator == "parabola"
    assert ff.load(tmp_path / "r", extrapolate_to=None).estimator == "vpnls"

    # curves only for the budgets that were fitted; one budget is the parabola's, and says so
    top = results[results["budget"] == BUDGETS[3]].nsmallest(2, "params")  # a budget 2 runs into its sizes
    partial = pd.concat([results[results["budget"] != BUDGETS[3]], top])
    with pytest.warns(ff.FitWarning, match="fewer than 3"):
        shown = ff.Result.from_results(partial)
    assert set(shown.isoflop_curves()["budget"]) == set(BUDGETS[:3])
    with pytest.warns(ff.FitWarning, match="its minimum is the parabola's"):
        one = ff.Result.from_results(results[results["budget"] == BUDGETS[0]])
    assert one.estimator == "parabola" and "parabola fit" in one.chinchilla_table()

    # two budgets of three sizes: no interval, and a warning that says so
    two = ff.run_sweep(ff.plan_sweep(GPT, "d_model", BUDGETS[:2], points_per_budget=3, **kwargs), mode="mock")
    with pytest.warns(ff.FitWarning, match="no degrees of freedom left"):
        ff.Result.from_results(two)
