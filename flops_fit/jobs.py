"""The two kinds of run behind one small protocol: simulate a planted law, or train for real.

A job is picklable, so any executor can run it: ``run_job(job, row)`` in a worker
returns ``(outcome, curve)`` whatever happens inside. The runner emits ``run_end``, and
``run_start`` (with what :meth:`Job.start` says) for runs trained in its process; on an
executor, :func:`run_remote` emits ``run_start`` in the worker and sends it, with the
job's ``step`` and ``eval`` events, back over the sweep's event channel.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import pandas as pd

from . import _deps
from .channel import HOST, Ticket, sender
from .errors import RunAbandoned
from .events import Callback
from .mock import PlantedLaw, simulate_run
from .schema import CURVE_COLUMNS, Status
from .shipping import unpack
from .training.config import TrainConfig, describe, steps_for
from .training.device import pick_device
from .training.loop import train_run

logger = logging.getLogger(__name__)
Row = Mapping[str, Any]


class Job(Protocol):
    """What runs one row of a plan."""

    def identity(self) -> dict[str, Any]:
        """What, besides the run_id, decides a run's outcome; a stored record must match it to be reused."""

    def start(self, row: Row) -> dict[str, Any]:
        """What the ``run_start`` event reports: ``steps``, ``tokens`` and ``device``."""

    def __call__(self, row: Row, emit: Callback, should_stop: Callable[[], bool]) -> tuple[dict[str, Any],
                                                                                             pd.DataFrame]:
        """Run it: (outcome with at least ``status``, ``loss``, ``tokens_trained``; the loss curve)."""


@dataclass
class MockJob:
    """Simulates each run from ``law``; noise depends on ``seed`` and the run_id only. With ``pace`` (seconds)
    each run takes that long, so a live view shows points arriving; a stop request ends the wait at once and
    the run is abandoned (pending again), as a stopped training run is."""

    law: PlantedLaw
    seed: int
    pace: float = 0.0

    def identity(self) -> dict[str, Any]:
        return {"mode": "mock", "seed": self.seed, "law": asdict(self.law)}

    def start(self, row: Row) -> dict[str, Any]:
        return {"steps": 1, "tokens": int(row["tokens"]), "device": "mock"}

    def __call__(self, row: Row, emit: Callback, should_stop: Callable[[], bool]) -> tuple[dict[str, Any],
                                                                                             pd.DataFrame]:
        end = time.monotonic() + self.pace
        while self.pace and (left := end - time.monotonic()) > 0:
            if should_stop():
                raise RunAbandoned(f"run {row['run_id']} stopped while paced")
            time.sleep(min(left, 0.01))
        loss, curve = simulate_run(row["run_id"], row["params"], int(row["tokens"]), row["flops_per_token"],
                                   self.law, self.seed)
        return {"status": Status.COMPLETED.value, "loss": loss, "tokens_trained": int(row["tokens"]),
                "device": "mock"}, curve


@dataclass
class TrainJob:
    """Builds ``model_cls(**model_kwargs, param=size)`` and trains it on exactly its token budget."""

    model_cls: Any
    param: str
    train_data: Any
    eval_data: Any
    loss_fn: Any
    config: TrainConfig
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    sample_tokens: int = 1  # tokens one sample counts for, read once from the dataset the user gave

    def identity(self) -> dict[str, Any]:
        return {"mode": "local", "training": describe(self.config), "tokens_per_sample": self.sample_tokens}

    def build(self, size: int, seed: int | None = None) -> Any:
        _deps.torch().manual_seed(self.config.seed if seed is None else seed)  # the same init whatever ran before
        return self.model_cls(**{**self.model_kwargs, self.param: int(size)})

    def start(self, row: Row) -> dict[str, Any]:
        steps = steps_for(int(row["tokens"]), self.config, self.sample_tokens)
        return {"steps": steps, "tokens": steps * self.config.batch_size * self.sample_tokens,
                "device": pick_device(self.config.device)}

    def __call__(self, row: Row, emit: Callback, should_stop: Callable[[], bool]) -> tuple[dict[str, Any],
                                                                                             pd.DataFrame]:
        config = repeat_config(self.config, row)
        return train_run(self.build(row["size"], config.seed), self.train_data, self.eval_data, self.loss_fn,
                         tokens=int(row["tokens"]), flops_per_token=float(row["flops_per_token"]),
                         config=config, run_id=row["run_id"], emit=emit, should_stop=should_stop,
                         sample_tokens=self.sample_tokens)


def repeat_config(config: TrainConfig, row: Row) -> TrainConfig:
    """The settings of a repeated run (``repeat`` k > 0 in its plan row): the same, but seed + k, so its
    initialisation and data order differ."""
    repeat = row.get("repeat", 0)
    repeat = 0 if repeat is None or pd.isna(repeat) else int(repeat)
    return replace(config, seed=config.seed + repeat) if repeat else config


def _never() -> bool:
    return False


def run_job(job: Job, row: Row, emit: Callback | None = None,
            should_stop: Callable[[], bool] = _never) -> tuple[dict[str, Any], pd.DataFrame]:
    """Run one row: a run that raises (out of memory, a bug in the model...) comes back ``failed`` with its
    error, so the sweep goes on. Module-level, so process pools and clusters can pickle it."""
    start = time.perf_counter()
    try:
        outcome, curve = job(row, emit or (lambda event: None), should_stop)
    except RunAbandoned:
        raise
    except Exception as exc:
        logger.warning("run %s (size %s) failed: %s", row["run_id"], row["size"], exc)
        outcome, curve = failed_outcome(f"{type(exc).__name__}: {exc}"), pd.DataFrame(columns=CURVE_COLUMNS)
    outcome.setdefault("wall_time", time.perf_counter() - start)
    return outcome, curve


def failed_outcome(error: str) -> dict[str, Any]:
    """The outcome of a run that did not finish: ``failed``, with why."""
    return {"status": Status.FAILED.value, "loss": float("nan"), "tokens_trained": 0, "error": error}


def silent_outcome(seconds: float, worker: str, then: str) -> dict[str, Any]:
    """The outcome of a run whose ``worker`` ("worker process", "worker (pid 12 on host)") sent nothing for
    ``seconds`` (a sweep's ``run_timeout``): ``failed``, with the likely causes and what happened ``then``.

    >>> silent_outcome(10, "worker process", "the sweep went on without it")["error"][:60]
    'no progress for 10 s: its worker process sent no step in tha'
    """
    return failed_outcome(f"no progress for {seconds:g} s: its {worker} sent no step in that time (a hung data "
                          f"loader, a deadlock, a step slower than run_timeout); {then}")


def run_remote(job: Job, row: Row, submitter: int, ticket: Ticket | None = None) -> tuple[dict[str, Any],
                                                                                        pd.DataFrame]:
    """:func:`run_job` as an executor's worker runs it: its ``run_start`` (which says the worker's host and pid),
    ``step`` and ``eval`` events go to the sweep over ``ticket``'s channel (:mod:`flops_fit.channel`); ``job`` may
    be what :mod:`flops_fit.shipping` sent in its place. In a worker process (not the submitting
    process ``submitter``) it first makes sure the worker exits when its own parent does: a process pool's
    workers outlive a parent killed with SIGKILL otherwise, training on for nobody."""
    if os.getpid() != submitter:
        exit_with_parent()
    emit = sender(ticket)
    job = unpack(job)  # a process pool's run carries the job's file, loaded once per worker
    try:
        emit({"type": "run_start", "run_id": row["run_id"], **job.start(row), "row": dict(row),
              "worker": {"host": HOST, "pid": os.getpid()}})
    except Exception:  # e.g. no such device: the run itself raises it again, and is recorded failed with it
        pass
    return run_job(job, row, emit)


_watching: list[threading.Thread] = []  # at most one watchdog per worker process


def exit_with_parent(every: float = 1.0) -> None:
    """In a worker process: exit (within ``every`` seconds) once the process that started it has ended."""
    if _watching and _watching[0].is_alive():
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:  # when the parent dies, the worker is handed to another (init)
            time.sleep(every)
        logger.warning("flops_fit worker %d: parent %d is gone; exiting", os.getpid(), parent)
        os._exit(1)

    _watching[:] = [threading.Thread(target=watch, name="flops_fit-parent-watch", daemon=True)]
    _watching[0].start()
