"""Approaches 1 and 3, bootstrap intervals and diagnostics."""

import numpy as np
import pandas as pd
import pytest

import flops_fit as ff
from flops_fit.examples import GPT

from .conftest import BUDGETS


@pytest.fixture(scope="module")
def result():
    return ff.find_optimal(GPT, "d_model", "d", "l", compute_budgets=BUDGETS, seed=0, model_kwargs={"n_layer": 4})


def grid_runs(law, noise=0.0, seed=0):
    n, d = np.meshgrid(np.geomspace(1e7, 1e10, 9), np.geomspace(1e9, 1e12, 9))
    runs = pd.DataFrame({"params": n.ravel(), "tokens": d.ravel()})
    rng = np.random.default_rng(seed)
    runs["loss"] = law.loss(runs["params"].to_numpy(), runs["tokens"].to_numpy()) * (
        1 + noise * rng.standard_normal(len(runs)))
    return runs


@pytest.mark.parametrize("law", [ff.PlantedLaw(), ff.PlantedLaw(E=2.0, A=300, B=900, alpha=0.4, beta=0.3)])
def test_parametric_recovers_an_exact_law(law):
    fit = ff.fit_parametric(grid_runs(law)).iloc[0]
    for name in ("E", "alpha", "beta"):
        assert fit[name] == pytest.approx(getattr(law, name), rel=1e-3)
    assert fit["a"] == pytest.approx(law.a, abs=1e-3)
    frontier = ff.parametric_frontier(ff.fit_parametric(grid_runs(law)), [1e21])
    assert frontier["params_opt"].iloc[0] == pytest.approx(law.optimal_params(1e21), rel=0.01)


def test_parametric_bootstrap_is_seeded_and_covers():
    law = ff.PlantedLaw()
    runs = grid_runs(law, noise=0.005)
    a = ff.bootstrap_parametric(runs, n_resamples=50, seed=1)
    b = ff.bootstrap_parametric(runs, n_resamples=50, seed=1)
    pd.testing.assert_frame_equal(a, b)
    lo, hi = a["a"].quantile([0.025, 0.975])
    assert lo < law.a < hi and hi - lo < 0.1


def test_envelope_recovers_the_exponent(result):
    optima = ff.fit_envelope(result.curves, result.results)
    assert optima["usable"].sum() >= 5
    laws = ff.fit_power_laws(optima).set_index("quantity")
    assert laws.loc["params", "exponent"] == pytest.approx(ff.PlantedLaw().a, abs=0.03)


def test_envelope_needs_params():
    with pytest.raises(ValueError, match="'curves' parameter of fit_envelope.*'params' column"):
        ff.fit_envelope(pd.DataFrame({"run_id": ["a"], "tokens": [1], "flops": [1.0], "loss": [1.0]}))


def test_isoflop_bootstrap(result):
    draws = ff.bootstrap_isoflops(result.results, n_resamples=300, seed=0, targets=[1e23])
    assert list(draws.columns) == ["approach", "resample", "quantity", "target", "value"]
    assert draws["resample"].min() >= 1 and set(draws["quantity"]) == {"a", "b", "params", "tokens"}
    lo, hi = draws.loc[draws["quantity"] == "a", "value"].quantile([0.025, 0.975])
    assert lo < ff.PlantedLaw().a < hi
    n_opt = draws.loc[(draws["quantity"] == "params") & (draws["target"] == 1e23), "value"]
    assert n_opt.quantile(0.025) < ff.PlantedLaw().optimal_params(1e23) < n_opt.quantile(0.975)
    again = ff.bootstrap_isoflops(result.results, n_resamples=300, seed=0, targets=[1e23])
    pd.testing.assert_frame_equal(draws, again)


def test_compare_approaches_and_diagnostics(result):
    table = result.compare_approaches(n_resamples=60, seed=0)
    assert list(table["approach"]) == ["1: envelope of curves", "2: IsoFLOP parabolas",
                                       "2b: IsoFLOP curves in the law's shape (vpnls)", "3: parametric fit"]
    assert (table["a_low"] <= table["a"]).all() and (table["a"] <= table["a_high"]).all()
    assert result.diagnostics(table, emit=False).empty  # a clean mock sweep raises nothing


def test_diagnostics_find_problems():
    frames = []
    for budget, centre in [(1e18, 1e7), (1e19, 3e7), (1e20, 1e8)]:
        n = np.geomspace(centre / 10, centre * 10, 4)
        frames.append(pd.DataFrame({"params": n, "tokens": budget / (3 * n), "budget": budget,
                                    "loss": 2 + 0.1 * (np.log(n / centre)) ** 2}))
    result = ff.Result.from_results(pd.concat(frames), extrapolate_to=[1e24])
    with pytest.warns(ff.FitWarning, match="too few points"):
        found = result.diagnostics()
    checks = set(found["check"])
    assert {"too few points", "extrapolation far beyond the data"} <= checks
    comparison = pd.DataFrame({"approach": ["x", "y"], "a_low": [0.40, 0.50], "a_high": [0.45, 0.55]})
    assert "approaches disagree" in set(result.diagnostics(comparison, emit=False)["check"])


def test_flat_curve_is_diagnosed():
    rng = np.random.default_rng(0)
    frames = []
    for budget, centre in [(1e18, 1e7), (1e19, 3e7), (1e20, 1e8)]:
        n = np.geomspace(centre / 1.5, centre * 1.5, 9)
        frames.append(pd.DataFrame({"params": n, "tokens": budget / (6 * n), "budget": budget,
                                    "loss": 2 + 0.001 * np.log(n / centre) ** 2 + 0.01 * rng.standard_normal(9)}))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optima = ff.fit_isoflops(pd.concat(frames))
    found = ff.diagnose(optima, pd.DataFrame(), emit=False)
    assert "curve too flat" in set(found["check"]) or "minimum not located" in set(found["check"])


def test_all_approaches_honour_the_flop_convention():
    """Under 6N_non_embedding, C = 6 N_ne D is not proportional to N: all three approaches must find the
    optimum the planted law has under that convention, not the 6N one."""
    law = ff.PlantedLaw(noise=0.0)
    result = ff.find_optimal(GPT, "d_model", "d", "l", compute_budgets=BUDGETS, law=law, seed=0,
                             model_kwargs={"n_layer": 4}, flop_convention="6N_non_embedding", extrapolate_to=[1e21])
    table = result.compare_approaches(n_resamples=10, seed=0).set_index("approach")
    assert (table["reason"] == "").all()
    # the truth: the size that minimises L(N, C / (6 N_ne)) at C = 1e21, over real GPT widths
    from flops_fit.planning.sizes import build_meta

    widths = np.arange(2048, 12288, 64)
    built = [build_meta(GPT, "d_model", int(d), {"n_layer": 4}) for d in widths]
    n = np.array([m.num_params() for m in built], float)
    n_ne = np.array([m.num_params(non_embedding=True) for m in built], float)
    loss = law.loss(n, 1e21 / (6 * n_ne))
    i = int(np.argmin(loss))
    c2, c1, _ = np.polyfit(np.log(n[i - 2:i + 3]), loss[i - 2:i + 3], 2)
    truth = float(np.exp(-c1 / (2 * c2)))
    assert abs(truth / law.optimal_params(1e21) - 1) > 0.04  # the 6N answer would be wrong here
    for approach, row in table.iterrows():
        assert row["params"] == pytest.approx(truth, rel=0.03), approach
    assert table["a"].max() - table["a"].min() < 0.015


def test_an_approach_that_cannot_run_is_a_row_with_its_reason(result):
    without_curves = ff.Result.from_results(result.results, extrapolate_to=result.targets)
    table = without_curves.compare_approaches(n_resamples=5, seed=0).set_index("approach")
    assert "training curves" in table.loc["1: envelope of curves", "reason"]
    assert table.loc["1: envelope of curves", "resamples"] == 0 and np.isnan(table.loc["1: envelope of curves", "a"])
    assert (table.loc[["2: IsoFLOP parabolas", "3: parametric fit"], "reason"] == "").all()


def test_a_bug_in_an_approach_is_raised_not_swallowed(result, monkeypatch):
    from flops_fit.approaches import envelope

    def broken(*args, **kwargs):
        raise ValueError("a bug, not a lack of data")

    monkeypatch.setattr(envelope, "envelope_estimates", broken)
    with pytest.raises(ValueError, match="a bug, not a lack of data"):
        result.compare_approaches(n_resamples=5, seed=0)


def test_every_approach_answers_in_the_same_long_frame(result):
    estimates, reasons = result.estimates(n_resamples=4, seed=0)
    assert reasons == {} and list(estimates.columns) == ["approach", "resample", "quantity", "target", "value"]
    for _, own in estimates.groupby("approach"):
        assert set(own["resample"]) == {0, 1, 2, 3, 4}
        assert set(own["quantity"]) == {"a", "b", "params", "tokens"}
        assert set(own["target"].dropna()) == {max(result.targets)}


def test_a_budget_still_running_does_not_stop_the_comparison(result):
    thin = result.results.drop(result.results.index[(result.results["budget"] == 1e21)][2:])  # 2 sizes done
    with pytest.warns(ff.FitWarning, match="fewer than 3"):
        partial = ff.Result.from_results(thin, curves=result.curves, extrapolate_to=result.targets,
                                         estimator="parabola")
    table = partial.compare_approaches(n_resamples=5, seed=0).set_index("approach")
    assert table.loc["2: IsoFLOP parabolas", "a"] == pytest.approx(partial.exponent("params"))
