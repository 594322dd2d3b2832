"""Runs on an executor's workers that have gone silent: noticed, given up on, and their workers freed.

A run on an executor's worker on this host reports ``run_start`` (with the worker's host and pid)
and a ``step`` at each of its log points over the sweep's event channel. A run not heard from for
``run_timeout`` seconds since then (a hung data loader, a deadlock, a step slower than that) is
given up on: the sweep records it ``failed`` and goes on. Nothing can stop a running task from
outside in a thread pool or on Dask, but a process pool's worker can be: one stuck on a run given
up is killed once every other run has landed (or at once, when every worker of the pool is stuck),
so the sweep, and the pool's ``shutdown``, never wait on it forever. A pool that lost a worker this
way takes no more runs, and the user is told to make a new one.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

from ._checks import warn
from .channel import HOST
from .shipping import start_method

logger = logging.getLogger(__name__)


class RunWatch:
    """When each run in flight on ``executor`` was last heard from, and which runs were given up.

    Examples
    --------
    >>> watch = RunWatch(timeout=0.0, executor=None)
    >>> watch.heard({"type": "run_start", "run_id": "a", "worker": {"host": HOST, "pid": 7}})
    >>> future = object()
    >>> watch.silent({future: {"run_id": "a"}}) == [future], watch.where("a") == f"pid 7 on {HOST}"
    (True, True)
    """

    def __init__(self, timeout: float | None, executor: Any) -> None:
        self.timeout, self.executor = timeout, executor
        self.last: dict[str, float] = {}  # run_id -> when its worker last sent an event
        self.workers: dict[str, dict[str, Any]] = {}  # run_id -> the host and pid its run_start named
        self.abandoned: dict[Any, str] = {}  # future -> run_id: given up, perhaps still running

    def heard(self, event: dict[str, Any]) -> None:
        run_id = event.get("run_id")
        if run_id is None:
            return
        self.last[run_id] = time.monotonic()
        if event.get("type") == "run_start" and isinstance(event.get("worker"), dict):
            self.workers[run_id] = event["worker"]

    def silent(self, in_flight: dict[Any, dict[str, Any]]) -> list[Any]:
        """The futures in ``in_flight`` whose run has started and then said nothing for ``timeout`` seconds
        (a run not yet started may be queued behind others, so its clock has not begun)."""
        if self.timeout is None:
            return []
        now = time.monotonic()
        return [future for future, row in in_flight.items()
                if now - self.last.get(row["run_id"], now) > self.timeout and not _done(future)]

    def where(self, run_id: str) -> str:
        worker = self.workers.get(run_id)
        return f"pid {worker['pid']} on {worker['host']}" if worker else "a worker that never reported"

    def abandon(self, future: Any, run_id: str) -> None:
        self.abandoned[future] = run_id
        self.free()

    def free(self, everything: bool = False) -> None:
        """Kill the process pool workers still running a run given up: at the sweep's end (``everything``), or
        now if no worker of the pool is left for the other runs."""
        self.abandoned = {future: run_id for future, run_id in self.abandoned.items() if not _done(future)}
        if not self.abandoned or start_method(self.executor) is None:
            return
        processes = dict(getattr(self.executor, "_processes", None) or {})
        if not everything and len(self.abandoned) < len(processes):
            return
        killed = []
        for run_id in self.abandoned.values():
            worker = self.workers.get(run_id, {})
            if worker.get("host") == HOST and worker.get("pid") in processes:
                try:
                    os.kill(worker["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.append(f"pid {worker['pid']} (run {run_id})")
        self.abandoned = {}
        if killed:
            warn(f"run_sweep: killed the process pool's worker {', '.join(killed)}, stuck without progress for "
                 f"{self.timeout:g} s, so that nothing waits on it forever. The pool takes no more runs: make a new "
                 "one (flops_fit.process_pool) for the next sweep.")


def _done(future: Any) -> bool:
    done = getattr(future, "done", None)
    return bool(done()) if callable(done) else False
