"""The live figures say only what the runs so far show: no star where no minimum is located, axes that do not jump,
notes in plain words, two-budget laws marked, and loss curves that can be read. Checked on the figures' data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from flops_fit import PlantedLaw, fit_isoflops, plan_sweep, plot_isoflops, run_sweep
from flops_fit.errors import FitWarning
from flops_fit.examples import GPT
from flops_fit.live import (curves_figure, curves_update, isoflops_figure, isoflops_update, laws_update, snapshot,
                            targets_for)
from flops_fit.visualizer import loss_clip, loss_curve_colours, unlocated_data

BUDGETS = [1e17, 1e18, 1e19]


@pytest.fixture(scope="module")
def finished():
    plan = plan_sweep(GPT, "d_model", BUDGETS, model_kwargs={"n_layer": 4})
    return run_sweep(plan, mode="mock", law=PlantedLaw(), seed=0, return_curves=True)


def only(results: pd.DataFrame, done: list[int]) -> pd.DataFrame:
    """The frame a sweep shows when only the runs at positions ``done`` have completed (the rest pending)."""
    frame = results.copy()
    later = ~np.isin(np.arange(len(frame)), done)
    frame.loc[later, "status"] = "pending"
    frame.loc[later, "loss"] = float("nan")
    return frame


def _stars(traces):
    return sum(len(t["x"]) for t in traces if t.get("marker", {}).get("symbol") == "star")


def _edges(traces):
    return [t for t in traces if t.get("mode") == "markers+text" and len(t["x"])]


@pytest.mark.parametrize("done, side, edge", [([0, 1, 2], "right", 2), ([6, 7, 8], "left", 6)])
def test_three_points_on_one_side_get_an_edge_marker_and_a_hint_not_a_star(finished, done, side, edge):
    results, _ = finished
    snap = snapshot(only(results, done))
    assert not snap.result.optima["inside"].any()  # the fit itself says the minimum is not located
    traces = isoflops_update(snap).data
    assert _stars(traces) == 0
    [marker] = _edges(traces)
    assert marker["x"].tolist() == pytest.approx([results["params"].iloc[edge]])
    assert marker["y"].tolist() == [results["loss"].iloc[edge]]
    assert marker["marker"]["symbol"] == [f"triangle-{side}-open"]
    assert f"minimum lies {side} of the sizes run so far" in marker["customdata"][0]  # the sizes still to run
    assert f"Budget 1.00e+17: minimum lies {side} of the sizes run so far" in " ".join(snap.notes)
    # with no more runs to come, the hint says what to do
    runs = results.iloc[done]
    with pytest.warns(FitWarning, match=f"vertex outside the sampled sizes \\({'below' if side == 'left' else 'above'}"):
        fig = plot_isoflops(runs, fit_isoflops(runs))
    edge_of = [t for t in fig.data if t.mode == "markers+text"]
    assert [t.customdata[0] for t in edge_of] == [
        f"minimum lies {side} of the {'smallest' if side == 'left' else 'largest'} size: extend sizes {side}"]
    assert not any(t.marker.symbol == "star" and len(t.x) for t in fig.data)


def test_located_minima_keep_their_star(finished):
    results, _ = finished
    traces = isoflops_update(snapshot(results)).data
    assert _stars(traces) == 3 and not _edges(traces)
    assert unlocated_data(snapshot(results).result.optima).empty


def test_isoflops_x_range_is_the_plans_and_does_not_move(finished):
    results, _ = finished
    ranges = []
    for done in ([], [0, 1, 2], [6, 7, 8], list(range(12)), list(range(27))):
        layout = isoflops_figure(snapshot(only(results, done))).layout
        assert layout.xaxis.autorange is False
        ranges.append(tuple(layout.xaxis.range))
    assert len(set(ranges)) == 1
    low, high = ranges[0]
    logs = np.log10(results["params"].to_numpy(dtype=float))
    assert low < logs.min() and logs.max() < high and high - low < (logs.max() - logs.min()) * 1.5
    assert "xaxis.range" not in isoflops_update(snapshot(results)).layout  # a redraw leaves it


def test_notes_are_plain_words(finished):
    results, _ = finished
    seen = []
    for done in range(28):
        seen += snapshot(only(results, list(range(done)))).notes
    assert "Power laws need a located minimum at 2 budgets or more; 1 so far." in seen
    for jargon in ("parameter of", "Got '", "Result.from_results", "vpnls_laws", "fit_power_laws", "max() arg"):
        assert not any(jargon in note for note in seen), jargon


def _fit_and_band(traces):
    fits = [t for t in traces if t.get("legendgroup") == "fit"]
    bands = [t for t in traces if t.get("legendgroup") == "band"]
    assert len(fits) == len(bands) == 2 and all(len(t["x"]) for t in fits)
    return list(zip(fits, bands))


def test_two_budget_laws_are_dashed_without_an_interval(finished):
    """Power laws through 2 budgets' optima (parabola: no degrees of freedom) are dashed, say "no interval" and have no
    band; with 3 budgets they are solid with a band."""
    import warnings

    from flops_fit import fit_power_laws
    from flops_fit.visualizer import scaling_laws_traces

    results, _ = finished
    shapes = []
    for runs, bare in ((results.iloc[:18], True), (results, False)):
        optima = fit_isoflops(runs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            laws = fit_power_laws(optima)
        traces = scaling_laws_traces(optima, laws, [1e20])
        shapes.append([(t["type"], t.get("mode")) for t in traces])
        for fit, band in _fit_and_band(traces):
            assert (fit["line"]["dash"] == "dash") is bare
            assert ("2 budgets, no interval" in fit["name"] and "no interval" in fit["hovertemplate"]) is bare
            assert (len(band["x"]) == 0) is bare
    assert shapes[0] == shapes[1]  # a live figure restyles the same traces


def test_two_budget_laws_with_an_interval_are_still_dashed(finished):
    """The live fit (vpnls) has an interval from 2 budgets' runs: its band stays, but the line is dashed and named."""
    results, _ = finished
    targets = targets_for(BUDGETS)
    for done, weak in ((18, True), (27, False)):
        for fit, band in _fit_and_band(laws_update(snapshot(only(results, list(range(done)))), targets).data):
            assert (fit["line"]["dash"] == "dash") is weak and ("(2 budgets)" in fit["name"]) is weak
            assert len(band["x"]) > 0


def test_loss_curves_shade_by_size_and_clip_the_spike(finished):
    results, curves = finished
    colours = loss_curve_colours(results)
    for budget in BUDGETS:
        mine = [c for c, b in zip(colours, results["budget"]) if b == budget]
        assert len(set(mine)) == len(mine)  # every size its own shade
    traces = curves_update(curves, results).data
    assert "N=" in traces[0]["hovertemplate"] and "1.00e+17 FLOPs" in traces[0]["hovertemplate"]
    top = loss_clip(curves)
    spike = curves.groupby("run_id")["loss"].first()
    assert curves["loss"].min() < top < spike.median() and top < spike.max() / 2  # the initial spike is cut off
    assert (curves["loss"] <= top).mean() > 0.8
    fig = curves_figure(curves, results)
    assert math.isclose(fig.layout.yaxis.autorangeoptions.clipmax, top)
    assert curves_update(curves, results).layout == {"yaxis.autorangeoptions.clipmax": top}
    [menu] = fig.layout.updatemenus
    assert [b.args[0]["yaxis.type"] for b in menu.buttons] == ["linear", "log"]
    assert fig.layout.xaxis.dtick == 1  # decades only: no minor tick labels
    assert len(traces[0]["x"]) == len(curves[curves["run_id"] == results["run_id"].iloc[0]])  # from the first step
