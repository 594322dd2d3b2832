"""The monitor's dashboard without a browser: its layout, axes, notes, hover highlight and theme, as the widget
state a view is built from (tests/test_browser.py checks the page itself)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

from flops_fit import plan_sweep  # noqa: E402
from flops_fit._format import flops  # noqa: E402
from flops_fit.examples import GPT  # noqa: E402
from flops_fit.live import curves_update, laws_update  # noqa: E402
from flops_fit.visualizer._common import rgb_of  # noqa: E402
from flops_fit.visualizer.axes import log_ticks, power_label, scaling_laws_ranges  # noqa: E402
from flops_fit.widgets import SweepDesigner, SweepMonitor  # noqa: E402
from flops_fit.widgets.dashboard import NOTES_HEIGHT, Notes  # noqa: E402
from flops_fit.widgets.page import PageWatch  # noqa: E402

GPT4 = {"n_layer": 4}


@pytest.fixture(scope="module")
def done():
    """A finished mock sweep's monitor, and the figures' layouts as they were first built."""
    plan = plan_sweep(GPT, "d_model", [1e17, 1e18, 1e19], model_kwargs=GPT4)
    monitor = SweepMonitor.start(plan, mode="mock")
    first = {name: getattr(monitor, name).widget.layout.to_plotly_json() for name in ("isoflops", "laws", "curves")}
    monitor.wait(60)
    yield monitor, first
    monitor.close()


def tree(root):
    """Every widget under ``root`` (children, and the contents of boxes and tabs)."""
    import ipywidgets as W

    stack, out = [root], []
    while stack:
        widget = stack.pop()
        out.append(widget)
        stack.extend(c for c in getattr(widget, "children", ()) if isinstance(c, W.Widget))
    return out


def test_the_dashboard_puts_figures_side_by_side_and_stacks_on_narrow_cells(done):
    import ipywidgets as W

    monitor, _ = done
    widgets = tree(monitor.widget)
    grids = [w for w in monitor.widget.children if isinstance(w, W.GridBox)]
    assert len(grids) == 2 == sum(isinstance(w, W.GridBox) for w in widgets)  # figures above, curves | tables below
    for grid in grids:
        columns = grid.layout.grid_template_columns
        assert "auto-fit" in columns and "minmax(min(100%" in columns  # as many columns as fit, else one
        assert len(grid.children) == 2 and all(c.layout.min_width == "0" for c in grid.children)
    figures = [monitor.isoflops.widget, monitor.laws.widget, monitor.curves.widget]
    assert [c.children[0] for c in grids[0].children] == figures[:2]
    assert grids[1].children[0].children[0] is figures[2]
    # no fixed pixel width anywhere: everything takes its share of the cell
    fixed = [w for w in widgets if hasattr(w, "layout") and isinstance(getattr(w.layout, "width", None), str)
             and w.layout.width.endswith("px")]
    assert fixed == []
    assert "flops-fit-dashboard" in monitor.widget._dom_classes and "flops-fit-monitor" in monitor.widget._dom_classes


def test_figures_take_their_containers_width_from_the_first_view(done):
    monitor, first = done
    assert isinstance(monitor.page, PageWatch) and monitor.page in monitor.widget.children
    assert "ResizeObserver" in monitor.page._esm and 'new Event("resize")' in monitor.page._esm
    for name, layout in first.items():
        live = getattr(monitor, name)
        saved = live.widget.get_state()["_widget_layout"]  # what a view is first drawn from
        assert "width" not in layout and "width" not in saved and saved.get("autosize") is True
        assert live.widget._config.get("responsive") is True  # plotly refits it when told the size changed


def test_axis_ranges_come_from_the_plan_and_nothing_rescales(done):
    monitor, first = done
    results = monitor.snapshot.results
    laws = monitor.laws.widget.layout
    for axis in ("xaxis", "xaxis2", "yaxis", "yaxis2"):
        assert laws[axis].autorange is False
        assert list(laws[axis].range) == first["laws"][axis]["range"]  # unchanged while the runs landed
    lo, hi = laws.xaxis.range
    assert lo < math.log10(results["budget"].min()) and hi > math.log10(max(monitor.targets))
    for trace in monitor.laws.widget.data:  # the optima, the laws and the extrapolations lie inside
        if trace.name == "95% interval" or trace.x is None or not len(trace.x):
            continue
        y_range = laws["yaxis2" if trace.yaxis == "y2" else "yaxis"].range
        assert np.all((np.log10(trace.y) > y_range[0]) & (np.log10(trace.y) < y_range[1])), trace.name
    ranges = scaling_laws_ranges([1e17, 1e19], [1e6, 1e8], [1e9, 1e10], [1e21])
    assert ranges["params"][1] > 10 and ranges["compute"][1] > 21  # up to an exponent of 1 at the target


def test_ticks_are_thinned_to_fit_and_a_narrow_range_gets_several(done):
    monitor, _ = done
    laws = monitor.laws.widget.layout
    for axis in (laws.xaxis, laws.xaxis2):
        assert axis.tickmode == "array" and 2 <= len(axis.tickvals) <= 4  # half a figure: 10¹⁷ 10¹⁹ 10²¹
    narrow = log_ticks(math.log10(3e6), math.log10(2.5e7))
    assert len(narrow["ticktext"]) >= 3 and narrow["ticktext"][0] == "3M"
    wide = log_ticks(15.9, 24.1, 4, power_label)
    assert len(wide["tickvals"]) == 3 and wide["ticktext"][0] == "10<sup>16</sup>"
    iso = monitor.isoflops.widget.layout.xaxis
    assert iso.tickmode == "array" and 2 <= len(iso.tickvals) <= 7
    assert all(iso.range[0] <= math.log10(v) <= iso.range[1] for v in iso.tickvals)
    plan = plan_sweep(GPT, "d_model", [1e17], model_kwargs=GPT4, size_span=4)  # a narrow N range
    small = SweepMonitor.start(plan, mode="mock")
    try:
        assert len(small.isoflops.widget.layout.xaxis.tickvals) >= 3
    finally:
        small.close()


def test_budgets_in_figures_are_written_by_the_one_formatter(done):
    monitor, _ = done
    names = {t.name for t in monitor.isoflops.widget.data if t.name}
    assert names == {"1.00e+17 FLOPs", "1.00e+18 FLOPs", "1.00e+19 FLOPs"}
    assert "at 1.00e+17 FLOPs" in monitor.curves.widget.data[0].hovertemplate
    assert "1.00e+17 FLOPs" in monitor.runs_box.children[0].children[0].value


def test_notes_keep_their_height_and_fold_away():
    notes = Notes()
    body = notes.widget.children[0]
    assert body.layout.height == NOTES_HEIGHT and body.layout.overflow == "auto"
    assert notes.widget.titles == ("Notes",) and "nothing to note" in notes.html.value
    notes.show(["Budget 1.00e+17: its curve is fitted once 3 sizes have finished."] * 1 + ["Another <note>"])
    assert notes.widget.titles == ("Notes (2)",) and "&lt;note&gt;" in notes.html.value
    assert body.layout.height == NOTES_HEIGHT  # the same height with notes as without
    notes.widget.selected_index = None  # folded by the user
    notes.show([])
    assert notes.widget.selected_index is None and notes.widget.titles == ("Notes",)
    notes.error("display error: boom")
    assert "boom" in notes.html.value and "error" in notes.widget.titles[0]


def test_hovering_a_curve_thickens_it_and_only_its_width_travels(done):
    monitor, _ = done
    live = monitor.curves
    messages = []
    live.widget.observe(lambda change: change["new"] and messages.append(change["new"]), names="_py2js_update")

    def pointer(kind, trace):
        live.widget._js2py_pointsCallback = {"event_type": kind, "points": {
            "trace_indexes": [trace], "point_indexes": [0], "xs": [1.0], "ys": [2.0]}}

    normal = live.widget.data[3].line.width
    pointer("plotly_hover", 3)
    assert live.widget.data[3].line.width == 3.5 > normal
    assert messages[-1]["style_traces"] == [3] and messages[-1]["style_data"] == {"line.width": [3.5]}
    pointer("plotly_hover", 5)  # onto another curve: the first goes back
    assert live.widget.data[5].line.width == 3.5 and live.widget.data[3].line.width == normal
    live.update(*curves_update(monitor.handle.curves(), monitor.snapshot.results))  # a redraw: still thick
    assert live.widget.data[5].line.width == 3.5
    pointer("plotly_unhover", 5)
    assert all(t.line.width == normal for t in live.widget.data)


def test_figures_follow_the_pages_theme(done):
    monitor, _ = done
    figures = [monitor.isoflops, monitor.laws, monitor.curves]
    light = [f.widget.layout.template.layout.font.color for f in figures]
    monitor.page.theme = "dark"  # what the view reports from JupyterLab's data-jp-theme-light="false"
    for figure in figures:
        layout = figure.widget.layout
        assert layout.paper_bgcolor == layout.plot_bgcolor == "rgba(0,0,0,0)"  # the page shows through
        assert layout.template.layout.font.color not in light
    optima = [t for t in monitor.laws.widget.data if t.name == "IsoFLOP optima"]
    assert all(t.marker.color != "black" for t in optima)  # black markers would vanish on a dark page
    monitor.laws.update(*laws_update(monitor.snapshot, monitor.targets))  # a redraw keeps the theme's colours
    assert all(t.marker.color != "black" for t in monitor.laws.widget.data if t.name == "IsoFLOP optima")
    # the smallest budget's colour (the start of Viridis, a purple near black) is lifted on a dark page
    smallest = flops(min(monitor.snapshot.results["budget"])) + " FLOPs"
    runs = [t for t in monitor.isoflops.widget.data if t.name == smallest and t.mode == "markers"]
    assert runs and all(_lightness(t.marker.color) >= 0.4 for t in runs)
    monitor.page.theme = "light"
    assert [f.widget.layout.template.layout.font.color for f in figures] == light
    assert all(t.marker.color == "black" for t in monitor.laws.widget.data if t.name == "IsoFLOP optima")
    assert all(_lightness(t.marker.color) < 0.2 for t in monitor.isoflops.widget.data
               if t.name == smallest and t.mode == "markers")
    # the log/linear dropdown carries its own light background and dark text: plotly draws the active item
    # near-white on any template, where plotly_dark's light text vanished
    menu = monitor.curves.widget.layout.updatemenus[0]
    assert _lightness(menu.bgcolor) > 0.8 and _lightness(menu.font.color) < 0.4


def _lightness(colour: str) -> float:
    """HLS lightness of ``rgb(r, g, b)`` or ``#rrggbb``."""
    values, _ = rgb_of(colour)
    return (max(values) + min(values)) / 2 / 255


def test_the_band_shows_even_when_narrow(done):
    monitor, _ = done
    bands = [t for t in monitor.laws.widget.data if t.name == "95% interval"]
    alpha = float(bands[0].fillcolor.rsplit(",", 1)[1].rstrip(")"))
    assert alpha >= 0.35 and bands[0].line.width >= 1  # an edge, so a thin band is still a visible line


def test_designer_controls_read_as_active_and_errors_wrap_between_words():
    designer = SweepDesigner(GPT, "d_model", model_kwargs=GPT4, n_budgets=3)
    assert designer.mode.button_style == designer.strategy.button_style == "info"  # not the grey of disabled
    assert designer.budget_range.layout.width == "100%" and not designer.budget_range.layout.width.endswith("px")
    designer.budget_range.value = (1e9, 3e9)  # no size can serve such budgets
    assert "No plan" in designer.summary.value and "<pre" not in designer.summary.value
    assert "word-break:normal" in designer.summary.value and "overflow-wrap:break-word" in designer.summary.value


PRELOAD = """
import sys, time
from flops_fit.examples import GPT
from flops_fit.widgets import SweepDesigner
from flops_fit.widgets import plotly_widget
assert "plotly.basewidget" not in sys.modules
SweepDesigner(GPT, "d_model", model_kwargs={"n_layer": 4}, n_budgets=3)
plotly_widget._preloading.join(120)
assert not plotly_widget._preloading.is_alive() and "plotly.basewidget" in sys.modules
print("loaded")
"""


def test_the_designer_loads_plotlys_widget_code_while_the_user_plans():
    # in a fresh kernel, importing plotly's FigureWidget (it brings nbformat's validator) took seconds after the
    # first click on Run; the designer starts it in the background, before any Run
    done = subprocess.run([sys.executable, "-c", PRELOAD], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-2000:]


def test_a_views_report_of_its_drawing_leaves_the_figures_traces_and_saved_state_alone():
    # After each edit a view reports what its drawing differs in from the page's copy; plotly deleted every
    # reported property from the kernel's traces. In the browser test a paced app's star trace lost its 'star'
    # symbol so (its saved copy too), and after a reload the page counted 28 run markers for 27 runs.
    from flops_fit.widgets.figure import LiveFigure

    star = {"type": "scatter", "x": np.array([1.0]), "y": np.array([2.0]), "mode": "markers",
            "marker": {"symbol": "star", "size": 13}}
    fig = LiveFigure()
    fig.update([star])
    widget = fig.widget
    uid = widget._data[0]["uid"]
    widget._js2py_traceDeltas = {"trace_edit_id": widget._last_trace_edit_id,
                                 "trace_deltas": [{"uid": uid, "marker": {"symbol": "star"}, "visible": True}]}
    widget._js2py_layoutDelta = {"layout_edit_id": widget._last_layout_edit_id,
                                 "layout_delta": {"autosize": True, "width": 700}}
    assert widget._data[0]["marker"]["symbol"] == "star"
    assert widget._widget_layout.get("autosize") is True
    assert not widget._trace_edit_in_process and widget._js2py_traceDeltas is None  # the edit is over
    fig.update([{**star, "x": np.array([1.0, 3.0]), "y": np.array([2.0, 1.0])}])  # the trace is saved again
    assert widget._widget_data[0]["marker"] == {"symbol": "star", "size": 13}
