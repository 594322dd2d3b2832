"""Running the pending rows of a plan, here or on an executor, recording each run as it finishes.

The runner is the only place ``run_start`` and ``run_end`` are emitted, whatever the kind
of job; a job trained here also emits ``step`` and ``eval`` events in between. With a
sweep directory each run is claimed before it runs, so several workers sharing the
directory run each once; a run another worker finished is taken from its record (its
``run_end`` event has ``elsewhere=True``).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ._checks import param_error
from .channel import EventChannel
from .errors import RunAbandoned, SweepIncomplete
from .events import Callback, emitter
from .jobs import Job, failed_outcome, run_job, run_remote, silent_outcome
from .shipping import Shipment
from .progress import TqdmProgress
from .schema import CURVE_COLUMNS, FINISHED, OUTCOME_COLUMNS, Status
from .spec import PlanSpec
from .store import SweepStore, plan_models
from .watch import RunWatch

logger = logging.getLogger(__name__)


class SweepExecution:
    """Runs the pending rows of a plan, records each as it finishes, and assembles the results."""

    def __init__(self, plan: pd.DataFrame, job: Job, store: SweepStore | None, retry_failed: bool,
                 executor: Any, callbacks: Sequence[Callback], progress: bool, spec: PlanSpec | None = None, *,
                 shipment: Shipment | None = None, run_timeout: float | None = None) -> None:
        self.plan, self.job, self.store, self.executor, self.spec = plan, job, store, executor, spec
        # how the job reaches the executor's workers (once each), and how long a run there may go unheard
        self.shipment, self.run_timeout = shipment, run_timeout
        self.retry_failed = retry_failed
        self.callbacks = list(callbacks)
        self.emit = emitter(self.callbacks)  # reaches callbacks appended later (progress bars, a handle)
        self.progress = progress
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.curves: dict[str, pd.DataFrame] = {}
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.identity = json.dumps(job.identity(), sort_keys=True, default=str)
        self.poll_s = 0.5  # how often to look again when every run left is claimed by another worker
        self._retrying: dict[str, int | None] = {}  # failed runs to run again: run_id -> their record's version
        self.worker: Any = None  # a TrainingWorker (flops_fit.worker) that trains the runs, or None: here
        if store is not None:
            store.check_identity({"run": job.identity(), "model": _model_of(plan)})
            store.add_plan(plan, spec)
            self._reuse_finished(store, retry_failed)
        self.todo = [row for row in plan.to_dict("records") if row["run_id"] not in self.outcomes]
        if store is not None and len(self.todo) < len(plan):
            logger.info("resuming: %d of %d runs already finished in %s", len(plan) - len(self.todo), len(plan),
                        store.path)

    def _reuse_finished(self, store: SweepStore, retry_failed: bool) -> None:
        done = store.finished()
        keep = (Status.COMPLETED.value,) if retry_failed else FINISHED
        if done.empty:
            return
        planned = self.plan.set_index("run_id")
        ours = done[done["run_id"].isin(self.plan["run_id"])]
        for record in ours[ours["status"].isin(keep)].to_dict("records"):
            self._check_reusable(record, planned.loc[record["run_id"]], store)
            self.outcomes[record["run_id"]] = record
        for run_id in ours.loc[~ours["status"].isin(keep), "run_id"]:
            self._retrying.setdefault(run_id, store.record_version(run_id))

    def _check_reusable(self, record: Mapping[str, Any], row: pd.Series, store: SweepStore) -> None:
        """A stored run is reused only if it ran the same way on the same plan row; else say so."""
        stored = record.get("identity")
        if stored is not None and stored != self.identity:
            raise param_error(
                "store", "run_sweep", "a directory whose finished runs were made the same way as this sweep",
                str(store.path), f"Run {record['run_id']} there was made with {stored}, this sweep uses "
                f"{self.identity}. Use another directory for a different mode, seed, law or training setting.")
        for column in ("budget", "size", "tokens"):
            if column in record and record[column] is not None and float(record[column]) != float(row[column]):
                raise param_error(
                    "plan", "run_sweep", f"rows whose run_id matches their content ({column} differs)",
                    record["run_id"], f"The stored run has {column}={record[column]}, the plan {row[column]}: "
                    "an edited row keeps its old run_id. Re-plan with plan_sweep() instead of editing.")

    # -- bookkeeping ----------------------------------------------------------------------------
    def record(self, row: Mapping[str, Any], outcome: dict[str, Any], curve: pd.DataFrame) -> None:
        """Keep a finished run (on disk first, with a store) and announce it with ``run_end``."""
        full = {**row, **outcome, "identity": self.identity}
        full["flops"] = float(row["flops_per_token"]) * float(outcome.get("tokens_trained") or 0)
        if self.store is not None:
            self.store.write_run(full, curve)
            self.store.claims.release(row["run_id"])
        with self.lock:
            self.outcomes[row["run_id"]] = full
            self.curves[row["run_id"]] = curve
        self.emit({"type": "run_end", "run_id": row["run_id"], **outcome, "record": full, "curve": curve})

    def extend(self, plan: pd.DataFrame) -> None:
        """Add runs to the sweep (an adaptive sweep's next batch); the next :meth:`run` runs them."""
        fresh = plan[~plan["run_id"].isin(self.plan["run_id"])]
        self.plan = pd.concat([self.plan, fresh], ignore_index=True)
        if self.store is not None:
            self.store.add_plan(fresh, self.spec)
            self._reuse_finished(self.store, self.retry_failed)

    # -- running ------------------------------------------------------------------------------------
    def execute(self) -> None:
        """:meth:`run`, between a ``sweep_start`` and a ``sweep_end`` event (the end also when it raises or is
        stopped), so callbacks that keep state (an experiment tracker) can open and close it."""
        self.emit({"type": "sweep_start", "store": None if self.store is None else str(self.store.path),
                   "runs": len(self.plan), "identity": json.loads(self.identity), "model": _model_of(self.plan),
                   "finished": sorted(self.outcomes),
                   "spec": None if self.spec is None else self.spec.to_dict()})
        try:
            self.run()
        finally:
            if self.shipment is not None:
                self.shipment.close()
            self.emit({"type": "sweep_end", "stopped": self.stop_event.is_set(),
                       "counts": self.results()["status"].value_counts().to_dict()})

    def run(self) -> None:
        self.todo = [row for row in self.plan.to_dict("records") if row["run_id"] not in self.outcomes]
        bars = None
        if self.progress and self.todo:
            bars = TqdmProgress(len(self.todo))
            self.callbacks.append(bars)
        beating = _Heartbeat(self.store) if self.store is not None else None
        try:
            if self.executor is None:
                self._run_here()
            else:
                self._run_on_executor()
        finally:
            if beating is not None:
                beating.stop()
                self.store.claims.release_all()
            if bars is not None:
                bars.close()

    # -- which run next ------------------------------------------------------------------------------------
    def _take(self, queue: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The next row of ``queue`` this worker runs (claimed, with a store), or None while every row left
        is claimed by another live worker; rows another worker finished leave the queue, their outcome kept."""
        for row in list(queue):
            if self._adopt(row["run_id"]):
                queue.remove(row)
                continue
            if self.store is None or self.store.claims.take(row["run_id"]):
                queue.remove(row)
                if self.store is not None and self._adopt(row["run_id"]):  # finished just before our claim
                    self.store.claims.release(row["run_id"])
                    continue
                return row
        return None

    def _adopt(self, run_id: str) -> bool:
        """Keep the outcome another worker recorded for ``run_id`` (True), if it finished and counts."""
        record = None if self.store is None else self.store.record(run_id)
        if record is None or record.get("identity") not in (None, self.identity):
            return False
        if record["status"] not in FINISHED or (
                record["status"] != Status.COMPLETED.value and run_id in self._retrying
                and self.store.record_version(run_id) == self._retrying[run_id]):
            return False  # the failure we were asked to run again
        with self.lock:
            self.outcomes[run_id] = record
        loss = record.get("loss")
        self.emit({"type": "run_end", "run_id": run_id, "status": record["status"],
                   "loss": float("nan") if loss is None else float(loss), "elsewhere": True})
        return True

    def _run_here(self) -> None:
        queue = list(self.todo)
        while queue and not self.stop_event.is_set():
            row = self._take(queue)
            if row is None:
                self.stop_event.wait(self.poll_s)
                continue
            self.emit({"type": "run_start", "run_id": row["run_id"], **self.job.start(row), "row": row})
            try:
                if self.worker is None:
                    outcome, curve = run_job(self.job, row, self.emit, self.stop_event.is_set)
                else:
                    outcome, curve = self.worker.run(row, self.emit, self.stop_event.is_set)
            except RunAbandoned:
                break
            self.record(row, outcome, curve)

    def _run_on_executor(self) -> None:
        """Keep a few runs in flight, record each as it completes; stop() submits no more and keeps what runs.

        Nothing is ever cancelled: some engines (Dask, submitit) cannot tell a queued task
        from a running one, and cancelling a running one would lose it. A run the executor
        loses (its worker process died) is recorded ``failed`` with the cause; an executor that
        takes no more runs ends the sweep with :class:`~flops_fit.errors.SweepIncomplete`.
        """
        limit = int(getattr(self.executor, "_max_workers", 0) or 8)
        channel = EventChannel()  # the workers' run_start, step and eval events come back through it
        try:
            self._submit_and_land(limit, channel)
        finally:
            channel.close()

    def _submit_and_land(self, limit: int, channel: EventChannel) -> None:
        queue = list(self.todo)
        in_flight: dict[Any, dict[str, Any]] = {}
        watch = RunWatch(self.run_timeout, self.executor)
        job = self.job if self.shipment is None else self.shipment.ref  # what each run carries
        refused: BaseException | None = None
        unrun = lost = 0
        try:
            while queue or in_flight:
                waiting = False
                while queue and len(in_flight) < limit and not self.stop_event.is_set() and refused is None:
                    row = self._take(queue)
                    if row is None:
                        waiting = True
                        break
                    try:
                        in_flight[self.executor.submit(run_remote, job, row, os.getpid(), channel.ticket)] = row
                    except Exception as exc:  # the executor is gone: what is in flight still lands
                        refused = exc
                        queue.insert(0, row)
                        if self.store is not None:
                            self.store.claims.release(row["run_id"])
                if self.stop_event.is_set() or refused is not None:
                    unrun, queue = len(queue), []
                self._relay(channel, watch)
                for future in watch.silent(in_flight):
                    self._give_up(in_flight.pop(future), future, watch)
                finished = [f for f in in_flight if f.done()]
                if not finished:
                    if in_flight and all(isinstance(f, cf.Future) for f in in_flight):
                        cf.wait(list(in_flight), timeout=0.1, return_when=cf.FIRST_COMPLETED)  # 0.1: events flow
                    elif in_flight or waiting:  # submitit jobs, or runs other workers hold: poll
                        time.sleep(0.05 if in_flight else self.poll_s)
                    continue
                self._relay(channel, watch)  # what arrived with the results, before their run_end
                lost += sum(self._land(future, in_flight.pop(future)) for future in finished)
        finally:
            watch.free(everything=True)
        if refused is not None:
            raise self._incomplete(refused, unrun, lost) from refused

    def _give_up(self, row: dict[str, Any], future: Any, watch: RunWatch) -> None:
        """A run its worker has said nothing of for ``run_timeout`` seconds: recorded failed; the sweep goes on."""
        where = watch.where(row["run_id"])
        logger.warning("run %s: no progress for %g s on %s; recorded failed, the sweep goes on", row["run_id"],
                       self.run_timeout, where)
        self.record(row, silent_outcome(self.run_timeout, f"worker ({where})", "the sweep went on without it"),
                    pd.DataFrame(columns=CURVE_COLUMNS))
        watch.abandon(future, row["run_id"])

    def _incomplete(self, refused: BaseException, unrun: int, lost: int) -> SweepIncomplete:
        """The error that ends a sweep whose executor took no more runs: what happened, and how to go on."""
        results = self.results()
        completed = int(results["status"].eq(Status.COMPLETED.value).sum())
        kept = f" and are kept in {self.store.path}" if self.store is not None else ""
        return SweepIncomplete(
            f"run_sweep: the executor stopped taking runs ({type(refused).__name__}: {refused}). {unrun} run(s) "
            f"were not run{f' and {lost} were lost with it (recorded failed)' if lost else ''}; {completed} "
            f"completed{kept}. Start a new executor and call run_sweep again with the same store= to run the rest"
            f"{' (retry_failed=True also reruns the lost ones)' if lost else ''}. The results so far are this "
            "error's .results.", results)

    def _relay(self, channel: EventChannel, watch: RunWatch) -> None:
        """Pass on the events workers sent (none for a run already recorded: a late step must not revive it)."""
        for event in channel.drain():
            if event.get("run_id") not in self.outcomes:
                watch.heard(event)
                self.emit(event)

    def _land(self, future: Any, row: dict[str, Any]) -> bool:
        """Record what came back; a run the executor lost is recorded failed, with why (returns True)."""
        try:
            outcome, curve = future.result()
        except cf.CancelledError:  # cancelled by someone else: not run, so it runs again
            if self.store is not None:
                self.store.claims.release(row["run_id"])
            return False
        except Exception as exc:
            logger.warning("run %s did not come back from the executor (%s: %s); recorded failed", row["run_id"],
                           type(exc).__name__, exc)
            self.record(row, failed_outcome(f"lost: its worker died or the executor failed while it ran "
                                            f"({type(exc).__name__}: {exc})"), pd.DataFrame(columns=CURVE_COLUMNS))
            return True
        self.record(row, outcome, curve)
        return False

    # -- assembling -------------------------------------------------------------------------------------
    def results(self) -> pd.DataFrame:
        """The plan's rows with every outcome so far; runs not finished are ``pending``."""
        with self.lock:
            outcomes = dict(self.outcomes)
        results = self.plan.copy()
        table = pd.DataFrame([outcomes.get(rid, {}) for rid in results["run_id"]], index=results.index)
        for column in ["status", *OUTCOME_COLUMNS]:
            results[column] = table[column] if column in table.columns else None
        results["status"] = results["status"].fillna(Status.PENDING.value)
        spent = results["flops_per_token"] * pd.to_numeric(results["tokens_trained"])
        results["flops"] = spent.where(results["status"] != Status.PENDING.value, results.get("flops"))
        return results

    def curve_frame(self) -> pd.DataFrame:
        if self.store is not None:
            curves = self.store.curves()
            return curves[curves["run_id"].isin(self.plan["run_id"])].reset_index(drop=True)
        with self.lock:
            frames = [self.curves[rid] for rid in self.plan["run_id"] if rid in self.curves]
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CURVE_COLUMNS)


def _model_of(plan: pd.DataFrame) -> dict[str, Any] | None:
    """The model settings a plan records, when it records one set (the model part of the sweep's identity)."""
    models = plan_models(plan)
    return models[0] if len(models) == 1 else None


class _Heartbeat:
    """Refreshes the store's claims every few seconds in a daemon thread, so other workers see this one lives."""

    def __init__(self, store: SweepStore) -> None:
        self._store, self._done = store, threading.Event()
        self._every = min(10.0, store.claims.stale_s / 4)
        self._thread = threading.Thread(target=self._beat, name="flops_fit-claims", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._done.wait(self._every):
            self._store.claims.heartbeat()

    def stop(self) -> None:
        self._done.set()
