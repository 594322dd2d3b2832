"""A background sweep's runs trained in a spawned worker process, at the speed of a script's main thread.

PyTorch's CPU parallel regions run far slower when started from a thread other than a
process's main thread, so a sweep trained in a background thread of a notebook's kernel
takes about twice as long as the same sweep in a script. ``run_sweep(mode="local",
background=True)`` (and with it the widgets) therefore trains through a :class:`TrainingWorker`:
one process started with ``spawn`` whose main thread trains the sweep's runs one at a
time. The sweep's thread in the kernel claims each run, sends it over a pipe, passes the
worker's ``step`` and ``eval`` events on to the callbacks as they come, and records the
outcome, so the kernel stays free and the store is written by one process as before.

- **Stop** sets an event the worker reads before every step: the run ends after its current step,
  comes back as abandoned and is not recorded (it runs again on resume). A worker that has not
  answered ``grace_s`` seconds later (a long step, a long evaluation) is killed.
- **A worker that dies** (``os.abort()``, a segfault, the out-of-memory killer's SIGKILL) costs
  only its run: the run is recorded ``failed`` with the signal, and the next run starts a new worker.
- **What cannot be sent** to another process (an open file or lock in the dataset, a model class the
  worker cannot import) is found before the first run; the sweep then trains in the kernel's
  background thread, with a warning that says why. Models, datasets and losses defined in a
  notebook are sent by value with ``cloudpickle``.
- **Start-up.** A new process takes a second or two to import torch. A worker whose sweep ended
  well is kept as this process's one spare, without the sweep's data, and the next background
  sweep starts on it at once; :func:`prestart` makes one ahead of time (the designer does, in local
  mode) and :func:`close_spare` ends it. Workers exit when this process does, however it ends.
"""

from __future__ import annotations

import atexit
import io
import logging
import multiprocessing as mp
import multiprocessing.util  # noqa: F401  (its exit handler, which joins children, must be registered before ours)
import os
import pickle
import signal
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import pandas as pd

from ._checks import warn
from .errors import RunAbandoned
from .events import Callback
from .jobs import Job, exit_with_parent, failed_outcome, run_job, silent_outcome
from .schema import CURVE_COLUMNS
from .shipping import pack

logger = logging.getLogger(__name__)


class WorkerProcess:
    """One spawned process serving jobs: load a job, train the runs it is sent, drop the job, close."""

    _all: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()  # ended at exit, not waited for

    def __init__(self) -> None:
        context = mp.get_context("spawn")
        self.stop = context.Event()
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=serve, args=(theirs, self.stop), name="flops_fit-worker",
                                       daemon=False)  # a daemonic process may not start the model's own helpers
        self.process.start()
        theirs.close()
        self.job_loaded = False
        WorkerProcess._all.add(self)

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def send(self, message: tuple[Any, ...]) -> None:
        self.conn.send(message)

    def send_job(self, payload: bytes) -> None:
        """Send a pickled job without waiting: a big one fills the pipe until the worker, still importing
        torch, starts reading."""
        threading.Thread(target=self._send_bytes, args=(payload,), name="flops_fit-worker-send", daemon=True).start()

    def _send_bytes(self, payload: bytes) -> None:
        try:
            self.conn.send_bytes(payload)
        except OSError:  # the worker died while starting: the sweep's thread reports it
            pass

    def receive(self, timeout: float | None) -> tuple[Any, ...] | None:
        """The worker's next message; ``()`` when none came within ``timeout`` (it is alive); None when it
        has died."""
        waited = 0.0
        while True:
            if self.conn.poll(0.05):
                try:
                    return self.conn.recv()
                except (EOFError, OSError):
                    return None
            if not self.process.is_alive():
                if self.conn.poll(0):  # what it sent before it died
                    continue
                return None
            waited += 0.05
            if timeout is not None and waited >= timeout:
                return ()

    def death(self) -> str:
        """How the worker ended, in words: its signal, or its exit code."""
        self.process.join(2)
        code = self.process.exitcode
        if code is None:
            return "still running"
        if code < 0:
            hint = " (often the out-of-memory killer)" if -code == signal.SIGKILL else ""
            return f"killed by {signal.Signals(-code).name}{hint}"
        return f"exit code {code}"

    def end(self, kill: bool = False) -> None:
        """Tell the worker to exit (or kill it) without waiting long: interpreters with torch take a second."""
        if not kill and self.process.is_alive():
            try:
                self.conn.send(("close",))
            except OSError:
                kill = True
        if kill and self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        threading.Thread(target=self._reap, name="flops_fit-worker-reap", daemon=True).start()

    def _reap(self) -> None:
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


_spare: list[WorkerProcess] = []  # at most one idle worker with torch imported, for the next sweep
_spare_lock = threading.Lock()


def prestart() -> None:
    """Start a spare worker process now, so the next background local sweep need not wait for one."""
    with _spare_lock:
        if not any(w.alive for w in _spare):
            _spare[:] = [WorkerProcess()]


def close_spare() -> None:
    """End the spare worker process, if there is one (it holds torch's memory, not any sweep's data)."""
    with _spare_lock:
        for worker in _spare:
            worker.end()
        _spare.clear()


def _take_spare() -> WorkerProcess:
    with _spare_lock:
        found = [w for w in _spare if w.alive]
        _spare.clear()
    return found[0] if found else WorkerProcess()


def _keep_spare(worker: WorkerProcess) -> None:
    with _spare_lock:
        if not _spare and worker.alive:
            _spare.append(worker)
            return
    worker.end()


class TrainingWorker:
    """Trains the runs of one sweep in a worker process (see the module docstring).

    Parameters
    ----------
    job : Job
        What trains one run (:class:`~flops_fit.jobs.TrainJob`); sent once to each worker process.
    grace_s : float, default 10
        After a stop, how long a run may take to reach the end of its step before its worker is killed.
    run_timeout : float, optional
        How long a run may go without a word from its worker before the worker is killed and the run recorded
        ``failed`` ("no progress for N s"); the next run starts a new worker. None: no limit.
    """

    def __init__(self, job: Job, *, grace_s: float = 10.0, run_timeout: float | None = None) -> None:
        self.job, self.grace_s, self.run_timeout = job, grace_s, run_timeout
        self.fallback: str | None = None  # why runs train in this process instead (None: they do not)
        self.worker: WorkerProcess | None = None
        try:
            self._payload = _dumps(job)
        except Exception as exc:
            self._fall_back(f"{type(exc).__name__}: {exc}")
            return
        self._load(_take_spare())

    def _load(self, worker: WorkerProcess) -> None:
        self.worker = worker
        worker.job_loaded = False  # nothing more is sent until it says ready: the job travels in a thread
        worker.send(("job",))
        worker.send_job(self._payload)

    def _await_ready(self, worker: WorkerProcess, should_stop: Callable[[], bool]) -> None:
        """Wait until the worker has loaded the job (a new one imports torch first); a stop meanwhile abandons
        the run before it starts."""
        message = worker.receive(0.25)
        while message == ():
            if should_stop():
                raise RunAbandoned("stopped while the worker process started")
            message = worker.receive(0.25)
        if message is None:
            self._fall_back(worker.death(), started=False)
        elif message[0] == "unusable":
            self._fall_back(message[1])
        else:
            worker.job_loaded = True

    def _fall_back(self, why: str, started: bool = True) -> None:
        """Train here from now on, saying why: the job cannot reach a worker, or no worker could start."""
        self.fallback = why
        self._end(kill=True)
        slower = ("so this sweep trains in a background thread of this process, where torch runs slower (about 2x "
                  "on CPU; torch.set_num_threads(1) narrows the gap for small models).")
        if started:
            warn(f"run_sweep: the model, data or loss cannot be sent to a worker process ({why}), {slower} Define "
                 "them in importable modules, and keep open files and locks out of the dataset, to train at full "
                 "speed.")
        else:
            warn(f"run_sweep: its worker process ended while starting ({why}; its error is printed above), {slower} "
                 "A spawned process imports the script that started it again: in a script, start the sweep under "
                 "`if __name__ == \"__main__\":`.")

    def run(self, row: dict[str, Any], emit: Callback, should_stop: Callable[[], bool]) -> tuple[dict[str, Any],
                                                                                               pd.DataFrame]:
        """Train ``row`` in the worker, passing its events to ``emit``; :class:`RunAbandoned` when stopped."""
        if self.fallback is None and self.worker is None:
            self._load(WorkerProcess())
        if self.fallback is None and not self.worker.job_loaded:
            self._await_ready(self.worker, should_stop)
        if self.fallback is not None:
            return run_job(self.job, row, emit, should_stop)
        worker = self.worker
        worker.stop.clear()
        worker.send(("run", row))
        stopped_at: float | None = None
        heard = time.monotonic()
        while True:
            if stopped_at is None and should_stop():
                worker.stop.set()
                stopped_at = time.monotonic()
            message = worker.receive(0.25)
            if message != ():
                heard = time.monotonic()
            elif stopped_at is None and self.run_timeout is not None and heard + self.run_timeout < time.monotonic():
                logger.warning("run %s: no progress for %g s; killing its worker, the sweep goes on in a new one",
                               row["run_id"], self.run_timeout)
                self._end(kill=True)
                return silent_outcome(self.run_timeout, "worker process",
                                      "it was killed and the sweep went on in a new one"), \
                    pd.DataFrame(columns=CURVE_COLUMNS)
            if message is None:
                how = worker.death()
                self._end(kill=True)
                if stopped_at is not None:
                    raise RunAbandoned(f"run {row['run_id']}: its worker ended while stopping ({how})")
                logger.warning("run %s: its worker process died (%s); the sweep goes on in a new one",
                               row["run_id"], how)
                return failed_outcome(f"its worker process died ({how}) while it trained; the sweep went on in a "
                                      "new worker"), pd.DataFrame(columns=CURVE_COLUMNS)
            if message == ():
                if stopped_at is not None and time.monotonic() - stopped_at > self.grace_s:
                    logger.warning("run %s: no answer %.0f s after stop; killing its worker", row["run_id"],
                                   self.grace_s)
                    self._end(kill=True)
                    raise RunAbandoned(f"run {row['run_id']}: killed {self.grace_s:g} s after stop")
            elif message[0] == "event":
                emit(message[1])
            elif message[0] == "done":
                return message[1], message[2]
            elif message[0] == "abandoned":
                raise RunAbandoned(message[1])

    def close(self) -> None:
        """The sweep is over (call between runs): its worker drops the sweep's job and is kept as the spare."""
        worker, self.worker = self.worker, None
        if worker is None:
            return
        if not worker.job_loaded:  # still loading: not worth waiting for
            worker.end(kill=True)
            return
        try:
            worker.send(("drop",))
        except OSError:
            worker.end(kill=True)
            return
        _keep_spare(worker)

    def _end(self, kill: bool = False) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.end(kill)

    @property
    def pid(self) -> int | None:
        """The worker process's id (None when none is running for this sweep)."""
        return None if self.worker is None else self.worker.process.pid


def _dumps(job: Job, limit: int | None = None) -> bytes:
    """The job as bytes a spawned process can load (see :func:`flops_fit.shipping.pack`)."""
    out = io.BytesIO()
    pack(job, out, limit)
    return out.getvalue()


def serve(conn: Any, stop: Any) -> None:
    """A worker process's main thread: for each job it is sent, load it, train each run it is sent, and drop it
    when told; exit when told to close, or when the process that started it has gone."""
    exit_with_parent()
    job = None

    def emit(event: dict[str, Any]) -> None:
        conn.send(("event", event))

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "job":
            try:
                job = pickle.loads(conn.recv_bytes())
            except Exception as exc:
                job = None
                conn.send(("unusable", f"the worker could not load them: {type(exc).__name__}: {exc}"))
                continue
            conn.send(("ready",))
        elif kind == "run":
            try:
                outcome, curve = run_job(job, message[1], emit, stop.is_set)
            except RunAbandoned as exc:
                conn.send(("abandoned", str(exc)))
                continue
            conn.send(("done", outcome, curve))
        elif kind == "drop":
            job = None
        else:
            return


@atexit.register
def _end_all() -> None:
    """At this process's exit, kill the workers rather than wait for them (multiprocessing joins its children)."""
    for worker in list(WorkerProcess._all):
        if worker.process.is_alive():
            worker.process.kill()
