"""Running the pending rows of a plan, here or on an executor, recording each run as it finishes.

The runner is the only place ``run_start`` and ``run_end`` are emitted, whatever the kind
of job; a job trained here also emits ``step`` and ``eval`` events in between.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ._checks import param_error
from .errors import RunAbandoned
from .events import Callback, emitter
from .jobs import Job, run_job
from .progress import TqdmProgress
from .schema import CURVE_COLUMNS, FINISHED, OUTCOME_COLUMNS, Status
from .spec import PlanSpec
from .store import SweepStore

logger = logging.getLogger(__name__)


class SweepExecution:
    """Runs the pending rows of a plan, records each as it finishes, and assembles the results."""

    def __init__(self, plan: pd.DataFrame, job: Job, store: SweepStore | None, retry_failed: bool,
                 executor: Any, callbacks: Sequence[Callback], progress: bool, spec: PlanSpec | None = None) -> None:
        self.plan, self.job, self.store, self.executor, self.spec = plan, job, store, executor, spec
        self.retry_failed = retry_failed
        self.callbacks = list(callbacks)
        self.emit = emitter(self.callbacks)  # reaches callbacks appended later (progress bars, a handle)
        self.progress = progress
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.curves: dict[str, pd.DataFrame] = {}
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.identity = json.dumps(job.identity(), sort_keys=True, default=str)
        if store is not None:
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
        for record in done[done["run_id"].isin(self.plan["run_id"]) & done["status"].isin(keep)].to_dict("records"):
            self._check_reusable(record, planned.loc[record["run_id"]], store)
            self.outcomes[record["run_id"]] = record

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
        with self.lock:
            self.outcomes[row["run_id"]] = full
            self.curves[row["run_id"]] = curve
        self.emit({"type": "run_end", "run_id": row["run_id"], **outcome})

    def extend(self, plan: pd.DataFrame) -> None:
        """Add runs to the sweep (an adaptive sweep's next batch); the next :meth:`run` runs them."""
        fresh = plan[~plan["run_id"].isin(self.plan["run_id"])]
        self.plan = pd.concat([self.plan, fresh], ignore_index=True)
        if self.store is not None:
            self.store.add_plan(fresh, self.spec)
            self._reuse_finished(self.store, self.retry_failed)

    # -- running ------------------------------------------------------------------------------------
    def run(self) -> None:
        self.todo = [row for row in self.plan.to_dict("records") if row["run_id"] not in self.outcomes]
        bars = None
        if self.progress and self.todo:
            bars = TqdmProgress(len(self.todo))
            self.callbacks.append(bars)
        try:
            if self.executor is None:
                self._run_here()
            else:
                self._run_on_executor()
        finally:
            if bars is not None:
                bars.close()

    def _run_here(self) -> None:
        for row in self.todo:
            if self.stop_event.is_set():
                break
            self.emit({"type": "run_start", "run_id": row["run_id"], **self.job.start(row)})
            try:
                outcome, curve = run_job(self.job, row, self.emit, self.stop_event.is_set)
            except RunAbandoned:
                break
            self.record(row, outcome, curve)

    def _run_on_executor(self) -> None:
        """Keep a few runs in flight, record each as it completes; stop() submits no more and keeps what runs.

        Nothing is ever cancelled: some engines (Dask, submitit) cannot tell a queued task
        from a running one, and cancelling a running one would lose it.
        """
        limit = int(getattr(self.executor, "_max_workers", 0) or 8)
        queue = list(self.todo)
        in_flight: dict[Any, Mapping[str, Any]] = {}
        while queue or in_flight:
            while queue and len(in_flight) < limit and not self.stop_event.is_set():
                row = queue.pop(0)
                try:
                    in_flight[self.executor.submit(run_job, self.job, row)] = row
                except Exception as exc:  # the executor is gone: what is in flight still lands
                    logger.warning("could not submit run %s: %s", row["run_id"], exc)
                    queue.clear()
            if self.stop_event.is_set():
                queue.clear()
            finished = [f for f in in_flight if f.done()]
            if not finished:
                if in_flight and all(isinstance(f, cf.Future) for f in in_flight):
                    cf.wait(list(in_flight), timeout=0.5, return_when=cf.FIRST_COMPLETED)
                else:  # e.g. submitit jobs: poll
                    time.sleep(0.05)
                continue
            for future in finished:
                row = in_flight.pop(future)
                try:
                    outcome, curve = future.result()
                except Exception as exc:  # the executor failed, not the run: leave it pending to run again
                    logger.warning("run %s did not come back from the executor (%s: %s); it stays pending",
                                   row["run_id"], type(exc).__name__, exc)
                    continue
                self.record(row, outcome, curve)

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
