"""Plotly figures, each built from a small function that turns frames into the numbers to draw.

``*_data`` functions return DataFrames (tested directly); ``plot_*`` functions only
draw them. plotly is imported when a figure is built.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import _deps
from ._checks import param_error
from ._format import budget_label, human
from .approaches.laws import predict_from_laws
from .errors import FitWarning
from .frames import prepare_results

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


def law_line_data(laws: pd.DataFrame, budgets: Sequence[float], targets: Sequence[float] = (),
                  points: int = 50) -> pd.DataFrame:
    """Fitted N_opt, D_opt and loss (with interval bounds) on a grid from the smallest budget to the largest target."""
    lo = min(budgets)
    hi = max([*budgets, *targets])
    grid = np.geomspace(lo, hi, points)
    return pd.DataFrame([predict_from_laws(laws, c) for c in grid])


def _budget_colours(budgets: Sequence[float]) -> dict[float, str]:
    sample_colorscale = _deps.plotly_colors().sample_colorscale
    ordered = sorted(budgets)
    spots = np.linspace(0.0, 0.8, len(ordered)) if len(ordered) > 1 else [0.0]  # past 0.8 is too pale on white
    return dict(zip(ordered, sample_colorscale("Viridis", list(spots))))


def plot_isoflops(results: pd.DataFrame, optima: pd.DataFrame, *, budgets: Sequence[float] | None = None,
                  fitted: pd.DataFrame | None = None, estimator: str = "parabola",
                  proposed: pd.DataFrame | None = None) -> go.Figure:
    """IsoFLOP curves: loss against N per budget, the fitted curves, and each budget's minimum.

    The curves are ``fitted`` (``budget, params, loss``, as :meth:`flops_fit.Result.isoflop_curves`
    gives them) or, without it, the parabolas the optima describe; the title names the ``estimator``.
    With ``budgets`` (say, every budget of a plan) each gets its three traces even before it
    has data, so a figure redrawn as runs land keeps the same traces and only their data changes.
    ``proposed`` (``budget, params, loss, reason``: runs planned but not yet run, at the loss their
    budget's curve expects) are drawn as hollow markers, a fourth trace per budget.
    """
    go, _ = _deps.plotly()
    with warnings.catch_warnings():  # the fit already warned about left-out runs
        warnings.simplefilter("ignore", FitWarning)
        runs = prepare_results(results, "plot_isoflops", allow_empty=budgets is not None)
    shown = sorted({*runs["budget"].unique(), *(budgets or []),
                    *([] if proposed is None else proposed["budget"].unique())})
    colours = _budget_colours(shown)
    curves = parabola_data(optima) if fitted is None else fitted
    fig = go.Figure()
    for budget in shown:
        group = runs[runs["budget"] == budget]
        colour = colours[budget]
        name = f"{budget_label(budget)} FLOPs"
        fig.add_trace(go.Scatter(
            x=group["params"], y=group["loss"], mode="markers", name=name, legendgroup=name,
            marker={"color": colour, "size": 8},
            customdata=np.stack([group["params"].map(human), group["tokens"].map(human)], axis=-1),
            hovertemplate="N=%{customdata[0]}<br>D=%{customdata[1]}<br>loss=%{y:.4f}<extra>" + name + "</extra>",
        ))
        line = curves[curves["budget"] == budget]
        if not line.empty or budgets is not None:
            fig.add_trace(go.Scatter(x=line["params"], y=line["loss"], mode="lines", legendgroup=name,
                                     showlegend=False, line={"color": colour}, hoverinfo="skip"))
        best = optima.loc[(optima["budget"] == budget) & optima["has_minimum"].astype(bool)]
        if not best.empty or budgets is not None:
            fig.add_trace(go.Scatter(
                x=best["params_opt"], y=best["loss_opt"], mode="markers", legendgroup=name, showlegend=False,
                marker={"symbol": "star", "size": 13, "color": "crimson", "opacity": 0.9,
                        "line": {"color": "white", "width": 1}},
                customdata=np.stack([best["params_opt"].map(human), best["tokens_opt"].map(human)], axis=-1),
                hovertemplate=("fitted minimum<br>N_opt=%{customdata[0]}<br>D_opt=%{customdata[1]}"
                               "<br>loss=%{y:.4f}<extra>" + name + "</extra>"),
            ))
        if proposed is not None:
            waiting = proposed[proposed["budget"] == budget]
            fig.add_trace(go.Scatter(
                x=waiting["params"], y=waiting["loss"], mode="markers", legendgroup=name, showlegend=False,
                marker={"symbol": "circle-open", "size": 9, "color": colour, "line": {"width": 2}},
                customdata=np.stack([waiting["params"].map(human), waiting["reason"].astype(str)], axis=-1)
                if len(waiting) else None,
                hovertemplate="proposed, not run yet (%{customdata[1]})<br>N=%{customdata[0]}<extra>" + name
                              + "</extra>"))
    fig.update_layout(title=f"IsoFLOP curves ({estimator} fit); stars mark each budget's fitted minimum",
                      xaxis_title="parameters N", yaxis_title="final loss", template="plotly_white",
                      legend_title="budget")
    fig.update_xaxes(type="log", dtick=1, exponentformat="power", tickangle=0, minor={"showgrid": True})
    return fig


def plot_scaling_laws(optima: pd.DataFrame, laws: pd.DataFrame, targets: Sequence[float] = (), *,
                      estimator: str = "parabola") -> go.Figure:
    """N_opt and D_opt against C: the budgets' optima, the fitted power laws extended to ``targets``, with bands;
    the title names the ``estimator`` that fitted them."""
    go, make_subplots = _deps.plotly()
    usable = optima.loc[optima["usable"].astype(bool)]
    if laws.empty:  # no law yet (a sweep part-way through): the same traces, without data
        keys = ["target_compute"] + [f"{k}{end}" for k in ("optimal_params", "optimal_tokens")
                                     for end in ("", "_low", "_high")]
        line = pd.DataFrame({k: [] for k in keys}, dtype=float)
        exps = {"params": None, "tokens": None}
    else:
        line = law_line_data(laws, optima["budget"].tolist(), targets)
        exps = laws.set_index("quantity")["exponent"].to_dict()
    power = {q: "?" if e is None else f"{e:.3f}" for q, e in exps.items()}
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        f"N<sub>opt</sub> ∝ C<sup>{power['params']}</sup>", f"D<sub>opt</sub> ∝ C<sup>{power['tokens']}</sup>"))
    panels = [("params_opt", "optimal_params", "N<sub>opt</sub>", "optimal parameters N<sub>opt</sub>"),
              ("tokens_opt", "optimal_tokens", "D<sub>opt</sub>", "optimal tokens D<sub>opt</sub>")]
    for col, (column, key, label, axis_title) in enumerate(panels, start=1):
        fig.add_trace(go.Scatter(
            x=np.concatenate([line["target_compute"], line["target_compute"][::-1]]),
            y=np.concatenate([line[f"{key}_high"], line[f"{key}_low"][::-1]]),
            fill="toself", fillcolor="rgba(31,119,180,0.3)", line={"width": 0}, hoverinfo="skip",
            name="95% interval", showlegend=col == 1, legendgroup="band"), row=1, col=col)
        fig.add_trace(go.Scatter(x=line["target_compute"], y=line[key], mode="lines", name="power-law fit",
                                 line={"color": "#1f77b4"}, showlegend=col == 1, legendgroup="fit",
                                 hoverinfo="skip"), row=1, col=col)
        fig.add_trace(go.Scatter(x=usable["budget"], y=usable[column], mode="markers", name="IsoFLOP optima",
                                 marker={"color": "black", "size": 8}, showlegend=col == 1, legendgroup="optima",
                                 customdata=usable[column].map(human),
                                 hovertemplate="C=%{x:.2e}<br>" + label + "=%{customdata}<extra></extra>"),
                      row=1, col=col)
        if len(targets):
            preds = pd.DataFrame([predict_from_laws(laws, c) for c in targets]) if not laws.empty else line
            text = [f"{human(v)} ({human(lo)}–{human(hi)})"
                    for v, lo, hi in zip(preds[key], preds[f"{key}_low"], preds[f"{key}_high"])]
            fig.add_trace(go.Scatter(
                x=preds["target_compute"], y=preds[key], mode="markers", name="extrapolation",
                marker={"symbol": "diamond-open", "size": 9, "color": "crimson", "line": {"width": 2}},
                error_y={"type": "data", "symmetric": False, "array": preds[f"{key}_high"] - preds[key],
                         "arrayminus": preds[key] - preds[f"{key}_low"], "thickness": 2, "width": 8},
                showlegend=col == 1, legendgroup="targets", customdata=text,
                hovertemplate="C=%{x:.2e}<br>" + label + "=%{customdata}<extra>extrapolation</extra>"),
                row=1, col=col)
        fig.update_xaxes(type="log", dtick=1, exponentformat="power", tickangle=0, title_text="compute C (FLOPs)",
                         row=1, col=col)
        fig.update_yaxes(type="log", dtick=1, exponentformat="power", minor={"showgrid": True},
                         title_text=axis_title, row=1, col=col)
    fig.update_layout(title=f"Compute-optimal scaling ({estimator} fit): power laws, extended to the targets",
                      template="plotly_white")
    return fig


def plot_loss_curves(curves: pd.DataFrame, runs: pd.DataFrame) -> go.Figure:
    """Loss against tokens seen: a line per run of ``runs`` (empty until it has logged), coloured by budget."""
    go, _ = _deps.plotly()
    for name, frame, needed in (("curves", curves, ["run_id", "tokens", "loss"]),
                                ("runs", runs, ["run_id", "budget", "params"])):
        if not isinstance(frame, pd.DataFrame) or not set(needed) <= set(frame.columns):
            got = list(frame.columns) if isinstance(frame, pd.DataFrame) else type(frame).__name__
            raise param_error(name, "plot_loss_curves", f"a DataFrame with columns {', '.join(needed)}", got,
                              "Pass result.curves and result.results (or run_sweep's curves and results).")
    fig = go.Figure()
    runs = runs.drop_duplicates("run_id")
    colours = _budget_colours(list(runs["budget"].unique())) if len(runs) else {}
    by_run = dict(tuple(curves.groupby("run_id", sort=False))) if len(curves) else {}
    empty = pd.DataFrame({"tokens": [], "loss": []})
    shown: set[float] = set()
    for run in runs.itertuples():
        curve = by_run.get(run.run_id, empty)
        name = f"{budget_label(run.budget)} FLOPs"
        fig.add_trace(go.Scatter(
            x=curve["tokens"], y=curve["loss"], mode="lines", name=name, legendgroup=name,
            showlegend=run.budget not in shown, line={"color": colours[run.budget], "width": 1.5},
            hovertemplate=f"N={human(run.params)}<br>tokens=%{{x:.3s}}<br>loss=%{{y:.4f}}<extra>{name}</extra>"))
        shown.add(run.budget)
    fig.update_layout(title="Training loss along each run", xaxis_title="tokens seen", yaxis_title="training loss",
                      template="plotly_white", legend_title="budget")
    fig.update_xaxes(type="log", exponentformat="power")
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
    fig.update_layout(title=f"Backtest ({estimator} fit): a fit without the largest budget(s), against what they "
                            "measured",
                      template="plotly_white")
    return fig
