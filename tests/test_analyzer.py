import warnings

import numpy as np
import pandas as pd
import pytest

from flops_fit import FitWarning, PlantedLaw, fit_isoflops, fit_power_laws, load_results, run_sweep, snap_budgets
from flops_fit.approaches.laws import predict_from_laws


def parabola_frame(budget=1e18, centre=1e7, n=7, curvature=0.1, lo=0.1, hi=10.0):
    params = np.geomspace(centre * lo, centre * hi, n)
    return pd.DataFrame({"params": params, "tokens": budget / (6 * params), "budget": budget,
                         "loss": 2 + curvature * (np.log(params) - np.log(centre)) ** 2})


def test_vertex_of_an_exact_parabola():
    optima = fit_isoflops(parabola_frame())
    row = optima.iloc[0]
    assert row["params_opt"] == pytest.approx(1e7, rel=1e-9)
    assert row["tokens_opt"] == pytest.approx(1e18 / 6e7, rel=1e-9)
    assert row["loss_opt"] == pytest.approx(2.0)
    assert row["inside"] and row["usable"] and row["flag"] == ""


def test_exact_planted_law_is_recovered(gpt_plan):
    law = PlantedLaw(noise=0.0)
    laws = fit_power_laws(fit_isoflops(run_sweep(gpt_plan, mode="mock", law=law))).set_index("quantity")
    assert laws.loc["params", "exponent"] == pytest.approx(law.a, abs=0.003)
    assert laws.loc["tokens", "exponent"] == pytest.approx(law.b, abs=0.003)
    assert laws.loc["params", "exponent"] + laws.loc["tokens", "exponent"] == pytest.approx(1.0, abs=1e-6)


def test_noisy_planted_law_is_recovered_on_most_seeds(gpt_plan):
    law = PlantedLaw()
    errors = []
    for seed in range(10):
        laws = fit_power_laws(fit_isoflops(run_sweep(gpt_plan, mode="mock", law=law, seed=seed)))
        errors.append(abs(laws.set_index("quantity").loc["params", "exponent"] - law.a))
    assert np.median(errors) < 0.006
    assert max(errors) < 0.03


def test_loss_extrapolation_respects_the_floor(gpt_plan):
    law = PlantedLaw(noise=0.0)
    laws = fit_power_laws(fit_isoflops(run_sweep(gpt_plan, mode="mock", law=law)))
    for compute in (1e23, 1e25):
        predicted = predict_from_laws(laws, compute)["expected_loss"]
        truth = law.loss(law.optimal_params(compute), law.optimal_tokens(compute))
        assert predicted == pytest.approx(truth, rel=0.01)
        assert predicted > law.E


def test_vertex_outside_is_flagged_and_left_out():
    frames = [parabola_frame(budget=b, centre=c) for b, c in [(1e18, 1e7), (1e19, 3e7), (1e20, 1e8)]]
    frames.append(parabola_frame(budget=1e21, centre=1e9, lo=2.0, hi=40.0))  # minimum below the sampled sizes
    with pytest.warns(FitWarning, match="outside the sampled sizes"):
        optima = fit_isoflops(pd.concat(frames))
    assert optima["usable"].tolist() == [True, True, True, False]
    with pytest.warns(FitWarning, match="left out budget"):
        laws = fit_power_laws(optima)
    assert laws["n_budgets"].iloc[0] == 3


def test_curve_without_minimum_is_flagged():
    frame = parabola_frame(curvature=-0.1)
    with pytest.warns(FitWarning, match="no minimum"):
        optima = fit_isoflops(frame)
    assert not optima["has_minimum"].iloc[0] and not optima["usable"].iloc[0]


def test_flops_are_snapped_to_budgets():
    rng = np.random.default_rng(0)
    frame = pd.concat([parabola_frame(budget=b) for b in (1e18, 1e19, 1e20)])
    frame["flops"] = frame.pop("budget") * (1 + 0.03 * rng.standard_normal(len(frame)))
    optima = fit_isoflops(frame)
    assert optima["budget"].tolist() == [1e18, 1e19, 1e20]


def test_snap_budgets_keeps_near_budgets_apart():
    assert snap_budgets([1e18, 1.02e18, 2e18, 2.05e18, 3.33e18]).tolist() == [1e18, 1e18, 2e18, 2e18, 3.3e18]


def test_failed_runs_are_left_out_with_a_warning():
    frame = parabola_frame(n=8)
    frame["status"] = ["completed"] * 7 + ["failed"]
    frame.loc[7, "loss"] = np.nan
    with pytest.warns(FitWarning, match="did not complete"):
        optima = fit_isoflops(frame)
    assert optima["n_points"].iloc[0] == 7


def test_load_results_from_csv_with_other_names(tmp_path):
    frame = parabola_frame().rename(columns={"params": "n_params", "tokens": "n_tokens"})
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    loaded = load_results(path, columns={"n_params": "params", "n_tokens": "tokens"})
    assert len(loaded) == 7 and {"params", "tokens", "loss", "budget"} <= set(loaded.columns)


def test_load_results_coerces_string_numbers():
    frame = parabola_frame().astype({"loss": str, "params": str})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_results(frame)
    assert loaded["loss"].dtype == float


def test_two_budgets_fit_without_interval():
    frame = pd.concat([parabola_frame(budget=b, centre=c) for b, c in [(1e18, 1e7), (1e20, 1e8)]])
    with pytest.warns(FitWarning, match="only 2 budgets"):
        laws = fit_power_laws(fit_isoflops(frame))
    assert laws["exponent"].iloc[0] == pytest.approx(0.5)
    assert np.isnan(laws["exponent_lo"].iloc[0])


def test_loss_floor_needs_four_budgets_and_costs_a_degree_of_freedom(gpt_plan):
    three = gpt_plan[gpt_plan["budget"] <= 1e19]
    laws = fit_power_laws(fit_isoflops(run_sweep(three, mode="mock", seed=0))).set_index("quantity")
    assert laws.loc["loss", "floor"] == 0.0 and laws.loc["loss", "dof"] == 1
    laws5 = fit_power_laws(fit_isoflops(run_sweep(gpt_plan, mode="mock", seed=0))).set_index("quantity")
    assert laws5.loc["loss", "floor"] > 0 and laws5.loc["loss", "dof"] == 2
    assert laws5.loc["params", "dof"] == 3


def test_loss_interval_is_not_degenerate(gpt_plan):
    law = PlantedLaw()
    truth = law.loss(law.optimal_params(1e23), law.optimal_tokens(1e23))
    inside = 0
    for seed in range(10):
        laws = fit_power_laws(fit_isoflops(run_sweep(gpt_plan, mode="mock", law=law, seed=seed)))
        p = predict_from_laws(laws, 1e23)
        assert p["expected_loss_high"] - p["expected_loss_low"] > 1e-3
        inside += p["expected_loss_low"] <= truth <= p["expected_loss_high"]
    assert inside >= 5


def test_chained_flops_warn():
    with pytest.warns(FitWarning, match="grouped into one budget"):
        snap_budgets(np.geomspace(1e17, 1e19, 40))


def test_status_is_read_leniently():
    frame = parabola_frame(n=8)
    frame["status"] = ["COMPLETED", " completed", None, "", "completed", "Completed", "completed", "FAILED"]
    with pytest.warns(FitWarning, match=r"1 run\(s\) that did not complete: \{'failed': 1\}"):
        optima = fit_isoflops(frame)
    assert optima["n_points"].iloc[0] == 7


def test_missing_budgets_are_filled_from_flops_or_dropped():
    frame = parabola_frame(n=8)
    frame.loc[0, "budget"] = np.nan
    frame["flops"] = 1.01e18
    assert fit_isoflops(frame)["n_points"].iloc[0] == 8
    with pytest.warns(FitWarning, match="left out 1 run"):
        optima = fit_isoflops(frame.drop(columns="flops"))
    assert optima["n_points"].iloc[0] == 7


def test_duplicate_runs_are_counted_once():
    frame = parabola_frame()
    frame["run_id"] = [f"r{i}" for i in range(len(frame))]
    with pytest.warns(FitWarning, match="appear more than once"):
        optima = fit_isoflops(pd.concat([frame, frame]))
    assert optima["n_points"].iloc[0] == 7


def test_flagged_budget_says_which_way_to_move():
    frame = parabola_frame(budget=1e21, centre=1e9, lo=2.0, hi=40.0)
    with pytest.warns(FitWarning, match="raise tokens_per_param"):
        fit_isoflops(frame)
    frame = parabola_frame(budget=1e21, centre=1e9, lo=0.02, hi=0.5)
    with pytest.warns(FitWarning, match="lower tokens_per_param"):
        fit_isoflops(frame)


def test_load_results_recognises_common_column_names():
    frame = parabola_frame()
    other = pd.DataFrame({"Model Size": frame["params"], "Training FLOP": frame["budget"] * 1.01,
                          "val_loss": frame["loss"]})
    loaded = load_results(other)
    assert {"params", "tokens", "flops", "loss", "budget"} <= set(loaded.columns)
    assert np.allclose(loaded["tokens"], loaded["flops"] / (6 * loaded["params"]))
    assert loaded["budget"].unique().tolist() == [1e18]
