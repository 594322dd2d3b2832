"""Models for tests of background sweeps: a tiny GPT that notes which process trains it, trains slowly, or
kills its own process. Module-level, so a spawned worker can import them."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

from flops_fit.examples import GPT


class OddGPT(GPT):
    """``GPT`` with test knobs: ``pid_dir`` (each forward touches <pid_dir>/<pid>); in worker processes only
    (not in run_sweep's pre-flight check, which runs in the main process), ``step_s`` (sleep in each forward),
    ``kill_at`` (the d_model whose process SIGKILLs itself, as the out-of-memory killer would) and
    ``abort_at`` (the one that calls ``os.abort()``)."""

    def __init__(self, *, pid_dir: str | None = None, step_s: float = 0.0, kill_at: int | None = None,
                 abort_at: int | None = None, **settings):
        super().__init__(**settings)
        self.step_s, self.pid_dir = step_s, pid_dir
        self.kills, self.aborts = settings.get("d_model") == kill_at, settings.get("d_model") == abort_at

    def forward(self, x):
        if self.pid_dir is not None:
            Path(self.pid_dir, str(os.getpid())).touch()
        if multiprocessing.current_process().name == "MainProcess":
            return super().forward(x)
        if self.kills:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.aborts:
            os.abort()
        if self.step_s:
            time.sleep(self.step_s)
        return super().forward(x)
