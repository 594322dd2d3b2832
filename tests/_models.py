"""Models for tests of background sweeps: a tiny GPT that notes which process trains it, trains slowly, or
kills its own process or hangs; a dataset that counts how often it is pickled. Module-level, so a spawned
worker can import them."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

from flops_fit.examples import GPT


class OddGPT(GPT):
    """``GPT`` with test knobs: ``pid_dir`` (each forward touches <pid_dir>/<pid>); in worker processes only
    (not in run_sweep's pre-flight check, which runs in the main process), ``step_s`` (sleep in each forward),
    ``kill_at`` (the d_model whose process SIGKILLs itself, as the out-of-memory killer would),
    ``abort_at`` (the one that calls ``os.abort()``) and ``hang_at`` (the one that sleeps for ever, as a
    deadlocked data loader would)."""

    def __init__(self, *, pid_dir: str | None = None, step_s: float = 0.0, kill_at: int | None = None,
                 abort_at: int | None = None, hang_at: int | None = None, **settings):
        super().__init__(**settings)
        self.step_s, self.pid_dir = step_s, pid_dir
        self.kills, self.aborts = settings.get("d_model") == kill_at, settings.get("d_model") == abort_at
        self.hangs = settings.get("d_model") == hang_at

    def forward(self, x):
        if self.pid_dir is not None:
            Path(self.pid_dir, str(os.getpid())).touch()
        if multiprocessing.current_process().name == "MainProcess":
            return super().forward(x)
        if self.kills:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.aborts:
            os.abort()
        while self.hangs:
            time.sleep(3600)
        if self.step_s:
            time.sleep(self.step_s)
        return super().forward(x)


class CountedData:
    """Wraps a token dataset and counts, in the process that pickles it (the sweep's), how often it is pickled
    and how many bytes its data pickled to."""

    pickles = 0
    pickled_bytes = 0

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        return self.inner[index]

    def get_batch(self, indices):
        return self.inner.get_batch(indices)

    def __getstate__(self):
        import pickle

        type(self).pickles += 1
        type(self).pickled_bytes += len(pickle.dumps(self.inner))
        return self.__dict__


class LockedData:
    """A dataset holding a lock: it cannot be pickled, so it cannot reach another process."""

    def __init__(self, data):
        self.data, self.lock = data, threading.Lock()

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]


def worker_threads():
    """In a pool's worker: the threads its torch uses and the OpenMP variable its initializer set."""
    import torch

    return torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
