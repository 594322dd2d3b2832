"""What the widgets draw, as data: flops_fit.live without any widget."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from flops_fit import PlantedLaw, plan_sweep, run_sweep
from flops_fit.examples import GPT
from flops_fit.live import (backtest_table, budget_grid, budget_options, completed_runs, curves_figure, curves_update,
                            duration, isoflops_figure, isoflops_update, laws_figure, laws_update, plan_summary,
                            plan_table, runs_table, snapshot, targets_for)

BUDGETS = [1e17, 1e18, 1e19]


@pytest.fixture(scope="module")
def finished():
    plan = plan_sweep(GPT, "d_model", BUDGETS, model_kwargs={"n_layer": 4})
    return run_sweep(plan, mode="mock", law=PlantedLaw(), seed=0, return_curves=True)


def part_way(results: pd.DataFrame, completed: int) -> pd.DataFrame:
    """The frame a sweep shows after its first ``completed`` runs (the rest pending)."""
    frame = results.copy()
    later = frame.index[completed:]
    frame.loc[later, "status"] = "pending"
    frame.loc[later, "loss"] = float("nan")
    return frame


def test_budget_controls():
    assert budget_options(1e9, 1e10) == [1e9, 3e9, 1e10]
    assert len(budget_options()) == 33  # 1e9 .. 1e25
    assert budget_grid(1e17, 1e19, 5) == [1e17, 3.2e17, 1e18, 3.2e18, 1e19]
    with pytest.raises(ValueError, match="count >= 2"):
        budget_grid(1e17, 1e19, 1)
    with pytest.raises(ValueError, match="low < high"):
        budget_grid(1e19, 1e17, 3)


def test_plan_summary_and_table(finished):
    results, _ = finished
    plan = results.drop(columns=["status", "loss"])
    mock = plan_summary(plan, "mock")
    assert mock["runs"] == 27 and mock["budgets"] == 3
    assert math.isclose(mock["total_flops"], 9 * sum(BUDGETS), rel_tol=0.01)  # each run spends its budget
    local = plan_summary(plan, "local", flops_per_second=1e12)
    assert math.isclose(local["seconds"], local["total_flops"] / 1e12)
    assert math.isnan(plan_summary(plan, "local")["seconds"]) and duration(float("nan")) == "unknown"
    table = plan_table(plan)
    assert list(table.columns) == ["budget", "size", "N", "D", "D/N"] and table["budget"].iloc[0] == "1.00e+17"


def test_snapshot_grows_with_the_sweep(finished):
    results, curves = finished
    empty = snapshot(part_way(results, 0))
    assert empty.result is None and empty.finished == 0 and "No run has completed" in empty.notes[0]
    one_budget = snapshot(part_way(results, 9))  # the first budget's 9 sizes
    assert len(one_budget.result.optima) == 1 and not one_budget.has_laws
    assert "Power laws need a located minimum at 2 budgets or more; 1 so far." in one_budget.notes
    assert one_budget.counts == {"completed": 9, "diverged": 0, "failed": 0, "pending": 18, "finished": 9}
    full = snapshot(results, curves)
    assert full.has_laws and full.finished == 27
    assert abs(full.result.exponent("params") - PlantedLaw().a) < 0.05
    table = runs_table(part_way(results, 9))
    assert table["status"].tolist().count("pending") == 18 and table["loss"].iloc[-1] == ""


def test_live_figures_keep_their_traces_as_runs_land(finished):
    """A redraw must only change data: the same traces, of the same kinds, from the first run to the last."""
    results, curves = finished
    targets = targets_for(BUDGETS)
    assert targets == [1e20, 1e21]
    shapes = []
    for done in (0, 4, 9, 18, 27):
        snap = snapshot(part_way(results, done))
        frames = [isoflops_figure(snap), laws_figure(snap, targets),
                  curves_figure(curves[curves["run_id"].isin(results["run_id"][:done])], results)]
        shapes.append([[(t.type, t.mode) for t in fig.data] for fig in frames])
    assert all(shape == shapes[0] for shape in shapes)
    iso = isoflops_figure(snapshot(part_way(results, 9)))
    points = [len(t.x) for t in iso.data if t.mode == "markers" and t.marker.symbol is None]
    assert points == [9, 0, 0]
    # runs not yet run are hollow markers, once their budget has a loss to place them by
    proposed = [len(t.x) for t in isoflops_figure(snapshot(part_way(results, 4))).data
                if t.marker.symbol == "circle-open"]
    assert proposed == [5, 0, 0]
    waiting = laws_figure(snapshot(part_way(results, 9)), targets)
    assert "appear once 2 budgets" in waiting.layout.title.text and sum(len(t.x) for t in waiting.data) == 2


def test_isoflops_reads_statuses_the_way_the_fit_does(finished):
    from flops_fit import fit_isoflops, plot_isoflops

    results, _ = finished
    frame = results.copy()
    frame["status"] = ["Completed", " completed ", ""] * 9  # a tracker's own spelling, or no status
    fig = plot_isoflops(frame, fit_isoflops(frame))
    assert sum(len(t.x) for t in fig.data if t.mode == "markers" and t.marker.symbol != "star") == 27


def test_backtest_appears_once_four_budgets_have_a_minimum():
    plan = plan_sweep(GPT, "d_model", [1e17, 1e18, 1e19, 1e20], model_kwargs={"n_layer": 4})
    results = run_sweep(plan, mode="mock", seed=0)
    assert backtest_table(snapshot(results[results["budget"] < 1e20])) is None  # 3 budgets: not yet
    table = backtest_table(snapshot(results))
    assert table["budget"].tolist() == ["1.00e+20", "1.00e+20"] and set(table["held"]) <= {"yes", "no"}


def test_live_updates_draw_what_the_figures_show(finished):
    """The plain data a live figure redraws from is the figure's own traces, and its layout texts are the figure's."""
    import json

    import plotly.graph_objects as go

    results, curves = finished
    targets = targets_for(BUDGETS)
    for done in (0, 4, 9, 18, 27):
        snap = snapshot(part_way(results, done))
        logged = curves[curves["run_id"].isin(results["run_id"][:done])]
        for fig, update in ((isoflops_figure(snap), isoflops_update(snap)),
                            (laws_figure(snap, targets), laws_update(snap, targets)),
                            (curves_figure(logged, results), curves_update(logged, results))):
            assert json.loads(go.Figure(update.data).to_json())["data"] == json.loads(fig.to_json())["data"]
            relaid = go.Figure(fig)
            relaid.plotly_relayout(update.layout)
            assert relaid.layout.to_plotly_json() == fig.layout.to_plotly_json()
    assert set(isoflops_update(snap).layout) == {"title.text"}
    assert set(laws_update(snap, targets).layout) == {"title.text", "annotations[0].text", "annotations[1].text"}


def test_law_lines_are_the_laws_predictions(finished):
    """The figures evaluate the laws on a whole grid at once: the same numbers as predict_from_laws, point by point,
    with and without a floor."""
    import numpy as np

    from flops_fit.approaches.laws import predict_from_laws
    from flops_fit.visualizer import law_values

    results, _ = finished
    laws = snapshot(results).result.laws.copy()
    compute = [3e16, 1e18, 5e20]
    floored = laws.copy()
    floored["floor"] = floored["floor"].astype(float)
    floored.loc[floored["quantity"] == "loss", "floor"] = 1.5
    floored.loc[floored["quantity"] == "loss", "covariance"] = pd.Series(
        [np.diag([1e-4, 1e-3, 1e-5]).tolist()], index=floored.index[floored["quantity"] == "loss"])
    for frame in (laws, floored):
        expected = pd.DataFrame([predict_from_laws(frame, c) for c in compute])
        pd.testing.assert_frame_equal(law_values(frame, compute), expected, rtol=1e-12)


def test_completed_runs_are_the_runs_the_fit_reads(finished):
    import warnings

    from flops_fit.frames import prepare_results

    results, _ = finished
    frame = part_way(results, 13)
    frame.loc[frame.index[2], "status"] = "failed"
    frame.loc[frame.index[5], "loss"] = float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = prepare_results(frame, allow_empty=True)
    columns = ["run_id", "budget", "params", "tokens", "loss"]
    pd.testing.assert_frame_equal(completed_runs(frame)[columns], expected[columns], check_dtype=False)
    assert len(completed_runs(frame)) == 11


def test_tables_align_numbers_right_and_words_left_with_their_headers():
    from flops_fit.live import html_table

    html = html_table(pd.DataFrame({"compute": ["1.00e+17"], "N_opt": ["5.46B (5.22B–5.97B)"], "source": ["vpnls fit"],
                                    "loss": [""]}))
    cells = re.findall(r'<t[hd] style="text-align:(\w+);', html)
    assert cells == ["right", "right", "left", "right"] * 2  # the header row, then the row of values
