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
    lo, hi = draws["a"].quantile([0.025, 0.975])
    assert lo < ff.PlantedLaw().a < hi
    assert draws["params_at_1e+23"].quantile(0.025) < ff.PlantedLaw().optimal_params(1e23) < \
        draws["params_at_1e+23"].quantile(0.975)
    again = ff.bootstrap_isoflops(result.results, n_resamples=300, seed=0, targets=[1e23])
    pd.testing.assert_frame_equal(draws, again)


def test_compare_approaches_and_diagnostics(result):
    table = result.compare_approaches(n_resamples=60, seed=0)
    assert list(table["approach"]) == ["1: envelope of curves", "2: IsoFLOP parabolas", "3: parametric fit"]
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
