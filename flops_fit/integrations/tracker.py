"""What the experiment-tracker callbacks share: one tracker run per sweep run, logged off the sweep's thread.

A :class:`TrackerCallback` takes the sweep's events (:mod:`flops_fit.events`) and hands them to
one sender thread, so a slow or unreachable tracker never holds training up. ``sweep_end`` waits
(up to ``flush_timeout_s``) until everything is logged, so ``run_sweep`` returns with the
tracker complete. A tracker run is named by two tags, the sweep's name and the run's
``run_id``; the readers turn tracker runs back into a results frame (:mod:`~flops_fit.integrations.runs`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .._checks import param_error
from ..store import SweepStore
from .runs import IDENTITY_KEY, RUN_KEY, SWEEP_KEY, flatten

logger = logging.getLogger(__name__)

# plan columns logged as parameters, when a row has them
PARAM_COLUMNS = ["run_id", "budget", "size_param", "size", "params", "tokens", "flops_per_token", "tokens_per_param",
                 "repeat", "reason", "model_kwargs", "tokens_per_sample"]
# the outcome, logged as final metrics (status and error are tags / summary strings)
FINAL_METRICS = ["loss", "flops", "tokens_trained", "epochs", "steps", "wall_time", "tokens_per_second",
                 "flops_per_second", "utilisation"]
# the loss curve: curve column -> metric name (logged at the run's step; loss_by_tokens at its token count)
# ("tokens_so_far", not "tokens": that name is the run's planned D, a parameter)
CURVE_METRICS = {"loss": "train_loss", "lr": "lr", "tokens": "tokens_so_far"}
# flops_fit's status -> the tracker's notion of how a run ended
ENDED = {"completed": "FINISHED", "failed": "FAILED", "diverged": "FAILED"}


def run_params(row: Mapping[str, Any], identity: Mapping[str, Any] | None,
               convention: str | None) -> dict[str, Any]:
    """The parameters a tracker run gets: the plan row (with the knob under its own name, e.g. ``d_model``), the
    FLOP convention, and how runs are made (mode, seed and law, or the training settings) flattened with dots."""
    params: dict[str, Any] = {}
    for column in PARAM_COLUMNS:
        value = row.get(column)
        if value is not None and not (isinstance(value, float) and math.isnan(value)) and value != "":
            params[column] = value
    knob = row.get("size_param")
    if isinstance(knob, str) and knob and knob not in params:
        params[knob] = row.get("size")
    if not convention:  # a plan run without its PlanSpec: 6N is recognisable, other conventions only by value
        fpt, n = _number(row.get("flops_per_token")), _number(row.get("params"))
        convention = "6N" if fpt is not None and n and abs(fpt / n - 6) < 1e-9 else None
    if convention:
        params["flop_convention"] = convention
    for key, value in flatten(identity or {}).items():
        params.setdefault(key, value)
    return params


def default_sweep_name(store: str | None, identity: Any, model: Any) -> str:
    """A sweep's name when the user gives none: its directory's name, or ``sweep-`` and a hash of how its runs
    are made (the same settings give the same name, so a rerun finds its tracker runs)."""
    if store:
        return os.path.basename(os.path.normpath(store))
    text = json.dumps({"run": identity, "model": model}, sort_keys=True, default=str)
    return "sweep-" + hashlib.sha1(text.encode()).hexdigest()[:8]


def run_name(row: Mapping[str, Any]) -> str:
    """``d_model=64 @ 1e+17`` (and ``#2`` for a repeat): what the tracker's run list shows."""
    knob = row.get("size_param") or "size"
    repeat = row.get("repeat")
    again = f" #{int(repeat) + 1}" if isinstance(repeat, (int, float)) and not pd.isna(repeat) and repeat else ""
    return f"{knob}={row.get('size')} @ {float(row.get('budget', float('nan'))):.3g}{again}"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass
class OpenRun:
    """A tracker run being written: its handle, the metrics waiting to be sent, whether steps came live."""

    handle: Any
    row: dict[str, Any]
    pending: list[tuple[str, float, int]] = field(default_factory=list)
    live_steps: bool = False
    sent_at: float = field(default_factory=time.monotonic)


class TrackerCallback:
    """The events of a sweep, logged to an experiment tracker in a thread of their own.

    Subclasses say how to open, write and end one tracker run (:meth:`_open`, :meth:`_log`,
    :meth:`_end`); this class keeps one open tracker run per running sweep run, batches the
    step metrics (every ``batch_s`` seconds or 500 values), logs a run's curve at its end when no
    steps came live (mock runs, runs on other hosts), and ends runs a stopped sweep abandoned
    as killed. When the tracker fails, a warning says why and the sweep trains on unlogged.
    """

    def __init__(self, *, sweep: str | None, flush_timeout_s: float, batch_s: float, func: str) -> None:
        if sweep is not None and (not isinstance(sweep, str) or not sweep.strip()):
            raise param_error("sweep", func, "a non-empty name for the sweep, or None", sweep)
        for name, value in (("flush_timeout_s", flush_timeout_s), ("batch_s", batch_s)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise param_error(name, func, "a positive number of seconds", value)
        self.sweep = sweep
        self.flush_timeout_s, self.batch_s = float(flush_timeout_s), float(batch_s)
        self.failure: BaseException | None = None  # what stopped the logging, if anything did
        self._name: str | None = sweep
        self._identity: Any = None
        self._convention: str | None = None
        self._runs: dict[str, OpenRun] = {}
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    # -- the subclass's part ----------------------------------------------------------------------
    def _begin(self) -> None:
        """Once per sweep, before its first run: look up what the tracker holds already."""

    def _open(self, row: dict[str, Any], params: dict[str, Any], tags: dict[str, str]) -> Any:
        raise NotImplementedError

    def _log(self, handle: Any, metrics: list[tuple[str, float, int]]) -> None:
        raise NotImplementedError

    def _end(self, handle: Any, final: dict[str, float], tags: dict[str, str], ended: str) -> None:
        raise NotImplementedError

    # -- the callback -------------------------------------------------------------------------------
    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("type") not in ("sweep_start", "run_start", "step", "run_end", "sweep_end"):
            return
        self._put(event)
        if event["type"] == "sweep_end":
            self.flush()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything received so far is logged (True), or ``timeout`` seconds (default
        ``flush_timeout_s``) pass (False, with a warning)."""
        done = threading.Event()
        if not self._put(done, start=False):
            return True
        limit = self.flush_timeout_s if timeout is None else timeout
        if not done.wait(limit):
            logger.warning("%s: the tracker has not taken everything after %.0f s; it goes on logging in the "
                           "background", type(self).__name__, limit)
            return False
        return True

    def _put(self, item: Any, start: bool = True) -> bool:
        """Queue ``item`` for the sender thread, starting one if none runs (unless not ``start``: False then)."""
        with self._thread_lock:
            if self._thread is None:
                if not start:
                    return False
                self._thread = threading.Thread(target=self._serve, name=f"flops_fit-{type(self).__name__}",
                                                daemon=True)
                self._thread.start()
            self._queue.put(item)
            return True

    def _serve(self) -> None:
        """Log what comes, until a sweep has ended and nothing more is queued (a later sweep starts another)."""
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                self._send_all()
                item.set()
            elif self.failure is None:
                try:
                    self._handle(item)
                except Exception as exc:  # the tracker went away: keep training, say so once
                    self.failure = exc
                    logger.warning("%s stopped logging (%s: %s); the sweep goes on, and its runs are kept in the "
                                   "results (and the sweep directory, if any)", type(self).__name__,
                                   type(exc).__name__, exc)
            with self._thread_lock:
                if not self._runs and self._queue.empty() and (
                        isinstance(item, threading.Event) or item.get("type") == "sweep_end"):
                    self._thread = None
                    return

    # -- events -------------------------------------------------------------------------------------
    def _handle(self, event: dict[str, Any]) -> None:
        kind, run_id = event["type"], event.get("run_id")
        if kind == "sweep_start":
            spec = event.get("spec") or {}
            self._identity = event.get("identity")
            self._convention = spec.get("flop_convention") if isinstance(spec.get("flop_convention"), str) else None
            self._name = self.sweep or default_sweep_name(event.get("store"), self._identity, event.get("model"))
            self._begin()
            self._backfill(event.get("store"), event.get("finished") or [])
        elif kind == "run_start" and isinstance(event.get("row"), Mapping):
            self._runs[run_id] = self._start(dict(event["row"]))
        elif kind == "step" and run_id in self._runs:
            run = self._runs[run_id]
            run.live_steps = True
            step = int(event["step"])
            run.pending += [("train_loss", float(event["loss"]), step), ("lr", float(event["lr"]), step),
                            ("tokens_so_far", float(event["tokens"]), step),
                            ("loss_by_tokens", float(event["loss"]), int(event["tokens"]))]
            if len(run.pending) >= 500 or time.monotonic() - run.sent_at >= self.batch_s:
                self._send(run)
        elif kind == "run_end" and isinstance(event.get("record"), Mapping):
            self._finish(event)
        elif kind == "sweep_end":
            for run in list(self._runs.values()):  # stopped part-way: the tracker says killed, not running
                self._send(run)
                self._end(run.handle, {}, {"flops_fit.status": "stopped"}, "KILLED")
            self._runs.clear()

    def _identity_text(self) -> str:
        """How this sweep's runs are made, as the JSON its tracker runs are tagged with ("" when unknown)."""
        return json.dumps(self._identity, sort_keys=True, default=str) if self._identity is not None else ""

    def _holds(self, run_id: str) -> bool:
        """Whether the tracker holds an ended run for ``run_id`` of this sweep (trackers that cannot tell say
        True, and then runs a resumed sweep takes from its directory are not logged)."""
        return True

    def _backfill(self, store: str | None, finished: list[str]) -> None:
        """Log the runs a resumed sweep takes from its directory that the tracker lacks (the first part ran
        without this callback, or stopped before its logging ended), from their records and curves."""
        missing = [run_id for run_id in finished if not self._holds(run_id)]
        if not missing or not store:
            return
        opened = SweepStore(store)
        for run_id in missing:
            record = opened.record(run_id)
            if record is not None:
                self._finish({"run_id": run_id, "record": record, "curve": opened.curve(run_id)})
        logger.info("%s: logged %d run(s) that %s held but the tracker lacked", type(self).__name__, len(missing),
                    store)

    def _start(self, row: dict[str, Any]) -> OpenRun:
        if self._name is None:  # events without a sweep_start (a caller of its own): name from the row
            self._identity = _identity_of(row)
            self._name = default_sweep_name(None, self._identity, None)
        identity = self._identity_text()
        tags = {SWEEP_KEY: self._name, RUN_KEY: str(row["run_id"])}
        if identity:
            tags[IDENTITY_KEY] = identity
        params = run_params(row, self._identity, self._convention)
        return OpenRun(self._open(row, params, tags), row)

    def _finish(self, event: dict[str, Any]) -> None:
        record = dict(event["record"])
        run = self._runs.pop(event["run_id"], None)
        if run is None:  # no run_start came: a worker on another host, or a run_end alone
            if self._identity is None and isinstance(record.get("identity"), str):
                self._identity = json.loads(record["identity"])
            run = self._start(record)
        curve = event.get("curve")
        if not run.live_steps and isinstance(curve, pd.DataFrame) and len(curve):
            for point in curve.to_dict("records"):
                step = int(point["step"])
                for column, name in CURVE_METRICS.items():
                    value = _number(point.get(column))
                    if value is not None:
                        run.pending.append((name, value, step))
                value, tokens = _number(point.get("loss")), _number(point.get("tokens"))
                if value is not None and tokens is not None:
                    run.pending.append(("loss_by_tokens", value, int(tokens)))
        self._send(run)
        final = {name: value for name in FINAL_METRICS if (value := _number(record.get(name))) is not None}
        status = str(record.get("status") or "failed")
        tags = {"flops_fit.status": status}
        if isinstance(record.get("error"), str) and record["error"]:
            tags["flops_fit.error"] = record["error"][:4000]
        self._end(run.handle, final, tags, ENDED.get(status, "FAILED"))

    def _send(self, run: OpenRun) -> None:
        if run.pending:
            self._log(run.handle, run.pending)
            run.pending = []
        run.sent_at = time.monotonic()

    def _send_all(self) -> None:
        if self.failure is None:
            try:
                for run in self._runs.values():
                    self._send(run)
            except Exception as exc:
                self.failure = exc
                logger.warning("%s stopped logging (%s: %s)", type(self).__name__, type(exc).__name__, exc)


def _identity_of(row: Mapping[str, Any]) -> Any:
    text = row.get("identity")
    if isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError:
            return None
    return None
