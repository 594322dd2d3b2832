"""Plotly figures, each built from a small function that turns frames into the numbers to draw.

``*_data`` functions return DataFrames (tested directly); ``*_traces`` functions turn them into
plain trace dicts (what ``trace.to_plotly_json()`` gives: numbers as numpy arrays, no plotly
objects), and ``plot_*`` functions only draw those. A live figure
(:class:`flops_fit.widgets.LiveFigure`) takes the same trace dicts and sends only those that
changed, without building and validating whole figures again. plotly is imported when a
figure is built.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _deps
from .._checks import param_error
from .._format import flops, human
from ..approaches.laws import t_quantile
from ..errors import FitWarning
from ..frames import prepare_results
from ._common import _budget_colours, _by_budget, _floats, _hover, _human, headed
from .axes import log_ticks, padded, power_label
from .curves import loss_axis_buttons, loss_clip, loss_curve_colours, loss_curve_traces, plot_loss_curves

__all__ = ["headed", "isoflops_range", "isoflops_title", "isoflops_traces", "law_line_data", "law_values",
           "loss_axis_buttons", "loss_clip", "loss_curve_colours", "loss_curve_traces", "parabola_data",
           "plot_backtest", "plot_isoflops", "plot_loss_curves", "plot_scaling_laws", "scaling_laws_titles",
           "scaling_laws_traces", "unlocated_data"]

if TYPE_CHECKING:
    import plotly.graph_objects as go


def parabola_data(optima: pd.DataFrame, points: int = 60, margin: float = 0.04) -> pd.DataFrame:
    """The fitted parabola of each budget with a minimum, over its sampled sizes (plus a margin in ln N).

    Returns ``budget, params, loss``; the parabola is ``loss_opt + curvature * (ln N - ln N_opt)**2``.
    """
    frames = []
    for row in optima.loc[optima["has_minimum"].astype(bool)].itertuples():
        lo, hi = np.log(row.params_min), np.log(row.params_max)
        pad = margin * (hi - lo)
        x = np.linspace(lo - pad, hi + pad, points)
        loss = row.loss_opt + row.curvature * (x - np.log(row.params_opt)) ** 2
        frames.append(pd.DataFrame({"budget": row.budget, "params": np.exp(x), "loss": loss}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["budget", "params", "loss"])


_LAW_NAMES = {"params": "optimal_params", "tokens": "optimal_tokens", "loss": "expected_loss"}


def law_values(laws: pd.DataFrame, compute: Sequence[float] | np.ndarray) -> pd.DataFrame:
    """:func:`~flops_fit.approaches.laws.predict_from_laws` at many budgets at once: a row per budget in
    ``compute`` with the same columns and numbers (delta-method intervals), in one pass over the laws
    instead of one per budget."""
    budgets = np.asarray(compute, dtype=float)
    x0 = np.log(budgets)
    out: dict[str, np.ndarray] = {"target_compute": budgets}
    for row in laws.itertuples():
        covariance = np.array(row.covariance, dtype=float)
        power = np.exp(math.log(row.coefficient) + row.exponent * x0)
        t = t_quantile(getattr(row, "confidence", 0.95), row.dof) if row.dof > 0 else float("nan")
        name = _LAW_NAMES[row.quantity]
        if row.floor > 0:  # y = E + exp(ln k + e x): interval on y itself
            grad = np.stack([np.ones_like(x0), power, x0 * power])  # (3, budgets)
            half = t * np.sqrt(np.maximum(np.einsum("ib,ij,jb->b", grad, covariance, grad), 0.0))
            centre = row.floor + power
            out[name], out[f"{name}_low"], out[f"{name}_high"] = centre, np.maximum(centre - half, 0.0), centre + half
        else:  # ln y = ln k + e x: interval on ln y
            grad = np.stack([np.ones_like(x0), x0])
            half = t * np.sqrt(np.maximum(np.einsum("ib,ij,jb->b", grad, covariance, grad), 0.0))
            out[name], out[f"{name}_low"], out[f"{name}_high"] = power, power * np.exp(-half), power * np.exp(half)
    return pd.DataFrame(out)


def law_line_data(laws: pd.DataFrame, budgets: Sequence[float], targets: Sequence[float] = (),
                  points: int = 50) -> pd.DataFrame:
    """Fitted N_opt, D_opt and loss (with interval bounds) on a grid from the smallest budget to the largest target."""
    lo = min(budgets)
    hi = max([*budgets, *targets])
    return law_values(laws, np.geomspace(lo, hi, points))


def unlocated_data(optima: pd.DataFrame, runs: pd.DataFrame | None = None,
                   waiting: pd.DataFrame | None = None) -> pd.DataFrame:
    """Budgets whose minimum is not located inside their sampled sizes (``inside`` False): ``budget, params, loss,
    side, hint``. ``side`` is where the minimum lies (``left``/``right`` of the sizes run, ``""`` where the loss does
    not curve at all), ``params, loss`` the edge run it lies beyond (from ``runs``, else the lowest loss), ``hint``
    what to do, in plain words; sizes of ``waiting`` (planned, not run yet) beyond the edge are still to come."""
    columns = ["budget", "params", "loss", "side", "hint"]
    if not len(optima):
        return pd.DataFrame(columns=columns)
    rows = []
    for row in optima.loc[~optima["inside"].astype(bool)].itertuples():
        side = ("left" if row.params_opt <= row.params_min * (1 + 1e-6) else
                "right" if row.params_opt >= row.params_max * (1 - 1e-6) else "")
        x = {"left": row.params_min, "right": row.params_max}.get(side, row.params_opt)
        y = row.loss_opt if not row.has_minimum else float("nan")
        if runs is not None and len(runs):
            mine = runs.loc[runs["budget"].to_numpy(dtype=float) == row.budget]
            if len(mine):
                gap = np.abs(np.log(mine["params"].to_numpy(dtype=float) / x))
                y = float(mine["loss"].to_numpy(dtype=float)[np.argmin(gap)])
        later = (np.empty(0) if waiting is None or not len(waiting) else
                 waiting.loc[waiting["budget"].to_numpy(dtype=float) == row.budget, "params"].to_numpy(dtype=float))
        if not side:
            hint = "no minimum yet: loss does not curve upwards over these sizes"
        elif (later < x).any() if side == "left" else (later > x).any():
            hint = f"minimum lies {side} of the sizes run so far: {'smaller' if side == 'left' else 'larger'} " \
                   "sizes are still to run"
        else:
            edge = "smallest" if side == "left" else "largest"
            hint = f"minimum lies {side} of the {edge} size: extend sizes {side}"
        rows.append({"budget": row.budget, "params": x, "loss": y, "side": side, "hint": hint})
    return pd.DataFrame(rows, columns=columns)


def isoflops_range(params: Sequence[float], pad: float = 0.08) -> list[float]:
    """The IsoFLOP figure's x range (log10 N) for planned ``params``: all of them, padded by ``pad`` of the span
    (at least 0.05 decades) on each side. From a plan it is known before any run, so nothing rescales."""
    logs = np.log10(_floats(params))
    lo, hi = float(logs.min()), float(logs.max())
    margin = max(pad * (hi - lo), 0.05)
    return [lo - margin, hi + margin]


def isoflops_traces(results: pd.DataFrame, optima: pd.DataFrame, *, budgets: Sequence[float] | None = None,
                    fitted: pd.DataFrame | None = None, proposed: pd.DataFrame | None = None,
                    prepared: bool = False) -> list[dict[str, Any]]:
    """The traces of :func:`plot_isoflops`, as plain dicts: per budget its runs, its fitted curve, its minimum
    (a star, only where located inside its sizes), a hollow edge marker with a hint where the minimum is not
    located (:func:`unlocated_data`) and, with ``proposed``, the runs not yet run (hollow markers). ``prepared=True`` says ``results``
    holds only usable runs with a budget already (as :func:`~flops_fit.frames.prepare_results` leaves them)."""
    if prepared:
        runs = results
    else:
        with warnings.catch_warnings():  # the fit already warned about left-out runs
            warnings.simplefilter("ignore", FitWarning)
            runs = prepare_results(results, "plot_isoflops", allow_empty=budgets is not None)
    shown = sorted({*runs["budget"].unique(), *(budgets or []),
                    *([] if proposed is None else proposed["budget"].unique())})
    colours = _budget_colours(shown)
    curves = parabola_data(optima) if fitted is None else fitted
    located = optima["has_minimum"].astype(bool) & optima["inside"].astype(bool) if len(optima) else None
    minima = optima.loc[located] if len(optima) else optima  # a vertex outside the sizes is no minimum: no star
    edges_of = _by_budget(unlocated_data(optima, runs, proposed), "params", "loss", "side", "hint")
    runs_of, curve_of = _by_budget(runs, "params", "tokens", "loss"), _by_budget(curves, "params", "loss")
    best_of = _by_budget(minima, "params_opt", "tokens_opt", "loss_opt")
    waiting_of = None if proposed is None else _by_budget(proposed, "params", "loss", "reason")
    traces: list[dict[str, Any]] = []
    for budget in shown:
        group, line, best = runs_of(budget), curve_of(budget), best_of(budget)
        colour = colours[budget]
        name = f"{flops(budget)} FLOPs"
        traces.append({
            "type": "scatter", "x": _floats(group["params"]), "y": _floats(group["loss"]), "mode": "markers",
            "name": name, "legendgroup": name, "marker": {"color": colour, "size": 8},
            "customdata": _hover(_human(group["params"]), _human(group["tokens"])),
            "hovertemplate": "N=%{customdata[0]}<br>D=%{customdata[1]}<br>loss=%{y:.4f}<extra>" + name + "</extra>"})
        if len(line["params"]) or budgets is not None:
            traces.append({"type": "scatter", "x": _floats(line["params"]), "y": _floats(line["loss"]),
                           "mode": "lines", "legendgroup": name, "showlegend": False, "line": {"color": colour},
                           "hoverinfo": "skip"})
        if len(best["params_opt"]) or budgets is not None:
            traces.append({
                "type": "scatter", "x": _floats(best["params_opt"]), "y": _floats(best["loss_opt"]),
                "mode": "markers", "legendgroup": name, "showlegend": False,
                "marker": {"symbol": "star", "size": 13, "color": "crimson", "opacity": 0.9,
                           "line": {"color": "white", "width": 1}},
                "customdata": _hover(_human(best["params_opt"]), _human(best["tokens_opt"])),
                "hovertemplate": ("fitted minimum<br>N_opt=%{customdata[0]}<br>D_opt=%{customdata[1]}"
                                  "<br>loss=%{y:.4f}<extra>" + name + "</extra>")})
        edge = edges_of(budget)
        if len(edge["params"]) or budgets is not None:  # minimum not located: a hollow marker at the edge, a hint
            sides = [str(s) for s in edge["side"]]
            traces.append({
                "type": "scatter", "x": _floats(edge["params"]), "y": _floats(edge["loss"]), "mode": "markers+text",
                "legendgroup": name, "showlegend": False, "textposition": "top center",
                "text": [{"left": "◀ min further left", "right": "min further right ▶"}.get(s, "no minimum yet")
                         for s in sides], "textfont": {"color": colour, "size": 11},
                "marker": {"symbol": [{"left": "triangle-left-open", "right": "triangle-right-open"}.get(
                    s, "circle-open-dot") for s in sides], "size": 14, "color": colour, "line": {"width": 2}},
                "customdata": [str(h) for h in edge["hint"]],
                "hovertemplate": "minimum not located<br>%{customdata}<extra>" + name + "</extra>"})
        if waiting_of is not None:
            waiting = waiting_of(budget)
            trace = {"type": "scatter", "x": _floats(waiting["params"]), "y": _floats(waiting["loss"]),
                     "mode": "markers", "legendgroup": name, "showlegend": False,
                     "marker": {"symbol": "circle-open", "size": 9, "color": colour, "line": {"width": 2}},
                     "hovertemplate": "proposed, not run yet (%{customdata[1]})<br>N=%{customdata[0]}<extra>" + name
                                      + "</extra>"}
            if len(waiting["params"]):
                trace["customdata"] = _hover(_human(waiting["params"]), [str(r) for r in waiting["reason"]])
            traces.append(trace)
    return traces


def isoflops_title(estimator: str = "parabola") -> str:
    """The IsoFLOP figure's title, naming the ``estimator``."""
    return headed(f"IsoFLOP curves ({estimator} fit)", "stars mark each budget's located minimum")


def plot_isoflops(results: pd.DataFrame, optima: pd.DataFrame, *, budgets: Sequence[float] | None = None,
                  fitted: pd.DataFrame | None = None, estimator: str = "parabola",
                  proposed: pd.DataFrame | None = None,
                  params_range: Sequence[float] | None = None) -> go.Figure:
    """IsoFLOP curves: loss against N per budget, the fitted curves, and each budget's minimum.

    The curves are ``fitted`` (``budget, params, loss``, as :meth:`flops_fit.Result.isoflop_curves`
    gives them) or, without it, the parabolas the optima describe; the title names the ``estimator``.
    With ``budgets`` (say, every budget of a plan) each gets its four traces even before it
    has data, so a figure redrawn as runs land keeps the same traces and only their data changes.
    ``proposed`` (``budget, params, loss, reason``: runs planned but not yet run, at the loss their
    budget's curve expects) are drawn as hollow markers, a fifth trace per budget. ``params_range``
    (say, a plan's params) fixes the x range to cover them (:func:`isoflops_range`) instead of autoscaling.
    """
    go, _ = _deps.plotly()
    fig = go.Figure(isoflops_traces(results, optima, budgets=budgets, fitted=fitted, proposed=proposed))
    fig.update_layout(title=isoflops_title(estimator), xaxis_title="parameters N", yaxis_title="final loss",
                      template="plotly_white", legend_title="budget")
    fig.update_xaxes(type="log", exponentformat="power", tickangle=0, minor={"showgrid": True})
    if params_range is not None and len(params_range):
        span = isoflops_range(params_range)
        fig.update_xaxes(range=span, autorange=False)
    else:
        span = padded([v for trace in fig.data if trace.x is not None for v in trace.x])
    return fig.update_xaxes(**log_ticks(*span, 7)) if span else fig


_LAW_PANELS = [("params_opt", "optimal_params", "N<sub>opt</sub>", "optimal parameters N<sub>opt</sub>"),
               ("tokens_opt", "optimal_tokens", "D<sub>opt</sub>", "optimal tokens D<sub>opt</sub>")]


def scaling_laws_traces(optima: pd.DataFrame, laws: pd.DataFrame,
                        targets: Sequence[float] = ()) -> list[dict[str, Any]]:
    """The traces of :func:`plot_scaling_laws`, as plain dicts: per panel (N_opt left, D_opt right) the band,
    the fitted law, the budgets' optima and, with ``targets``, the extrapolations. The same traces whether or
    not a law is fitted yet (then without data)."""
    usable = optima.loc[optima["usable"].astype(bool)]
    if laws.empty:  # no law yet (a sweep part-way through): the same traces, without data
        keys = ["target_compute"] + [f"{k}{end}" for k in ("optimal_params", "optimal_tokens")
                                     for end in ("", "_low", "_high")]
        line = preds = pd.DataFrame({k: [] for k in keys}, dtype=float)
    else:
        line = law_line_data(laws, optima["budget"].tolist(), targets)
        preds = law_values(laws, targets)
    compute = _floats(line["target_compute"])
    traces: list[dict[str, Any]] = []
    for col, (column, key, label, _) in enumerate(_LAW_PANELS, start=1):
        axes = {"xaxis": f"x{col if col > 1 else ''}", "yaxis": f"y{col if col > 1 else ''}"}
        first = col == 1
        band = _floats(line[f"{key}_low"])
        bare = len(compute) > 0 and not np.isfinite(band).any()  # fitted without an interval (2 budgets, no dof)
        few = _n_budgets(laws, column)
        weak = bare or 0 < few <= 2  # through 2 budgets' optima: an extrapolation to read with care
        fit_name = "power-law fit" + (f" ({few} budgets{', no interval' if bare else ''})" if 0 < few <= 2 else
                                      " (no interval)" if bare else "")
        traces.append({"type": "scatter", "x": np.concatenate([compute, compute[::-1]]) if not bare else np.empty(0),
                       "y": (np.concatenate([_floats(line[f"{key}_high"]), band[::-1]]) if not bare else
                             np.empty(0)),
                       "mode": "lines", "fill": "toself", "fillcolor": "rgba(31,119,180,0.35)",
                       "line": {"width": 1, "color": "rgba(31,119,180,0.7)"},  # edged: a narrow band still shows
                       "hoverinfo": "skip", "name": "95% interval", "showlegend": first, "legendgroup": "band",
                       **axes})
        traces.append({"type": "scatter", "x": compute, "y": _floats(line[key]), "mode": "lines",
                       "name": fit_name, "line": {"color": "#1f77b4", "dash": "dash" if weak else "solid"},
                       "showlegend": first, "legendgroup": "fit",
                       "hovertemplate": "C=%{x:.2e}<br>" + label + "=%{y:.3s}<extra>" + fit_name + "</extra>",
                       **axes})
        traces.append({"type": "scatter", "x": _floats(usable["budget"]), "y": _floats(usable[column]),
                       "mode": "markers", "name": "IsoFLOP optima", "marker": {"color": "black", "size": 8},
                       "showlegend": first, "legendgroup": "optima", "customdata": _human(usable[column]),
                       "hovertemplate": "C=%{x:.2e}<br>" + label + "=%{customdata}<extra></extra>", **axes})
        if len(targets):
            value, low, high = (_floats(preds[f"{key}{end}"]) for end in ("", "_low", "_high"))
            traces.append({
                "type": "scatter", "x": _floats(preds["target_compute"]), "y": value, "mode": "markers",
                "name": "extrapolation",
                "marker": {"symbol": "diamond-open", "size": 9, "color": "crimson", "line": {"width": 2}},
                "error_y": {"type": "data", "symmetric": False, "array": high - value, "arrayminus": value - low,
                            "thickness": 2, "width": 8},
                "showlegend": first, "legendgroup": "targets",
                "customdata": [f"{human(v)} ({human(lo)}–{human(hi)})" if np.isfinite(lo) and np.isfinite(hi) else
                               f"{human(v)} (no interval)" for v, lo, hi in zip(value, low, high)],
                "hovertemplate": "C=%{x:.2e}<br>" + label + "=%{customdata}<extra>extrapolation</extra>", **axes})
    return traces


def _n_budgets(laws: pd.DataFrame, column: str) -> int:
    """How many budgets the law of ``column`` (``params_opt``...) was fitted on (0 where unknown)."""
    rows = laws.loc[laws["quantity"] == column.removesuffix("_opt"), "n_budgets"] if len(laws) else []
    return int(rows.iloc[0]) if len(rows) and pd.notna(rows.iloc[0]) else 0


def scaling_laws_titles(laws: pd.DataFrame, estimator: str = "parabola") -> dict[str, str]:
    """The scaling-law figure's texts that follow the fit: ``title`` and each panel's (``params``, ``tokens``),
    which shows its exponent ("?" before a law is fitted)."""
    exps = {} if laws.empty else laws.set_index("quantity")["exponent"].to_dict()
    power = {q: "?" if exps.get(q) is None else f"{exps[q]:.3f}" for q in ("params", "tokens")}
    return {"title": headed(f"Compute-optimal scaling ({estimator} fit)", "power laws, extended to the targets"),
            "params": f"N<sub>opt</sub> ∝ C<sup>{power['params']}</sup>",
            "tokens": f"D<sub>opt</sub> ∝ C<sup>{power['tokens']}</sup>"}


def plot_scaling_laws(optima: pd.DataFrame, laws: pd.DataFrame, targets: Sequence[float] = (), *,
                      estimator: str = "parabola") -> go.Figure:
    """N_opt and D_opt against C: the budgets' optima, the fitted power laws extended to ``targets``, with bands;
    the title names the ``estimator`` that fitted them."""
    go, make_subplots = _deps.plotly()
    titles = scaling_laws_titles(laws, estimator)
    fig = make_subplots(rows=1, cols=2, subplot_titles=(titles["params"], titles["tokens"]))
    traces = scaling_laws_traces(optima, laws, targets)
    fig.add_traces(traces)
    for col, (_, _, _, axis_title) in enumerate(_LAW_PANELS, start=1):
        mine = [t for t in traces if t["xaxis"] == ("x2" if col == 2 else "x")]
        # a few labelled ticks, thinned to fit half a figure (labels a decade apart ran together)
        compute, values = (padded(np.concatenate([_floats(t[key]) for t in mine])) for key in ("x", "y"))
        fig.update_xaxes(type="log", exponentformat="power", tickangle=0, title_text="compute C (FLOPs)",
                         **(log_ticks(*compute, 4, power_label) if compute else {}), row=1, col=col)
        fig.update_yaxes(type="log", exponentformat="power", minor={"showgrid": True}, title_text=axis_title,
                         **(log_ticks(*values, 6) if values else {}), row=1, col=col)
    fig.update_layout(title=titles["title"], template="plotly_white")
    return fig


def plot_backtest(backtest: pd.DataFrame, *, estimator: str = "parabola") -> go.Figure:
    """What a fit without the largest budget(s) predicted for them (with its interval) against what they measured
    (:meth:`flops_fit.Result.backtest`): N_opt on the left, the optimal loss on the right."""
    go, make_subplots = _deps.plotly()
    needed = ["budget", "quantity", "predicted", "low", "high", "measured", "held"]
    if not isinstance(backtest, pd.DataFrame) or not set(needed) <= set(backtest.columns):
        raise param_error("backtest", "plot_backtest", "the DataFrame of Result.backtest()",
                          type(backtest).__name__)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("N<sub>opt</sub> of the held-out budget(s)",
                                                        "optimal loss of the held-out budget(s)"))
    for col, quantity in enumerate(("params", "loss"), start=1):
        rows = backtest[backtest["quantity"] == quantity]
        fig.add_trace(go.Scatter(
            x=rows["budget"], y=rows["predicted"], mode="markers", name="predicted without them",
            marker={"symbol": "diamond-open", "size": 10, "color": "#1f77b4", "line": {"width": 2}},
            error_y={"type": "data", "symmetric": False, "array": rows["high"] - rows["predicted"],
                     "arrayminus": rows["predicted"] - rows["low"], "thickness": 2, "width": 8},
            showlegend=col == 1, legendgroup="predicted"), row=1, col=col)
        fig.add_trace(go.Scatter(
            x=rows["budget"], y=rows["measured"], mode="markers", name="measured",
            marker={"color": ["crimson" if h is False else "black" for h in rows["held"].astype(object)], "size": 9},
            customdata=[{True: "inside the interval", False: "outside the interval"}.get(h, "no interval")
                        for h in rows["held"].astype(object)],
            hovertemplate="C=%{x:.2e}<br>measured %{y:.4g}<br>%{customdata}<extra></extra>",
            showlegend=col == 1, legendgroup="measured"), row=1, col=col)
        fig.update_xaxes(type="log", exponentformat="power", title_text="compute C (FLOPs)", row=1, col=col)
    fig.update_yaxes(type="log", exponentformat="power", title_text="parameters", row=1, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=2)
    fig.update_layout(title=headed(f"Backtest ({estimator} fit)",
                                   "a fit without the largest budget(s), against what they measured"),
                      template="plotly_white")
    return fig
