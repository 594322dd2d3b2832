"""Where training runs and what that device can do: cuda, then mps, then cpu; a measured matmul peak; its memory."""

from __future__ import annotations

import contextlib
import os
import time
from functools import lru_cache
from typing import Any

from .. import _deps
from .._checks import param_error


def pick_device(name: str = "auto") -> str:
    """cuda, then mps, then cpu for ``"auto"``; a device asked for by name must be available here.

    >>> pick_device("cpu")
    'cpu'
    """
    torch = _deps.torch()
    has_cuda = torch.cuda.is_available()
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return "cuda" if has_cuda else "mps" if has_mps else "cpu"
    if (name == "cuda" and not has_cuda) or (name == "mps" and not has_mps):
        check = "torch.cuda.is_available()" if name == "cuda" else "torch.backends.mps.is_available()"
        raise param_error("device", "TrainConfig", "a device this machine has", name,
                          f"{name!r} is not available here ({check} is False, torch {torch.__version__}); "
                          "use device='auto' (cuda, then mps, then cpu) or device='cpu'.")
    return name


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


def host_memory() -> int | None:
    """Physical memory of this machine in bytes, or None where the system does not say."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def device_memory(device: str) -> int | None:
    """Memory of ``device`` in bytes: the card's for cuda, the machine's for cpu and mps."""
    if device == "cuda":
        torch = _deps.torch()
        return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)
    return host_memory()


def nbytes(value: Any) -> int:
    """Bytes held by the tensors and arrays in ``value`` (inside dicts, lists and tuples too).

    >>> import torch
    >>> nbytes({"ids": torch.zeros(2, 8, dtype=torch.long), "mask": [torch.zeros(2, 8)]})
    192
    """
    if hasattr(value, "numel") and hasattr(value, "element_size"):
        return int(value.numel()) * int(value.element_size())
    if isinstance(getattr(value, "nbytes", None), int):  # numpy arrays
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    return 0
