"""The monitor's layout: a dashboard that fills its cell and stacks on narrow ones, figures that fit their place
and follow JupyterLab's theme, and notes in a fixed-height area that can be folded away.

Only ipywidgets layout (CSS grid and flex boxes, no fixed pixel widths) and the figures' look are set here; what
they show comes from :mod:`flops_fit.live`.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from ..visualizer.axes import log_ticks, power_label, scaling_laws_ranges
from ..visualizer.theme import CLEAR, live_template, theme_colours
from ._deps import widgets
from .figure import LiveFigure
from .page import PageWatch

COLUMN = "440px"  # the narrowest a figure column gets before the grid stacks the figures
NOTES_HEIGHT = "6.5em"  # the notes area keeps this height, however many notes there are


def columns(children: Sequence[Any], least: str = COLUMN) -> Any:
    """A grid of equal columns, each at least ``least`` wide: side by side where the cell is wide enough, one above
    the other where it is not."""
    W = widgets("SweepMonitor")
    return W.GridBox(list(children), layout=W.Layout(
        grid_template_columns=f"repeat(auto-fit, minmax(min(100%, {least}), 1fr))", grid_gap="4px 16px",
        width="100%", align_items="flex-start"))


def cell(*children: Any, **layout: Any) -> Any:
    """A grid cell: as wide as its column, never wider (a figure drawn wider than it is cut, not the grid widened)."""
    W = widgets("SweepMonitor")
    return W.VBox(list(children), layout=W.Layout(min_width="0", width="100%", overflow="hidden", **layout))


class Notes:
    """What the fit cannot do yet, in plain words, in an area of fixed height (scrolling when they are many), under
    a header that counts them and folds the area away: the page below does not move as notes come and go."""

    def __init__(self) -> None:
        W = widgets("SweepMonitor")
        self.html = W.HTML(layout=W.Layout(margin="0"))
        body = W.Box([self.html], layout=W.Layout(height=NOTES_HEIGHT, overflow="auto"))
        self.widget = W.Accordion([body], titles=("Notes",), selected_index=0)
        self.widget.add_class("flops-fit-notes")
        self._shown: tuple[str, ...] | None = None
        self.show([])

    def show(self, notes: Sequence[str]) -> None:
        """Show ``notes`` (plain text), replacing those shown."""
        notes = tuple(notes)
        if notes == self._shown:
            return
        self._shown = notes
        self.html.value = ("".join(f"<div style='color:#b07d2b'>{escape(n)}</div>" for n in notes) if notes else
                           "<i style='opacity:0.7'>nothing to note</i>")
        self.widget.titles = (f"Notes ({len(notes)})" if notes else "Notes",)

    def error(self, text: str) -> None:
        """Show a display error (plain text) above the notes."""
        self._shown = None
        self.html.value = f"<div style='color:crimson'>{escape(text)}</div>" + self.html.value
        self.widget.titles = ("Notes: a display error",)


def follow_theme(figures: Sequence[LiveFigure], theme: str) -> None:
    """Draw ``figures`` for JupyterLab's ``theme`` ("light" or "dark"): see-through backgrounds, and text, grid and
    black markers that read on it."""
    dark = theme == "dark"
    for figure in figures:
        figure.theme(live_template(dark), theme_colours(dark))


def page_watch(figures: Sequence[LiveFigure]) -> Any:
    """A :class:`~flops_fit.widgets.page.PageWatch` that keeps ``figures`` as wide as their cells and draws them for
    the page's theme as it changes."""
    watch = PageWatch()
    watch.observe(lambda change: follow_theme(figures, change["new"]), names="theme")
    return watch


def minor_grid(lo: float, hi: float) -> dict[str, Any]:
    """A log axis's minor grid over ``[lo, hi]`` (log10 units) as explicit lines, at 2..9 times each power of ten.

    With major ticks given as an array (:func:`log_ticks`), plotly (6, 7) spaces a log axis's minor grid by a tiny
    default step: the IsoFLOP figure drew 11,700 grid lines, and every redraw of the page then spent about half a
    second laying them out (a paced sweep left the page no time to answer a click).

    >>> minor_grid(6.5, 7.5)["minor"]["tickvals"]
    [4000000.0, 5000000.0, 6000000.0, 7000000.0, 8000000.0, 9000000.0, 20000000.0, 30000000.0]
    """
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return {}
    values = [m * 10.0**k for k in range(int(np.floor(lo)), int(np.ceil(hi)) + 1) for m in range(2, 10)]
    shown = [v for v in values if lo - 1e-9 <= np.log10(v) <= hi + 1e-9]
    return {"minor": {"showgrid": True, "tickmode": "array", "tickvals": shown}}


def pin_isoflops_axes(fig: Any, params: Sequence[float]) -> Any:
    """Label the IsoFLOP figure's N axis with a few ticks over the plan's ``params`` (already its fixed range)."""
    lo, hi = fig.layout.xaxis.range or (np.log10(min(params)), np.log10(max(params)))
    return fig.update_xaxes(**log_ticks(lo, hi, 6), **minor_grid(lo, hi))


def pin_laws_axes(fig: Any, plan: pd.DataFrame, targets: Sequence[float]) -> Any:
    """Fix the scaling-law panels' ranges from the plan (:func:`~flops_fit.visualizer.axes.scaling_laws_ranges`),
    so nothing rescales as optima land, and give each axis a few labelled ticks that fit half a figure's width."""
    ranges = scaling_laws_ranges(plan["budget"], plan["params"], plan["tokens"], targets)
    compute = ranges["compute"]
    for col, quantity in ((1, "params"), (2, "tokens")):
        fig.update_xaxes(range=compute, autorange=False, **log_ticks(*compute, 4, power_label), row=1, col=col,
                         title_text="C (FLOPs)")
        fig.update_yaxes(range=ranges[quantity], autorange=False, **log_ticks(*ranges[quantity], 6), row=1, col=col,
                         title_text=None, **minor_grid(*ranges[quantity]))  # the panel's own title names it (N_opt ∝ C^a): room for the plot
    return fig.update_layout(margin_t=95)  # the two-line title above the panels' own titles


def live_look(fig: Any) -> Any:
    """A figure as the dashboard draws it: no fixed width, see-through (the light theme until the page says
    otherwise), a smaller title, margins that leave the plot most of a narrow cell."""
    return fig.update_layout(paper_bgcolor=CLEAR, plot_bgcolor=CLEAR, width=None, autosize=True,
                             title_font_size=14, margin={"l": 60, "r": 20, "t": 70, "b": 50},
                             # the legend in a row under the plot: beside it, it took a third of a narrow cell
                             legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.2, "yanchor": "top"})


def layout(*, header: Any, adaptive: Any, isoflops: LiveFigure, laws: LiveFigure, curves: LiveFigure,
           side: Sequence[Any], notes: Notes) -> tuple[Any, Any]:
    """The dashboard: ``header`` (progress, Stop, status) and ``adaptive`` across the top; the IsoFLOP and
    scaling-law figures side by side; the loss curves beside ``side`` (tables); the notes at the bottom. Returns
    the dashboard widget and its :func:`page_watch`."""
    W = widgets("SweepMonitor")
    figures = [isoflops, laws, curves]
    watch = page_watch(figures)
    top = columns([cell(isoflops.widget), cell(laws.widget)])
    bottom = columns([cell(curves.widget), cell(*side, padding="0 0 0 4px")])
    widget = W.VBox([header, adaptive, top, bottom, notes.widget, watch], layout=W.Layout(width="100%"))
    widget.add_class("flops-fit-monitor")
    widget.add_class("flops-fit-dashboard")
    return widget, watch


def close_tree(root: Any) -> None:
    """Close ``root`` and every widget it holds: children, figures, layouts and styles."""
    W = widgets("SweepMonitor")
    stack, seen = [root], set()
    while stack:
        widget = stack.pop()
        if id(widget) in seen:
            continue
        seen.add(id(widget))
        for value in list(getattr(widget, "_trait_values", {}).values()):  # raw traits: a plotly layout is no widget
            items = value if isinstance(value, (list, tuple)) else (value,)
            stack.extend(v for v in items if isinstance(v, W.Widget))
        widget.close()


def adaptive_html(event: dict[str, Any], why: dict[str, int]) -> str:
    """An adaptive sweep's state after its latest batch: precision against the target, FLOPs spent, why runs
    were added, and why it stopped."""
    precision, target = event["precision"], event["target_precision"]
    reached = (f"N_opt known within <b>+-{precision:.1%}</b>" if precision != float("inf")
               else "N_opt not yet known (a power law needs bracketed budgets and spare runs)")
    added = ", ".join(f"{n} {reason}" for reason, n in why.items()) or "none yet"
    text = (f"<b>adaptive</b>: {reached}, target +-{target:.0%}; {event['spent']:.3g} FLOPs spent; "
            f"runs added: {escape(added)}")
    if event["stop"]:
        text += f"<br>stopped: {escape(event['stop'])}"
    elif event["reasons"]:
        text += f"; next: {escape(', '.join(event['reasons']))}"
    return f"<div class='flops-fit-adaptive'>{text}</div>"
