"""The loss-curve panel: a line per run in its budget's hue, darker for larger sizes, the spike cut off."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _deps
from .._checks import param_error
from .._format import flops, human
from ._common import _budget_colours, _floats, rgb_of

if TYPE_CHECKING:
    import plotly.graph_objects as go


def _shade(colour: str, t: float) -> str:
    """``colour`` (``rgb(r, g, b)``) mixed with white for ``t`` < 0 or black for ``t`` > 0 (|t| <= 1)."""
    rgb = np.array(rgb_of(colour)[0])
    mixed = rgb * (1 - t) if t > 0 else rgb + -t * (255.0 - rgb)
    return "rgb({}, {}, {})".format(*(int(round(v)) for v in np.clip(mixed, 0, 255)))


def loss_curve_colours(runs: pd.DataFrame) -> list[str]:
    """A colour per run of ``runs`` (``budget, params``): its budget's hue, lighter for small sizes and darker for
    large ones within the budget."""
    hues = _budget_colours(list(runs["budget"].unique())) if len(runs) else {}
    budget, params = runs["budget"].to_numpy(dtype=float), runs["params"].to_numpy(dtype=float)
    out = []
    for b, n in zip(budget, params):
        sizes = np.unique(params[budget == b])
        rank = np.searchsorted(sizes, n) / (len(sizes) - 1) if len(sizes) > 1 else 0.5
        out.append(_shade(hues[b], -0.45 + 0.75 * rank))  # lightest (-0.45) to darker (+0.3)
    return out


def loss_clip(curves: pd.DataFrame, skip: float = 0.1, quantile: float = 0.9) -> float | None:
    """The top of the loss axis: the ``quantile`` of losses logged after the first ``skip`` of each run's logged
    points (steps are logged evenly in log tokens, as the axis shows them), padded by a tenth of its distance to
    the lowest loss, so an initial spike does not squash the rest; None before any curve has logged."""
    if not len(curves):
        return None
    runs = curves.groupby("run_id", sort=False)
    position = (runs.cumcount() / runs["loss"].transform("size")).to_numpy(dtype=float)
    loss = curves["loss"].to_numpy(dtype=float)
    later = loss[(position >= skip) & np.isfinite(loss)]
    if not len(later):
        return None
    top, low = float(np.quantile(later, quantile)), float(np.nanmin(loss))
    return top + 0.1 * (top - low)


def loss_curve_traces(curves: pd.DataFrame, runs: pd.DataFrame) -> list[dict[str, Any]]:
    """The traces of :func:`plot_loss_curves`, as plain dicts: a line per run, empty until it has logged, in its
    budget's hue (darker for larger sizes, :func:`loss_curve_colours`), hovering its size, tokens and budget."""
    runs = runs.drop_duplicates("run_id")
    colours = loss_curve_colours(runs)
    by_run = {run_id: (_floats(g["tokens"]), _floats(g["loss"]))
              for run_id, g in curves.groupby("run_id", sort=False)} if len(curves) else {}
    empty = (np.empty(0), np.empty(0))
    shown: set[float] = set()
    traces: list[dict[str, Any]] = []
    for run_id, budget, params, colour in zip(runs["run_id"], runs["budget"], runs["params"], colours):
        tokens, loss = by_run.get(run_id, empty)
        name = f"{flops(budget)} FLOPs"
        traces.append({
            "type": "scatter", "x": tokens, "y": loss, "mode": "lines", "name": name, "legendgroup": name,
            "showlegend": budget not in shown, "line": {"color": colour, "width": 1.5},
            "hovertemplate": (f"<b>N={human(params)}</b> at {flops(budget)} FLOPs<br>tokens=%{{x:.3s}}"
                              f"<br>loss=%{{y:.4f}}<extra>run {run_id}</extra>")})
        shown.add(budget)
    return traces


def loss_axis_buttons() -> list[dict[str, Any]]:
    """The loss curves' log / linear choice for the loss axis, as a plotly ``updatemenus`` dropdown whose header
    names the axis as it is ("loss axis: linear")."""
    # a dropdown, not two buttons: plotly draws the active button near-white whatever the template says, which
    # read as the unpressed one (and, under plotly_dark's light text, could not be read at all); colours of its
    # own, read on a light or a dark page
    return [{"type": "dropdown", "direction": "down", "x": 1.0, "xanchor": "right", "y": 1.12, "yanchor": "bottom",
             "showactive": True, "active": 0, "pad": {"r": 2, "t": 2},
             "bgcolor": "#eef1f6", "bordercolor": "#aab4c3", "font": {"color": "#2a3f5f"},
             "buttons": [{"label": f"loss axis: {kind}", "method": "relayout", "args": [{"yaxis.type": kind}]}
                         for kind in ("linear", "log")]}]


def plot_loss_curves(curves: pd.DataFrame, runs: pd.DataFrame) -> go.Figure:
    """Loss against tokens seen: a line per run of ``runs`` (empty until it has logged), in its budget's hue,
    darker for larger sizes. The loss axis stops at :func:`loss_clip` (the initial spike is cut off) and has a
    log / linear toggle."""
    go, _ = _deps.plotly()
    for name, frame, needed in (("curves", curves, ["run_id", "tokens", "loss"]),
                                ("runs", runs, ["run_id", "budget", "params"])):
        if not isinstance(frame, pd.DataFrame) or not set(needed) <= set(frame.columns):
            got = list(frame.columns) if isinstance(frame, pd.DataFrame) else type(frame).__name__
            raise param_error(name, "plot_loss_curves", f"a DataFrame with columns {', '.join(needed)}", got,
                              "Pass result.curves and result.results (or run_sweep's curves and results).")
    fig = go.Figure(loss_curve_traces(curves, runs))
    fig.update_layout(title="Training loss along each run", xaxis_title="tokens seen", yaxis_title="training loss",
                      template="plotly_white", legend_title="budget", hovermode="closest",
                      updatemenus=loss_axis_buttons())
    fig.update_xaxes(type="log", dtick=1, exponentformat="power", minor={"showgrid": True})
    top = loss_clip(curves)
    if top is not None:  # before any curve, no clip
        fig.update_yaxes(autorangeoptions={"clipmax": top})
    return fig
