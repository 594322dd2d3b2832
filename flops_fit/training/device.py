"""Where training runs and what that device can do: cuda, then mps, then cpu; a measured matmul peak."""

from __future__ import annotations

import contextlib
import time
from functools import lru_cache
from typing import Any

from .. import _deps


def pick_device(name: str = "auto") -> str:
    """cuda, then mps, then cpu."""
    if name != "auto":
        return name
    torch = _deps.torch()
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@lru_cache(maxsize=None)
def peak_flops(device: str) -> float:
    """Matrix-multiply FLOP/s measured on ``device`` in the dtype training uses there (bf16 on CUDA).

    The yardstick for each run's utilisation: what this machine really reaches, not a data-sheet figure.
    """
    torch = _deps.torch()
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    n = 4096 if device == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    repeats, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.3:
        a @ b
        repeats += 1
        sync(device)
    return 2.0 * n**3 * repeats / (time.perf_counter() - start)


def sync(device: str) -> None:
    """Wait for the device to finish what it was given (timing needs it)."""
    torch = _deps.torch()
    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def autocast(device: str) -> Any:
    """bf16 autocast on CUDA cards that support it; full precision elsewhere (pre-Ampere cards too)."""
    torch = _deps.torch()
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
