"""The check before a sweep spends compute: one tiny batch through model and loss, forward and backward."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _deps
from .._checks import param_error
from .config import TrainConfig
from .data import fetch, sample_pair, to_device
from .device import autocast, pick_device


def check_setup(model: Any, train_data: Any, eval_data: Any, loss_fn: Callable[..., Any],
                config: TrainConfig, eval_name: str = "eval_dataset") -> None:
    """Fail before the sweep spends compute: one tiny batch through model and loss, forward and backward,
    on the device and under the autocast that training will use."""
    torch = _deps.torch()
    if not callable(loss_fn):
        raise param_error("loss_fn", "run_sweep", "a callable (outputs, targets) -> scalar loss tensor", loss_fn)
    for name, data in (("dataset", train_data), (eval_name, eval_data)):
        if not hasattr(data, "__len__") or len(data) == 0:
            raise param_error(name, "run_sweep", "a non-empty torch Dataset of (inputs, targets) pairs", data)
        sample_pair(data, 0, name)
        sample_pair(data, len(data) - 1, name)  # a __len__ that overstates the data fails here, not mid-sweep
    device = pick_device(config.device)
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
