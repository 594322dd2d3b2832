import pandas as pd
import plotly.graph_objects as go
import pytest

from flops_fit import PlantedLaw, Result, SweepPlan, find_optimal
from flops_fit.examples import GPT
from flops_fit.visualizer import law_line_data, parabola_data

from .conftest import BUDGETS


@pytest.fixture(scope="module")
def result():
    return find_optimal(GPT, "d_model", dataset="d", loss_fn="l", compute_budgets=BUDGETS, mode="mock", seed=0,
                        model_kwargs={"n_layer": 4})


def test_find_optimal_returns_result_with_frames(result):
    assert isinstance(result, Result)
    assert len(result.results) == 45 and len(result.optima) == 5
    assert set(result.laws["quantity"]) == {"params", "tokens", "loss"}
    assert result.curves is not None and set(result.curves["run_id"]) == set(result.results["run_id"])
    assert result.law == PlantedLaw()
    assert result.exponent() == pytest.approx(PlantedLaw().a, abs=0.01)


@pytest.mark.parametrize("kwargs", [{"train": False}, {"dataset": None}, {"loss_fn": None}])
def test_find_optimal_returns_plan_without_data_or_training(kwargs):
    call = {"dataset": "d", "loss_fn": "l", **kwargs}
    plan = find_optimal(GPT, "d_model", compute_budgets=BUDGETS, mode="mock", model_kwargs={"n_layer": 4}, **call)
    assert isinstance(plan, SweepPlan)
    assert plan.total_compute == pytest.approx(sum(BUDGETS) * 9, rel=1e-6)
    assert "SweepPlan(45 runs over 5 budgets" in repr(plan)
    assert "<table" in plan._repr_html_()
    assert isinstance(plan.run(mode="mock", seed=0), Result)


def test_seed_makes_mock_reproducible():
    kwargs = dict(dataset="d", loss_fn="l", compute_budgets=BUDGETS[:3], mode="mock", model_kwargs={"n_layer": 4})
    a, b = find_optimal(GPT, "d_model", seed=1, **kwargs), find_optimal(GPT, "d_model", seed=1, **kwargs)
    c = find_optimal(GPT, "d_model", seed=2, **kwargs)
    pd.testing.assert_frame_equal(a.results.drop(columns="wall_time"), b.results.drop(columns="wall_time"))
    assert not a.results["loss"].equals(c.results["loss"])


def test_planted_law_is_passed_through():
    law = PlantedLaw(alpha=0.3, beta=0.3, noise=0.0)
    result = find_optimal(GPT, "d_model", dataset="d", loss_fn="l", compute_budgets=BUDGETS, law=law,
                          model_kwargs={"n_layer": 4})
    assert result.exponent() == pytest.approx(0.5, abs=0.003)


def test_predict(result):
    p = result.predict(1e23)
    assert {"target_compute", "optimal_params", "optimal_tokens", "expected_loss"} <= set(p)
    assert p["optimal_params_low"] < p["optimal_params"] < p["optimal_params_high"]
    truth = PlantedLaw().optimal_params(1e23)
    assert p["optimal_params"] == pytest.approx(truth, rel=0.2)
    with pytest.raises(ValueError, match="'compute' parameter"):
        result.predict(-1)


def test_chinchilla_table(result):
    table = result.chinchilla_table()
    lines = table.splitlines()
    assert lines[0] == "| Compute (FLOPs) | N_opt | D_opt | D/N | Loss | Source |"
    assert len(lines) == 2 + 5 + 2  # header, rule, 5 budgets, 10x and 100x targets
    assert "1.00e+23" in table and "vpnls extrapolation" in table
    assert len(result.chinchilla_table(targets=[1e22, 1e24, 1e25]).splitlines()) == 2 + 5 + 3


def test_plot_returns_figures_and_writes_html(result, tmp_path):
    figures = result.plot(html_dir=tmp_path / "figs")
    assert set(figures) == {"isoflops", "scaling_laws", "backtest"}  # backtest: 3 or more located budgets
    assert all(isinstance(f, go.Figure) for f in figures.values())
    assert (tmp_path / "figs" / "isoflops.html").stat().st_size > 1000
    assert (tmp_path / "figs" / "backtest.html").exists()
    assert (tmp_path / "figs" / "plotly.min.js").exists()  # opens offline
    iso = figures["isoflops"]
    runs = [t for t in iso.data if t.mode == "markers" and t.marker.symbol != "star"]
    assert sum(len(t.x) for t in runs) == 45
    stars = [x for t in iso.data if t.marker.symbol == "star" for x in t.x]
    assert stars == pytest.approx(result.optima["params_opt"].tolist())
    # each budget's star hides with its budget in the legend
    assert {t.legendgroup for t in iso.data if t.marker.symbol == "star"} == {t.name for t in runs}


def test_plot_data(result):
    curves = parabola_data(result.optima)
    for row in result.optima.itertuples():
        line = curves[curves["budget"] == row.budget]
        assert line["loss"].min() == pytest.approx(row.loss_opt, abs=1e-3)
    line = law_line_data(result.laws, BUDGETS, result.targets)
    assert line["target_compute"].max() == pytest.approx(100 * max(BUDGETS))
    assert (line["optimal_params_low"] <= line["optimal_params"]).all()


def test_result_survives_when_no_power_law_can_be_fitted():
    # every budget's minimum lies below its sampled sizes: the runs must not be lost
    law = PlantedLaw(B=4107.0, noise=0.0)
    with pytest.warns(Warning) as caught:
        result = find_optimal(GPT, "d_model", dataset="d", loss_fn="l", compute_budgets=[1e17, 1e18, 1e19],
                              law=law, tokens_per_param=0.5, model_kwargs={"n_layer": 4})
    assert any("no power law could be fitted" in str(w.message) for w in caught)
    assert len(result.results) == 27 and not result.optima["usable"].any()
    assert result.laws.empty
    with pytest.raises(ValueError, match="needs fitted power laws"):
        result.predict(1e21)
    assert len(result.chinchilla_table().splitlines()) == 2 + 3
    assert set(result.plot()) == {"isoflops"}
    assert "no power law fitted" in repr(result)


def test_result_from_a_frame_with_a_thin_budget():
    kwargs = dict(dataset="d", loss_fn="l", compute_budgets=BUDGETS, model_kwargs={"n_layer": 4}, train=False)
    plan = find_optimal(GPT, "d_model", **kwargs).plan
    from flops_fit import run_sweep

    results = run_sweep(plan, seed=0)
    results.loc[results["budget"] == 1e21, "status"] = ["failed"] * 7 + ["completed"] * 2
    with pytest.warns(Warning, match="fewer than 3"):
        result = Result.from_results(results)
    assert len(result.optima) == 4


def test_human_numbers():
    from flops_fit._format import human

    assert [human(v) for v in (999_999_999, 999_600, 1_234_000, 7)] == ["1B", "1M", "1.23M", "7"]


def test_predict_with_bootstrap_intervals(result):
    delta = result.predict(1e23)
    boot = result.predict(1e23, interval="bootstrap", n_resamples=300, seed=0)
    assert boot["optimal_params"] == delta["optimal_params"]
    assert boot["optimal_params_low"] < PlantedLaw().optimal_params(1e23) < boot["optimal_params_high"]
    assert boot == result.predict(1e23, interval="bootstrap", n_resamples=300, seed=0)
    with pytest.raises(ValueError, match="'interval' parameter of Result.predict"):
        result.predict(1e23, interval="exact")
