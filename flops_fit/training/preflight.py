"""The check before a sweep spends compute: a device that exists, a batch that fits in memory (checked before
any batch is built, so ``batch_size=10**9`` is an error in a second, not a process the kernel kills), and one
tiny batch through model and loss, forward and backward."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _deps
from .._checks import param_error, warn
from .config import TrainConfig
from .data import fetch, sample_pair, to_device
from .device import autocast, device_memory, host_memory, nbytes, pick_device

INDEX_BYTES = 64  # host bytes per sample for the Python list of indices a batch is drawn with


def check_setup(model: Any, train_data: Any, eval_data: Any, loss_fn: Callable[..., Any],
                config: TrainConfig, eval_name: str = "eval_dataset") -> None:
    """Fail before the sweep spends compute: the device exists, ``config.batch_size`` fits in memory (and
    is no larger than the data, or a warning says so), and one tiny batch goes through model and loss,
    forward and backward, on the device and under the autocast that training will use."""
    torch = _deps.torch()
    if not callable(loss_fn):
        raise param_error("loss_fn", "run_sweep", "a callable (outputs, targets) -> scalar loss tensor", loss_fn)
    for name, data in (("dataset", train_data), (eval_name, eval_data)):
        if not hasattr(data, "__len__") or len(data) == 0:
            raise param_error(name, "run_sweep", "a non-empty torch Dataset of (inputs, targets) pairs", data)
        sample_pair(data, 0, name)
        sample_pair(data, len(data) - 1, name)  # a __len__ that overstates the data fails here, not mid-sweep
    device = pick_device(config.device)  # a device asked for by name must exist here
    warn_if_larger_than_data(config.batch_size, len(train_data))
    check_batch_size(config.batch_size, len(train_data))  # its indices alone; before any batch is drawn
    model = model.to(device)
    try:
        x, y = fetch(train_data, range(min(2, len(train_data))))
    except Exception as exc:
        raise ValueError(f"The 'dataset' parameter must yield samples of one shape that stack into a batch; "
                         f"collating two samples raised {type(exc).__name__}: {exc}") from exc
    shape = tuple(getattr(x, "shape", ())) or type(x).__name__
    x, y = to_device(x, device), to_device(y, device)
    try:
        with autocast(device):
            out = model(x)
    except Exception as exc:
        raise ValueError(f"The model could not take a batch of dataset inputs of shape {shape} "
                         f"(dtype {getattr(x, 'dtype', type(x).__name__)}): {type(exc).__name__}: {exc}") from exc
    out_shape = tuple(getattr(out, "shape", ()))
    probed = min(2, len(train_data))  # samples in the batch just built: scale its bytes to batch_size
    check_batch_size(config.batch_size, len(train_data), host_bytes=(nbytes(x) + nbytes(y)) / probed,
                     device_bytes=(nbytes(x) + nbytes(y) + nbytes(out)) / probed, device=device)
    try:
        with autocast(device):
            loss = loss_fn(out, y)
    except Exception as exc:
        raise ValueError(f"The 'loss_fn' parameter could not take the model's output of shape {out_shape} and "
                         f"targets of shape {tuple(getattr(y, 'shape', ()))}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or loss.dim() > 1:
        got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"The 'loss_fn' parameter must return a scalar tensor (reduce with .mean()). "
                         f"Got {got} instead.")
    if not loss.requires_grad:
        raise ValueError("The 'loss_fn' parameter must return a loss that depends on the model's output "
                         "(it has no gradient).")
    loss.backward()
    model.zero_grad(set_to_none=True)
    if not np.isfinite(float(loss.detach())):
        raise ValueError(f"The loss of a freshly built model is {float(loss.detach())}; check the data and loss_fn.")


def check_batch_size(batch_size: int, train_size: int, *, host_bytes: float = 0.0, device_bytes: float = 0.0,
                     device: str = "cpu") -> None:
    """Refuse a batch whose ``batch_size`` samples of ``host_bytes`` (built on the host) and ``device_bytes``
    (inputs, targets and outputs on ``device``) exceed the memory there: a floor, so only impossible ones.

    >>> check_batch_size(32, 1000, host_bytes=1024, device_bytes=4096)
    >>> check_batch_size(10**12, 1000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: The 'batch_size' parameter of TrainConfig must be a batch that fits in the ... GiB of this ...
    """
    data = f" (the training set has {train_size} samples)" if batch_size > train_size else ""
    host = host_bytes + INDEX_BYTES
    checks = [("this machine", host + device_bytes, host_memory())]  # cpu and mps share the machine's memory
    if device == "cuda":
        checks = [("this machine", host, host_memory()), ("the cuda device", device_bytes, device_memory(device))]
    for where, per_sample, memory in checks:
        need = batch_size * per_sample
        if memory is not None and need > memory:
            raise param_error(
                "batch_size", "TrainConfig", f"a batch that fits in the {memory / 2**30:.1f} GiB of {where}",
                batch_size, f"One batch needs at least {need / 2**30:.1f} GiB there ({per_sample:.0f} bytes a "
                f"sample for its inputs, targets, model outputs and indices, before activations){data}; "
                "lower batch_size.")


def warn_if_larger_than_data(batch_size: int, train_size: int) -> None:
    """A batch larger than the training set repeats samples within each step: allowed, but almost always a
    mistake, so say so with the dataset's size."""
    if batch_size > train_size:
        warn(f"run_sweep: batch_size={batch_size} is larger than the training set ({train_size} samples), so "
             "every step repeats samples; lower batch_size to at most the number of samples (or give more data).",
             UserWarning)
