"""SweepMonitor: a live view of a sweep running in the background."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

import pandas as pd

from .._checks import check_number, param_error
from .._format import flops, human, loss
from ..handle import SweepHandle
from ..live import (Snapshot, backtest_table, curves_figure, curves_update, duration, html_table, isoflops_figure,
                    isoflops_update, laws_figure, laws_update, runs_table, snapshot, status_counts, targets_for)
from ..result import Result
from ..runner import run_sweep
from ..schema import FINISHED
from ._deps import widgets
from .dashboard import Notes, adaptive_html, close_tree, layout, live_look, pin_isoflops_axes, pin_laws_axes
from .figure import LiveFigure

logger = logging.getLogger(__name__)

_BAR_STYLE = {"completed": "success", "diverged": "danger", "failed": "danger"}


class SweepMonitor:
    """Watch a background sweep: a bar per run, streaming loss curves, IsoFLOP and scaling-law figures
    refitted as each run lands, a table of runs, and a Stop button that keeps what finished.

    The sweep runs in its own thread (``run_sweep(..., background=True)``; a local sweep's runs
    train in a worker process that thread drives, :mod:`flops_fit.worker`) and the monitor
    redraws from another, at most every ``refresh_every`` seconds, so the kernel stays free
    for other cells. Figures are :class:`~flops_fit.widgets.LiveFigure` objects: a page
    reload or saved widget state shows everything they held.

    Parameters
    ----------
    handle : SweepHandle
        What ``run_sweep(..., background=True)`` returned; or use :meth:`start`.
    refresh_every : float, default 0.25
        Seconds between redraws (the loss curves and the backtest redraw at most once a second).
    extrapolate_to : sequence of float, optional
        Budgets the scaling-law panel extends to (default 10x and 100x the largest).

    Examples
    --------
    >>> from flops_fit import plan_sweep
    >>> from flops_fit.examples import GPT
    >>> from flops_fit.widgets import SweepMonitor
    >>> plan = plan_sweep(GPT, "d_model", [1e17, 1e18, 1e19], model_kwargs={"n_layer": 4})
    >>> monitor = SweepMonitor.start(plan, mode="mock")
    >>> monitor.wait()["status"].value_counts().to_dict()
    {'completed': 27}
    >>> monitor.snapshot.finished, monitor.isoflops.state_points() >= 27
    (27, True)
    """

    def __init__(self, handle: SweepHandle, *, refresh_every: float = 0.25,
                 extrapolate_to: Sequence[float] | None = None) -> None:
        W = widgets("SweepMonitor")

        if not isinstance(handle, SweepHandle):
            raise param_error("handle", "SweepMonitor", "the SweepHandle of run_sweep(..., background=True)",
                              type(handle).__name__, "Or call SweepMonitor.start(plan, ...) to start one.")
        self.handle = handle
        self.refresh_every = check_number(refresh_every, "refresh_every", "SweepMonitor", above=0)
        self._started = time.perf_counter()
        self._cursor = 0  # events read so far
        self._steps: dict[str, tuple[int, int]] = {}  # run_id -> (step, steps)
        self._live: dict[str, list[dict[str, float]]] = {}  # run_id -> logged points of a run in progress
        self._drawn_finished = -1
        self._curves_drawn_at = 0.0
        self._curves_due = False  # a run finished since the curves were drawn
        self._backtest_of: Snapshot | None = None  # the snapshot the backtest shows
        self._backtest_at = 0.0
        self._finished_curves = pd.DataFrame(columns=["run_id", "tokens", "loss"])
        self._lock = threading.Lock()
        self._on_done: list[Callable[[SweepMonitor], None]] = []
        self._over = self._stopped = False

        results = handle.results()
        self.targets = targets_for(results["budget"].unique(), extrapolate_to)
        self.snapshot: Snapshot = Snapshot(results=results)
        self._results = results  # as the latest refresh read them
        self.status = W.HTML("starting…")  # until the first redraw
        self._eta: tuple[float, float] | None = None  # (seconds left, when estimated)
        self.overall = W.IntProgress(value=0, min=0, max=len(results), description="runs", bar_style="info")
        self.stop_button = W.Button(description="Stop", icon="stop", button_style="warning",
                                    tooltip="End the sweep after the current run (or step); finished runs are kept")
        self.stop_button.on_click(lambda _: self.stop())
        self.bars: dict[str, Any] = {}
        self._bar_state: dict[str, tuple[Any, Any]] = {}  # run_id -> (status, steps) its bar shows
        self.runs_box = W.VBox(self._run_rows(results), layout=W.Layout(max_height="300px", overflow="auto"))
        self.isoflops = LiveFigure(pin_isoflops_axes(live_look(isoflops_figure(self.snapshot)), results["params"]),
                                   height=430)
        laws = laws_figure(self.snapshot, self.targets)
        self.laws = LiveFigure(pin_laws_axes(live_look(laws), results, self.targets), height=430)
        self.curves = LiveFigure(live_look(curves_figure(self._finished_curves, results)), height=380, highlight=3.5)
        self.table = W.HTML()
        self.optima = W.HTML()
        self.backtest = W.HTML()  # once 4 budgets have a located minimum: the largest predicted from the others
        self.notes = Notes()
        self.adaptive = W.HTML()  # an adaptive sweep: its precision so far against the target, and why runs came
        self._adaptive: dict[str, Any] | None = None
        self._why: dict[str, int] = {}  # reason -> runs proposed for it
        runs = W.Tab([W.Box([self.table], layout=W.Layout(max_height="300px", overflow="auto")), self.runs_box],
                     titles=("Runs", "Progress"))
        side = [W.HTML("<b>Optima so far</b>"), self.optima, self.backtest, runs]
        self.widget, self.page = layout(header=W.HBox([self.overall, self.stop_button, self.status],
                                                      layout=W.Layout(flex_flow="row wrap", align_items="center")),
                                        adaptive=self.adaptive, isoflops=self.isoflops, laws=self.laws,
                                        curves=self.curves, side=side, notes=self.notes)
        self.table.add_class("flops-fit-runs")
        self._thread = threading.Thread(target=self._loop, name="flops_fit-monitor", daemon=True)
        self._thread.start()

    def _run_rows(self, results: pd.DataFrame) -> list[Any]:
        """A label and a progress bar per planned run (kept in ``self.bars`` by run_id)."""
        W = widgets("SweepMonitor")
        rows = []
        for row in results.itertuples():
            bar = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="35%"))
            self.bars[row.run_id] = bar
            label = W.HTML(f"<span title='run {escape(str(row.run_id))}'>{flops(row.budget)} FLOPs · "
                           f"N={human(row.params)} · D={human(row.tokens)}</span>", layout=W.Layout(width="65%"))
            rows.append(W.HBox([label, bar], layout=W.Layout(flex="0 0 auto")))  # rows keep their height
        return rows

    @classmethod
    def start(cls, plan: pd.DataFrame, *args: Any, refresh_every: float = 0.25,
              extrapolate_to: Sequence[float] | None = None, **run_options: Any) -> SweepMonitor:
        """Start ``run_sweep(plan, *args, background=True, **run_options)`` and monitor it."""
        handle = run_sweep(plan, *args, background=True, **run_options)
        return cls(handle, refresh_every=refresh_every, extrapolate_to=extrapolate_to)

    # -- what users call ---------------------------------------------------------------------------
    def stop(self) -> None:
        """End the sweep after the current run (or step, when training here); what finished is kept."""
        if self.handle.done:
            return
        self._stopped = True
        self.handle.stop()
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping"

    def wait(self, timeout: float | None = None) -> pd.DataFrame:
        """Block until the sweep ends and the last redraw is done; returns the results frame.

        With ``timeout`` (seconds) it returns when the time is up even if the sweep goes on:
        the frame then holds what finished so far (check :attr:`done`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        results = self.handle.wait(timeout)
        self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return results

    def result(self) -> Result | None:
        """The fit of everything that completed (None before any run completed)."""
        return self.snapshot.result

    def add_done_callback(self, callback: Callable[[SweepMonitor], None]) -> None:
        """Call ``callback(monitor)`` once the sweep is over and drawn (at once if it already is)."""
        with self._lock:
            if not self._over:
                self._on_done.append(callback)
                return
        callback(self)

    def close(self) -> None:
        """Close every widget made here, layouts and styles too (the kernel keeps each till closed); stops a sweep."""
        self.stop()
        self.wait(10)
        close_tree(self.widget)

    @property
    def done(self) -> bool:
        return self.handle.done and not self._thread.is_alive()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- redrawing ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            over = self.handle.done
            try:
                self.refresh(final=over)
            except Exception as exc:  # a display bug must not hide the sweep's own progress
                logger.exception("SweepMonitor could not redraw")
                self.notes.error(f"display error: {exc!r}")
            if over:
                with self._lock:
                    self._over = True
                    callbacks = list(self._on_done)
                for callback in callbacks:
                    callback(self)
                return
            time.sleep(self.refresh_every)

    def refresh(self, final: bool = False) -> None:
        """Read new events and redraw what changed (the background thread calls this)."""
        with self._lock:
            events = self.handle.events_since(self._cursor)
            self._cursor += len(events)
            if not events and not final and self._drawn_finished >= 0:  # nothing new: just the clock
                self._update_status(self.snapshot.counts, len(self.snapshot.results), final)
                if self._curves_due:
                    self._draw_curves(self._results)
                self._draw_backtest()
                return
            for event in events:
                self._read(event)
            self._results = results = self.handle.results()
            self._grow(results)
            counts = status_counts(results)
            if final:  # runs cut short by Stop are pending again: no half-drawn curve or bar for them
                self._live.clear()
                ended = set(results.loc[results["status"].isin(FINISHED), "run_id"])
                self._steps = {rid: steps for rid, steps in self._steps.items() if rid in ended}
            self._update_bars(results, final)
            self.overall.value = finished = counts["finished"]
            if finished != self._drawn_finished:
                self._drawn_finished = finished
                self.snapshot = snapshot(results, extrapolate_to=self.targets, spec=self.handle.spec)
                self.isoflops.update(*isoflops_update(self.snapshot))  # first: where a run's point shows
                self.table.value = html_table(runs_table(results))
                self.laws.update(*laws_update(self.snapshot, self.targets))
                self.optima.value = self._optima_html()
                self._backtest_of = None  # drawn from an older fit
                self._curves_due = True
                self.notes.show(self.snapshot.notes)
            if final and counts["pending"]:  # the sweep is over: they will not run (until run again)
                self.table.value = html_table(runs_table(results).replace({"status": {"pending": "not run"}}))
            self._eta = (eta(results), time.perf_counter())
            self._draw_curves(results, final)
            self._draw_backtest(final)
            self._update_status(counts, len(results), final)
            if final and self.snapshot.result is not None:
                self.snapshot.result.curves = self._finished_curves

    def _read(self, event: dict[str, Any]) -> None:
        run_id, kind = event.get("run_id"), event["type"]
        if kind == "sweep_start":  # the clock starts with the sweep, not with the monitor's building
            self._started = time.perf_counter()
        elif kind == "run_start":
            self._steps[run_id] = (0, int(event["steps"]))
            self._live[run_id] = []
        elif kind == "step":
            self._steps[run_id] = (int(event["step"]), int(event["steps"]))
            self._live.setdefault(run_id, []).append({"run_id": run_id, "tokens": event["tokens"],
                                                      "loss": event["loss"]})
        elif kind == "run_end":
            self._live.pop(run_id, None)
        elif kind == "adaptive":
            self._adaptive = event
            for reason in event["reasons"]:
                self._why[reason] = self._why.get(reason, 0) + 1
            self.adaptive.value = adaptive_html(event, self._why)

    def _grow(self, results: pd.DataFrame) -> None:
        """An adaptive sweep's new runs get their bars (appended: the rows already shown keep their place)."""
        if len(results) == len(self.bars):
            return
        new = results[~results["run_id"].isin(list(self.bars))]
        if len(new):
            self.runs_box.children = (*self.runs_box.children, *self._run_rows(new))
        self.overall.max = len(results)

    def _update_bars(self, results: pd.DataFrame, final: bool = False) -> None:
        """Set each run's bar from its status and steps, "not run" on those still pending when the sweep is over;
        only bars whose state changed are touched."""
        for run_id, status in zip(results["run_id"], results["status"]):
            shown = (status, self._steps.get(run_id), final and status == "pending")
            if self._bar_state.get(run_id) == shown:
                continue
            self._bar_state[run_id] = shown
            bar = self.bars[run_id]
            step, steps = self._steps.get(run_id, (0, 1))  # mock and executor runs report no steps
            if status in FINISHED:
                bar.max = max(steps, 1)
                bar.value, bar.bar_style = bar.max, _BAR_STYLE[status]
            elif run_id in self._steps:
                bar.max, bar.value, bar.bar_style = max(steps, 1), step, "info"
            else:
                bar.value, bar.bar_style, bar.description = 0, "", "not run" if shown[2] else ""

    def _draw_curves(self, results: pd.DataFrame, final: bool = False) -> None:
        """The loss curves, when a run has finished or is logging: redrawn at most once a second (and at the end)."""
        if not final and (not (self._curves_due or self._live) or time.perf_counter() - self._curves_drawn_at < 1.0):
            return
        if self._curves_due or final:
            self._finished_curves = self.handle.curves()
            self._curves_due = False
        live = [pd.DataFrame(points) for points in self._live.values() if points]
        curves = pd.concat([self._finished_curves, *live], ignore_index=True) if live else self._finished_curves
        self.curves.update(*curves_update(curves, results))
        self._curves_drawn_at = time.perf_counter()

    def _draw_backtest(self, final: bool = False) -> None:
        """The backtest of the latest fit: a second refit, so while runs pour in it is redrawn at most once a
        second (and at the end)."""
        if self._backtest_of is self.snapshot or not (final or time.perf_counter() - self._backtest_at > 1.0):
            return
        self._backtest_of, self._backtest_at = self.snapshot, time.perf_counter()
        backtest = backtest_table(self.snapshot)
        self.backtest.value = "" if backtest is None else (
            "<b>Backtest</b>: the largest budget predicted from the others" + html_table(backtest))

    def _optima_html(self) -> str:
        result = self.snapshot.result
        if result is None or result.optima.empty:
            return "<i>none yet: a budget needs 3 completed sizes</i>"
        table = result.table()
        shown = pd.DataFrame({
            "compute": table["compute"].map(flops).tolist(), "N_opt": table["params"].map(human).tolist(),
            "D_opt": table["tokens"].map(human).tolist(), "loss": table["loss"].map(loss).tolist(),
            "source": table["source"].tolist(),
        })
        return html_table(shown)

    def _update_status(self, counts: dict[str, int], runs: int, final: bool) -> None:
        finished, pending = counts["finished"], counts["pending"]
        elapsed = duration(time.perf_counter() - self._started)
        detail = ", ".join(f"{counts[s]} {s}" for s in FINISHED if counts[s])
        if not final:
            left = 0.0 if self._eta is None or self._eta[0] is None else (
                self._eta[0] + self._eta[1] - time.perf_counter())
            left = ", under a second left" if 0 < left < 1 else f", about {duration(left)} left" if left >= 1 else ""
            self.status.value = (f"running: {finished} of {runs} runs finished ({detail or 'none yet'}), "
                                 f"{elapsed}{left}")
            return
        self.stop_button.disabled, self.stop_button.button_style = True, ""
        self.stop_button.description = "Stopped" if pending else "Done"
        if self.handle.error is not None:
            text = f"<span style='color:crimson'>the sweep failed: {escape(repr(self.handle.error))}</span>"
        elif pending:
            how = "stopped" if self._stopped else "ended early"
            again = ("Run the same plan into the same store to finish them." if self.handle.store is not None
                     else "Pass store= to keep finished runs on disk and resume later.")
            text = f"{how}: kept {finished} finished runs ({detail or 'none'}); {pending} not run. {again}"
        else:
            text = f"done: {detail} in {elapsed}"
        self.status.value = text


def measured_rate(results: pd.DataFrame) -> tuple[str, float] | None:
    """How fast finished runs went: ``("run", seconds per run)`` if simulated (any budget takes as long), else
    ``("flops", FLOP/s)`` over their wall time, building and evaluation included; None before one finished."""
    done = results[results["status"].isin(FINISHED)]
    wall = pd.to_numeric(done.get("wall_time", pd.Series(dtype=float)), errors="coerce")
    if done.empty or not wall.sum() > 0:
        return None
    if done.get("device", pd.Series(dtype=object)).eq("mock").all():
        return "run", float(wall.mean())
    return "flops", float(pd.to_numeric(done["flops"], errors="coerce").sum() / wall.sum())


def eta(results: pd.DataFrame) -> float | None:
    """Seconds the runs not yet finished should take at the rate the finished ones went (None before one has)."""
    rate = measured_rate(results)
    if rate is None:
        return None
    left = results[~results["status"].isin(FINISHED)]
    return rate[1] * len(left) if rate[0] == "run" else float(left["flops"].sum()) / rate[1]
