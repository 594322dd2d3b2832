"""What a gpu_pool worker sees; a module that imports nothing heavy, so spawned workers start at once."""

import os
import time


def visible_gpu_after_a_while() -> str | None:
    time.sleep(1.0)  # long enough that both workers take a task
    return os.environ.get("CUDA_VISIBLE_DEVICES")
