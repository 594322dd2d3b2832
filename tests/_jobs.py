"""Jobs for tests of executors and shared directories: a mock run that takes a while, notes its worker, or
kills its worker. Module-level, so process pools can pickle them."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from flops_fit.jobs import MockJob


@dataclass
class SlowMockJob(MockJob):
    delay: float = 0.2  # seconds each run takes
    pid_dir: str | None = None  # each worker touches <pid_dir>/<its pid>
    die_at: int | None = None  # the size whose worker process dies (os._exit) mid-run

    def __call__(self, row, emit, should_stop):
        if self.pid_dir is not None:
            Path(self.pid_dir, str(os.getpid())).touch()
        if self.die_at is not None and int(row["size"]) == self.die_at:
            os._exit(3)
        time.sleep(self.delay)
        return super().__call__(row, emit, should_stop)
