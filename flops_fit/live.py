"""What the widgets show while a sweep is planned and run: pure functions of DataFrames.

The widgets in :mod:`flops_fit.widgets` only lay out controls and draw what these
return, so everything here is tested without a notebook or a browser.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from ._format import flops, human
from .result import Result, default_targets
from .schema import FINISHED, LAW_COLUMNS, OPTIMA_COLUMNS, Status
from .spec import PlanSpec
from .visualizer import (headed, isoflops_title, isoflops_traces, loss_clip, loss_curve_traces, plot_isoflops,
                         plot_loss_curves, plot_scaling_laws, scaling_laws_titles, scaling_laws_traces, unlocated_data)

if TYPE_CHECKING:
    import plotly.graph_objects as go


def budget_options(low: float = 1e9, high: float = 1e25) -> list[float]:
    """Budgets a slider offers: 1 and 3 times each power of ten from ``low`` to ``high``.

    >>> [f"{c:.0e}" for c in budget_options(1e17, 1e18)]
    ['1e+17', '3e+17', '1e+18']
    """
    values = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        values += [float(f"1e{exponent}"), float(f"3e{exponent}")]  # 1e23, not 10.0**23 (which is not 1e23)
    return [v for v in values if low * (1 - 1e-9) <= v <= high * (1 + 1e-9)]


def budget_grid(low: float, high: float, count: int) -> list[float]:
    """``count`` budgets evenly spaced in log C from ``low`` to ``high``, each rounded to 2 significant digits.

    >>> budget_grid(1e17, 1e21, 5)
    [1e+17, 1e+18, 1e+19, 1e+20, 1e+21]
    >>> budget_grid(1e18, 1e19, 3)
    [1e+18, 3.2e+18, 1e+19]
    """
    if count < 2 or not 0 < low < high:
        raise ValueError(f"budget_grid needs 0 < low < high and count >= 2; got {low}, {high}, {count}")
    return [float(f"{c:.2g}") for c in np.geomspace(low, high, count)]


def plan_summary(plan: pd.DataFrame, mode: str, flops_per_second: float | None = None) -> dict[str, Any]:
    """Runs, budgets, total compute and an estimated wall time for a plan.

    Mock runs are counted at 2 ms each; real ones take their FLOPs divided by
    ``flops_per_second`` (unknown when it is None).
    """
    total = float(plan["flops"].sum())  # what each run will spend, as SweepPlan.total_compute counts it
    if mode == "mock":
        seconds = 0.002 * len(plan)
    elif flops_per_second:
        seconds = total / flops_per_second
    else:
        seconds = float("nan")
    return {"runs": len(plan), "budgets": int(plan["budget"].nunique()), "total_flops": total, "seconds": seconds}


def duration(seconds: float) -> str:
    """A wall time the way people say it.

    >>> duration(0.09), duration(75), duration(5400), duration(3 * 86400)
    ('under a second', '1.2 min', '1.5 h', '3 days')
    """
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 1:
        return "under a second"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.2g} {unit}"
    return f"{seconds:.2g} s"


def plan_table(plan: pd.DataFrame) -> pd.DataFrame:
    """The plan as people read it: budget, knob value, N, D and D/N per run."""
    return pd.DataFrame({
        "budget": plan["budget"].map(flops),
        "size": plan["size"].astype(int),
        "N": plan["params"].map(human),
        "D": plan["tokens"].map(human),
        "D/N": (plan["tokens"] / plan["params"]).map(lambda r: f"{r:.3g}"),
    }).reset_index(drop=True)


def runs_table(results: pd.DataFrame) -> pd.DataFrame:
    """Every planned run with its status and, once finished, its loss."""
    loss = pd.to_numeric(results["loss"], errors="coerce") if "loss" in results else pd.Series(np.nan, results.index)
    return pd.DataFrame({
        "budget": results["budget"].map(flops),
        "N": results["params"].map(human),
        "D": results["tokens"].map(human),
        "status": results["status"].astype(str),
        "loss": [f"{v:.4f}" if math.isfinite(v) else "" for v in loss.astype(float)],
    }).reset_index(drop=True)


_NUMBER = re.compile(r"^[-+0-9.,eEkKMBT%()–\s]*$")  # 1.00e+17, 28.9M, 4.317, 5.46B (5.2B–5.7B)


def html_table(frame: pd.DataFrame) -> str:
    """A frame of texts as an HTML table, as ``frame.to_html(index=False, border=0)`` draws it (pandas takes
    milliseconds to write one), each column aligned as its values read: numbers right, words left, its header
    with them.

    >>> table = html_table(pd.DataFrame({"loss": ["<1"]}))
    >>> table[table.index("<tbody>"):]
    '<tbody><tr><td style="text-align:left;padding:1px 0.5em">&lt;1</td></tr></tbody></table>'
    """
    align = [f' style="text-align:{"right" if frame[c].astype(str).str.match(_NUMBER).all() else "left"};'
             'padding:1px 0.5em"' for c in frame.columns]
    head = "".join(f"<th{a}>{escape(str(name))}</th>" for name, a in zip(frame.columns, align))
    body = "".join("<tr>" + "".join(f"<td{a}>{escape(str(value))}</td>" for value, a in zip(row, align)) + "</tr>"
                   for row in frame.itertuples(index=False, name=None))
    return f'<table class="dataframe"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def status_counts(results: pd.DataFrame) -> dict[str, int]:
    """Runs per status (0 where none), and ``finished``: completed, diverged or failed."""
    counts = results["status"].value_counts()
    out = {s: int(counts.get(s, 0)) for s in (*FINISHED, Status.PENDING.value)}
    out["finished"] = sum(out[s] for s in FINISHED)
    return out


@dataclass
class Snapshot:
    """A sweep as it stands: every planned run, the fit of what completed so far, and why a fit is missing."""

    results: pd.DataFrame
    result: Result | None = None
    notes: list[str] = field(default_factory=list)  # in plain words (:func:`plain_notes`)
    messages: list[str] = field(default_factory=list)  # what the fit raised or warned, word for word

    @property
    def counts(self) -> dict[str, int]:
        return status_counts(self.results)

    @property
    def finished(self) -> int:
        return self.counts["finished"]

    @property
    def has_laws(self) -> bool:
        return self.result is not None and not self.result.laws.empty


def snapshot(results: pd.DataFrame, curves: pd.DataFrame | None = None,
             extrapolate_to: Sequence[float] | None = None, spec: PlanSpec | None = None) -> Snapshot:
    """Fit whatever has completed: optima for budgets with 3 or more sizes, laws once 2 budgets have one.

    Fit warnings are collected into ``notes`` instead of being raised, since a sweep
    part-way through is expected to be missing things.
    """
    snap = Snapshot(results=results)
    if not (results["status"] == Status.COMPLETED.value).any():
        snap.notes.append("No run has completed yet.")
        return snap
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            snap.result = Result.from_results(results, curves=curves, extrapolate_to=extrapolate_to, spec=spec)
        except ValueError as exc:
            snap.messages.append(str(exc))
    snap.messages += [str(w.message) for w in caught]
    snap.notes = plain_notes(snap)
    return snap


_NOTES = [  # (what a fit's message says, the note in plain words; None: said by the budgets' own notes)
    (r"budget\(s\) (?P<budgets>.+?) with fewer than (?P<n>\d+) usable sizes",
     "Budget {budgets}: its curve is fitted once {n} sizes have finished."),
    (r"no power law could be fitted|at least 2 budgets|2 or more compute budgets",
     "Power laws need a located minimum at 2 budgets or more; {located} so far."),
    (r"with one budget the law's shape", "One budget so far: its minimum is read from a parabola until a second "
                                         "budget has runs."),
    (r"the (?P<law>\w+) law\(s\) have no degrees of freedom|(?P<laws>power laws) pass exactly",
     "The {law} law has no interval yet: too few budgets or runs."),
    (r"whose minimum could not be located|^budget \S+: ", None),
    (r"arg is an empty sequence|index \d+ is out of bounds|division by zero", "Not enough finished runs to fit yet."),
]


def plain_notes(snap: Snapshot) -> list[str]:
    """The snapshot's fit messages in plain words, without the API's wording ("The 'optima' parameter of ...
    Got '1 usable'"), then a note per budget whose minimum is not located, saying where it lies and what to do.
    A message not recognised is kept, without the name of the function that said it."""
    located = 0 if snap.result is None else len(snap.result.located_budgets)
    notes = []
    for message in snap.messages:
        for pattern, plain in _NOTES:
            found = re.search(pattern, message)
            if found:
                if plain is not None:
                    words = {k: v for k, v in found.groupdict().items() if v is not None}
                    words.setdefault("law", "power")
                    if "budgets" in words:
                        words["budgets"] = ", ".join(flops(float(b)) for b in words["budgets"].split(", "))
                    notes.append(plain.format(located=located, **words))
                break
        else:
            notes.append(re.sub(r"^[\w.]+: ", "", message))
    if snap.result is not None:
        status = snap.results["status"].to_numpy(dtype=object)
        waiting = snap.results.loc[np.isin(status, [Status.PENDING.value, Status.RUNNING.value]), ["budget", "params"]]
        edges = unlocated_data(snap.result.optima, completed_runs(snap.results), waiting)
        notes += [f"Budget {flops(b)}: {hint}." for b, hint in zip(edges["budget"], edges["hint"])]
    return list(dict.fromkeys(notes))


def readable_backtest(backtest: pd.DataFrame) -> pd.DataFrame:
    """:meth:`~flops_fit.Result.backtest` as people read it: short numbers, the interval in one column,
    ``held`` as yes / no / no interval. The monitor, ``ff-analyze`` and the benchmark all show this."""
    shown = {"params": human, "loss": lambda v: f"{v:.3f}"}
    quantities = backtest["quantity"]
    return pd.DataFrame({
        "budget": backtest["budget"].map(flops),
        "quantity": quantities.map({"params": "N_opt", "loss": "loss"}),
        "predicted": [shown[q](v) for q, v in zip(quantities, backtest["predicted"])],
        "interval": [f"{shown[q](lo)}–{shown[q](hi)}" for q, lo, hi in zip(quantities, backtest["low"],
                                                                          backtest["high"])],
        "measured": [shown[q](v) for q, v in zip(quantities, backtest["measured"])],
        "error": backtest["relative_error"].map(lambda v: f"{v:+.1%}"),
        "held": backtest["held"].astype(object).map({True: "yes", False: "no"}).fillna("no interval"),
    })


def backtest_table(snap: Snapshot, min_budgets: int = 4) -> pd.DataFrame | None:
    """The readable backtest (the largest budget predicted from the others) once ``min_budgets`` budgets have
    a located minimum; None before."""
    result = snap.result
    if result is None or len(result.located_budgets) < min_budgets:
        return None
    return readable_backtest(result.backtest())


def targets_for(budgets: Sequence[float], extrapolate_to: Sequence[float] | None = None) -> list[float]:
    """What to extrapolate to: ``extrapolate_to``, else 10x and 100x the largest budget (as :class:`Result`)."""
    return list(extrapolate_to) if extrapolate_to else default_targets(budgets)


class FigureUpdate(NamedTuple):
    """A live figure's next state as plain data (what :meth:`flops_fit.widgets.LiveFigure.update` takes):
    every trace as a dict, and the layout's texts that follow the data, as dotted paths."""

    data: list[dict[str, Any]]
    layout: dict[str, Any]


def _fits(snap: Snapshot) -> tuple[pd.DataFrame, pd.DataFrame]:
    if snap.result is None:
        return pd.DataFrame(columns=OPTIMA_COLUMNS), pd.DataFrame(columns=LAW_COLUMNS)
    return snap.result.optima, snap.result.laws


def completed_runs(results: pd.DataFrame) -> pd.DataFrame:
    """The completed runs of a sweep's own results frame with every number usable: the rows
    :func:`~flops_fit.frames.prepare_results` keeps of such a frame (whose statuses are spelled as the runner
    spells them, with a budget per run), without checking again what the runner guarantees."""
    numbers = np.column_stack([pd.to_numeric(results[c], errors="coerce").to_numpy(dtype=float)
                               for c in ("params", "tokens", "loss", "budget")])
    usable = (results["status"] == Status.COMPLETED.value).to_numpy(bool) & np.isfinite(numbers).all(axis=1) & (
        numbers > 0).all(axis=1)
    return results.loc[usable].reset_index(drop=True)


def _isoflops_inputs(snap: Snapshot) -> dict[str, Any]:
    optima, _ = _fits(snap)
    fitted = None if snap.result is None else snap.result.isoflop_curves()
    return {"optima": optima, "budgets": sorted(snap.results["budget"].unique()), "fitted": fitted,
            "proposed": proposed_points(snap.results, fitted)}


def _isoflops_title(snap: Snapshot) -> str:
    return headed("IsoFLOP curves", "waiting for the first run") if snap.result is None else isoflops_title(
        snap.result.estimator)


def isoflops_figure(snap: Snapshot) -> go.Figure:
    """The IsoFLOP figure of what completed so far, with traces for every planned budget from the start
    (so a redraw only changes data)."""
    return plot_isoflops(snap.results, params_range=snap.results["params"], **_isoflops_inputs(snap)).update_layout(
        title=_isoflops_title(snap))


def isoflops_update(snap: Snapshot) -> FigureUpdate:
    """:func:`isoflops_figure` as plain data, for a live figure to redraw from (its x range is the plan's, fixed
    when the figure is drawn: a redraw does not move it)."""
    traces = isoflops_traces(completed_runs(snap.results), prepared=True, **_isoflops_inputs(snap))
    return FigureUpdate(traces, {"title.text": _isoflops_title(snap)})


def proposed_points(results: pd.DataFrame, fitted: pd.DataFrame | None) -> pd.DataFrame:
    """Runs not yet finished (``budget, params, loss, reason``), each at the loss its budget's fitted curve
    expects (or, before a curve, the budget's median loss so far); those with neither are left out."""
    columns = ["budget", "params", "loss", "reason"]
    status = results["status"].to_numpy(dtype=object)
    waiting = np.isin(status, [Status.PENDING.value, Status.RUNNING.value])
    if not waiting.any():
        return pd.DataFrame(columns=columns)
    budget, params = results["budget"].to_numpy(dtype=float), results["params"].to_numpy(dtype=float)
    seen = np.where(status == Status.COMPLETED.value, pd.to_numeric(results["loss"], errors="coerce"), np.nan)
    curve_budget, curve_params, curve_loss = ((np.empty(0),) * 3 if fitted is None else
                                              (fitted[c].to_numpy(dtype=float) for c in ("budget", "params", "loss")))
    loss = np.full(len(results), np.nan)
    for b in np.unique(budget[waiting]):
        rows, on_curve = waiting & (budget == b), curve_budget == b
        if on_curve.any():
            order = np.argsort(curve_params[on_curve])
            loss[rows] = np.interp(np.log(params[rows]), np.log(curve_params[on_curve][order]),
                                   curve_loss[on_curve][order])
        elif np.isfinite(seen[budget == b]).any():
            loss[rows] = np.nanmedian(seen[budget == b])
    keep = waiting & np.isfinite(loss)
    reason = results["reason"].fillna("").astype(str).to_numpy() if "reason" in results else np.full(len(results), "")
    return pd.DataFrame({"budget": budget[keep], "params": results["params"].to_numpy()[keep], "loss": loss[keep],
                         "reason": reason[keep]}, columns=columns)


def _laws_titles(snap: Snapshot) -> dict[str, str]:
    optima, laws = _fits(snap)
    titles = scaling_laws_titles(laws, "parabola" if snap.result is None else snap.result.estimator)
    if laws.empty:
        located = int(optima["usable"].astype(bool).sum()) if len(optima) else 0
        titles["title"] = headed("Compute-optimal scaling", "the power laws appear once 2 budgets have a located "
                                 f"minimum ({located} so far)")
    return titles


def laws_figure(snap: Snapshot, targets: Sequence[float]) -> go.Figure:
    """The scaling-law panel, extended to ``targets``; its traces are there (empty) before any law is fitted."""
    optima, laws = _fits(snap)
    fig = plot_scaling_laws(optima, laws, targets, **({} if snap.result is None else
                                                      {"estimator": snap.result.estimator}))
    return fig.update_layout(title=_laws_titles(snap)["title"])


def laws_update(snap: Snapshot, targets: Sequence[float]) -> FigureUpdate:
    """:func:`laws_figure` as plain data, for a live figure to redraw from."""
    optima, laws = _fits(snap)
    titles = _laws_titles(snap)
    return FigureUpdate(scaling_laws_traces(optima, laws, targets), {
        "title.text": titles["title"], "annotations[0].text": titles["params"],
        "annotations[1].text": titles["tokens"]})


def curves_figure(curves: pd.DataFrame, results: pd.DataFrame) -> go.Figure:
    """Loss along each planned run, empty until the run has logged."""
    return plot_loss_curves(curves, results)


def curves_update(curves: pd.DataFrame, results: pd.DataFrame) -> FigureUpdate:
    """:func:`curves_figure` as plain data, for a live figure to redraw from: the traces and the top of the loss
    axis (:func:`~flops_fit.visualizer.loss_clip`, in loss units whether the axis is linear or log)."""
    top = loss_clip(curves)
    return FigureUpdate(loss_curve_traces(curves, results), {} if top is None else {
        "yaxis.autorangeoptions.clipmax": top})
