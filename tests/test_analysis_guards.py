"""Science the data cannot support is refused or flagged, never fitted quietly (issue 14, item 5)."""

import warnings

import numpy as np
import pandas as pd
import pytest

import flops_fit as ff
from flops_fit import CannotFitError, FitWarning
from flops_fit.frames import prepare_results
from flops_fit.store import SweepStore

LAW = ff.PlantedLaw(noise=0.0)


def law_loss(n, d):
    return LAW.loss(np.asarray(n, float), np.asarray(d, float))


def isoflop_runs(budgets=(1e18, 1e19, 1e20, 1e21), sizes=7):
    """Noise-free runs of the planted law: ``sizes`` sizes over two decades around each budget's optimum."""
    parts = []
    for budget in budgets:
        n = LAW.optimal_params(budget) * np.logspace(-1, 1, sizes)
        parts.append(pd.DataFrame({"budget": budget, "params": n, "tokens": budget / (6 * n)}))
    runs = pd.concat(parts, ignore_index=True)
    runs["loss"] = law_loss(runs["params"], runs["tokens"])
    return runs


def extra_budget(budget, loss, lo=1e6, hi=1e8, sizes=7):
    n = np.geomspace(lo, hi, sizes)
    return pd.DataFrame({"budget": budget, "params": n, "tokens": budget / (6 * n), "loss": loss(n)})


def params_exponent(laws):
    return float(laws.set_index("quantity").loc["params", "exponent"])


# 1. the loss law needs N and D to vary

def test_parametric_refuses_runs_that_all_share_one_d():
    n = np.geomspace(1e7, 1e10, 12)
    runs = pd.DataFrame({"params": n, "tokens": 1e11, "loss": law_loss(n, 1e11)})
    with pytest.raises(CannotFitError, match=r"same tokens D = 1e\+11, so B and beta cannot be determined"):
        ff.fit_parametric(runs)


def test_parametric_refuses_one_n_and_identical_runs():
    d = np.geomspace(1e9, 1e12, 12)
    with pytest.raises(CannotFitError, match="same params N = 1e\\+08, so A and alpha"):
        ff.fit_parametric(pd.DataFrame({"params": 1e8, "tokens": d, "loss": law_loss(1e8, d)}))
    same = pd.DataFrame({"params": [1e8] * 6, "tokens": [1e10] * 6, "loss": [3.0] * 6})
    with pytest.raises(CannotFitError, match="parameter of fit_parametric"):
        ff.fit_parametric(same)


def test_parametric_refuses_too_few_distinct_points():
    n, d = np.array([1e7, 1e8, 1e9] * 3), np.array([1e11, 1e10, 1e9] * 3)  # three runs, each repeated 3 times
    repeats = pd.DataFrame({"run_id": [f"r{i}" for i in range(9)], "params": n, "tokens": d,
                            "loss": law_loss(n, d) * (1 + 0.001 * np.arange(9))})
    with pytest.raises(CannotFitError, match="only 3 distinct \\(params, tokens\\) points"):
        ff.fit_parametric(repeats)


def test_vpnls_refuses_one_d_with_a_clear_error_and_the_pipeline_falls_back():
    n = np.tile(np.geomspace(1e7, 1e9, 5), 2)
    runs = pd.DataFrame({"params": n, "tokens": 1e10, "loss": law_loss(n, 1e10), "budget": np.repeat([1e19, 1e20], 5)})
    with pytest.raises(CannotFitError, match="same tokens D"):
        ff.fit_vpnls(runs)
    with pytest.warns(FitWarning, match="law's shape cannot be fitted"):
        result = ff.Result.from_results(runs)
    assert result.estimator == "parabola"


def test_identifiable_runs_still_recover_the_law_exactly():
    fit = ff.fit_parametric(isoflop_runs()).iloc[0]
    assert fit["a"] == pytest.approx(LAW.a, abs=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        assert ff.fit_vpnls(isoflop_runs())["a"].iloc[0] == pytest.approx(LAW.a, abs=1e-6)


# 2. a budget with no minimum to find

def test_flat_budget_is_flagged_and_left_out_by_the_parabola():
    runs = pd.concat([isoflop_runs(), extra_budget(1e16, lambda n: np.full(len(n), 2.0))], ignore_index=True)
    with pytest.warns(FitWarning, match="budget 1e\\+16: flat: the loss does not change across sizes"):
        optima = ff.fit_isoflops(runs)
    flat = optima.set_index("budget").loc[1e16]
    assert not flat["usable"] and not flat["has_minimum"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        assert params_exponent(ff.fit_power_laws(optima)) == pytest.approx(
            params_exponent(ff.fit_power_laws(ff.fit_isoflops(isoflop_runs()))), abs=1e-12)


@pytest.mark.parametrize("budget", [1e17, 1e22])
def test_flat_budget_does_not_bend_the_default_estimator(budget):
    n = LAW.optimal_params(budget) * np.logspace(-1, 1, 7)
    flat = pd.DataFrame({"budget": budget, "params": n, "tokens": budget / (6 * n), "loss": 3.0})
    with pytest.warns(FitWarning, match="flat: the loss does not change"):
        result = ff.Result.from_results(pd.concat([isoflop_runs(), flat], ignore_index=True))
    assert not result.optima.set_index("budget").loc[budget, "usable"]
    assert params_exponent(result.laws) == pytest.approx(LAW.a, abs=1e-6)


@pytest.mark.parametrize("slope", [0.1, -0.1])
def test_loss_linear_in_log_n_is_flagged_monotone_not_a_crash(slope):
    budget = extra_budget(1e19, lambda n: 3.0 + slope * np.log(n / 1e6))
    with pytest.warns(FitWarning, match="no minimum \\(monotone"):
        optima = ff.fit_isoflops(budget)
    assert not optima["usable"].iloc[0]
    runs = pd.concat([isoflop_runs(), extra_budget(1e22, lambda n: 3.0 + slope * np.log(n / 1e6))],
                     ignore_index=True)
    with pytest.warns(FitWarning, match="budget 1e\\+22: no minimum"):
        result = ff.Result.from_results(runs)
    assert params_exponent(result.laws) == pytest.approx(LAW.a, abs=1e-3)


# 3. FLOP counts do not chain

def test_close_exact_flop_counts_are_not_chained_into_one_budget():
    with pytest.warns(FitWarning, match=r"1e\+18, 1.2e\+18, 1.5e\+18 .* not grouped into one budget"):
        snapped = ff.snap_budgets([1e18, 1.2e18, 1.5e18] * 3)
    assert snapped.tolist() == [1e18, 1.2e18, 1.5e18] * 3


def test_noisy_flops_around_one_budget_still_snap_without_a_warning():
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        snapped = ff.snap_budgets(np.repeat([1e18, 3e18, 1e19], 9) * (1 + 0.02 * rng.standard_normal(27)))
    assert sorted(set(snapped.tolist())) == [1e18, 3e18, 1e19]


# 4. a run listed twice counts once

def test_exact_duplicate_rows_without_run_id_are_dropped_with_a_count():
    runs = isoflop_runs(budgets=(1e19,))
    with pytest.warns(FitWarning, match="dropped 7 row\\(s\\) identical"):
        frame = prepare_results(pd.concat([runs, runs], ignore_index=True))
    assert len(frame) == 7


def test_repeats_with_their_own_run_ids_stay():
    runs = isoflop_runs(budgets=(1e19,))
    twice = pd.concat([runs.assign(run_id=[f"a{i}" for i in range(7)]),
                       runs.assign(run_id=[f"b{i}" for i in range(7)])], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        assert len(prepare_results(twice)) == 14


# 5. our own names in any case

def test_column_names_match_in_any_case():
    runs = isoflop_runs(budgets=(1e19,))
    other = runs.rename(columns={"params": "Params", "tokens": "Tokens", "loss": "Loss", "budget": "Budget"})
    assert ff.load_results(other)[["params", "tokens", "loss", "budget"]].equals(runs[["params", "tokens", "loss",
                                                                                      "budget"]])
    flops = runs.drop(columns="budget").assign(FLOPs=6 * runs["params"] * runs["tokens"]).rename(
        columns={"loss": "LOSS"})
    assert ff.load_results(flops)["budget"].tolist() == [1e19] * 7


def test_our_name_in_two_cases_is_ambiguous_and_reported():
    runs = isoflop_runs(budgets=(1e19,)).rename(columns={"loss": "Loss"}).assign(LOSS=1.0)
    with pytest.raises(ValueError, match="Missing: \\['loss'\\]"):
        ff.load_results(runs)


# 6. a sweep that has not started

def test_sweep_directory_with_nothing_finished_says_so(tmp_path):
    n = np.geomspace(1e6, 1e8, 4)
    plan = pd.DataFrame({"run_id": [f"r{i}" for i in range(4)], "budget": 1e18, "params": n,
                         "tokens": 1e18 / (6 * n), "flops": 1e18})
    SweepStore(tmp_path, writer=True).add_plan(plan)
    with pytest.raises(ValueError, match="Nothing has finished yet in that sweep directory: 4 run\\(s\\) planned, "
                                         "0 completed, 4 still to run"):
        ff.load_results(tmp_path)
    assert len(ff.load_results(tmp_path, completed_only=False)) == 4
