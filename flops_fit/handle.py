"""SweepHandle: a sweep running in a background thread, with its results and events at any moment."""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd

from .execution import SweepExecution
from .spec import PlanSpec
from .store import SweepStore


class SweepHandle:
    """A sweep running in a background thread (``run_sweep(..., background=True)``); a local sweep's runs
    train in a worker process that thread drives (:mod:`flops_fit.worker`).

    The notebook stays responsive: ``results()`` gives the frame so far at any time,
    ``events`` collects every progress event (thread-safe), ``stop()`` ends the sweep
    after (or, in local mode, part-way through) the current run, keeping what
    finished, and ``wait()`` blocks until it is over.
    """

    def __init__(self, sweep: SweepExecution) -> None:
        self._sweep = sweep
        self.events: list[dict[str, Any]] = []
        self._events_lock = threading.Lock()
        sweep.callbacks.append(self._collect)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="flops_fit-sweep", daemon=True)
        self._thread.start()

    def _collect(self, event: dict[str, Any]) -> None:
        with self._events_lock:
            self.events.append(event)

    def events_since(self, index: int) -> list[dict[str, Any]]:
        """The events after the first ``index`` (a reader keeps its own count and polls)."""
        with self._events_lock:
            return self.events[index:]

    def _main(self) -> None:
        try:
            self._sweep.execute()
        except BaseException as exc:  # surfaced by wait()
            self.error = exc
        finally:
            if self._sweep.worker is not None:
                self._sweep.worker.close()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    @property
    def spec(self) -> PlanSpec | None:
        """How the plan was made, when ``run_sweep`` was told (``spec=``)."""
        return self._sweep.spec

    @property
    def store(self) -> SweepStore | None:
        """The sweep directory finished runs are written to (None without ``store=``)."""
        return self._sweep.store

    def stop(self, grace: float | None = None) -> None:
        """Stop: a local run after its current step (its worker process is killed if it has not stopped
        ``grace`` seconds later; default 10), a mock run when it ends; with an executor, submit nothing more
        and keep the runs already in flight. What finished is kept; a run cut short is not recorded."""
        if grace is not None and self._sweep.worker is not None:
            self._sweep.worker.grace_s = float(grace)
        self._sweep.stop_event.set()

    def wait(self, timeout: float | None = None) -> pd.DataFrame:
        """Block until the sweep ends and return :meth:`results`; raises ``TimeoutError`` if it has not ended
        after ``timeout`` seconds (it runs on; :meth:`results` gives the frame so far), and the sweep's error
        if it ended with one (:class:`~flops_fit.errors.SweepIncomplete` when its executor stopped taking runs)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            counts = self.progress()
            raise TimeoutError(f"SweepHandle.wait: the sweep is still running after {timeout:g} s ({counts}); call "
                               "wait() again, or stop() it, or read results() for the frame so far.")
        if self.error is not None:
            raise self.error
        return self.results()

    def results(self) -> pd.DataFrame:
        """The results frame so far; unfinished runs have status ``pending``."""
        return self._sweep.results()

    def curves(self) -> pd.DataFrame:
        return self._sweep.curve_frame()

    def progress(self) -> dict[str, int]:
        """How many runs have each status right now."""
        return self.results()["status"].value_counts().to_dict()

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"SweepHandle({state}, {self.progress()})"
