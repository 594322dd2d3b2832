"""The training loop: one run on exactly its token budget, then its held-out loss.

A run planned for D tokens takes ``round(D / tokens_per_step)`` optimiser steps, so it
trains within half a step of D, under a schedule that spans exactly those steps. A
dataset smaller than D is cycled, reshuffled each epoch. The loss is measured on a
fixed set of held-out batches at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from .. import _deps
from ..errors import RunAbandoned
from ..events import Callback
from ..schema import CURVE_COLUMNS, Status
from .config import TrainConfig, lr_factor, steps_for
from .data import batches, fetch, to_device, tokens_per_sample
from .device import autocast, peak_flops, pick_device, sync


def evaluate(model: Any, dataset: Any, loss_fn: Callable[..., Any], config: TrainConfig, device: str) -> float:
    """Mean loss over the first ``eval_batches`` batches of ``dataset``, in order: the same batches every run."""
    torch = _deps.torch()
    total, count = 0.0, 0
    n = len(dataset)
    model.eval()
    with torch.no_grad(), autocast(device):
        for start in range(0, min(n, config.eval_batches * config.batch_size), config.batch_size):
            indices = range(start, min(start + config.batch_size, n))
            x, y = fetch(dataset, indices)
            loss = loss_fn(model(to_device(x, device)), to_device(y, device))
            total += float(loss) * len(indices)
            count += len(indices)
    model.train()
    return total / count


def _optimizer(model: Any, config: TrainConfig, device: str) -> Any:
    """AdamW with decay on matrices only (nanoGPT's split); fused kernels where this torch has them."""
    torch = _deps.torch()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, fused=device in ("cuda", "cpu"))
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def train_run(
    model: Any,
    train_data: Any,
    eval_data: Any,
    loss_fn: Callable[..., Any],
    *,
    tokens: int,
    flops_per_token: float,
    config: TrainConfig,
    run_id: str = "",
    emit: Callback | None = None,
    should_stop: Callable[[], bool] | None = None,
    sample_tokens: int | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train ``model`` for ``tokens`` tokens and return (outcome, curve).

    ``outcome`` holds ``loss`` (held-out, at the end), ``status`` (``completed`` or
    ``diverged``), ``tokens_trained``, ``steps``, ``epochs``, ``wall_time``,
    ``tokens_per_second``, ``flops_per_second`` (under the plan's FLOP convention),
    ``utilisation`` (against :func:`peak_flops` of the device), ``device`` and ``error``. ``curve`` has one
    row per logged step: ``run_id, step, tokens, flops, loss, lr`` (training loss,
    averaged since the previous row). ``emit`` receives a ``step`` event per logged step and an
    ``eval`` event at the end. ``should_stop`` is polled before every step; when it returns
    True the run raises :class:`~flops_fit.errors.RunAbandoned`. ``sample_tokens`` is the tokens one
    sample counts for (default :func:`tokens_per_sample` of the data). Divergence is checked at each
    logged step, so the device is not made to wait for the host every step.
    """
    torch = _deps.torch()
    device = pick_device(config.device)
    per_sample = sample_tokens if sample_tokens is not None else tokens_per_sample(train_data)
    per_step = config.batch_size * per_sample
    steps = steps_for(tokens, config, per_sample)
    model = model.to(device)
    module = torch.compile(model) if config.compile else model
    optimizer = _optimizer(model, config, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(min(s, steps - 1), steps, config))
    log_every = max(1, steps // config.log_points)
    emit = emit or (lambda event: None)

    rows, count, epochs, status, error, done = [], 0, 0.0, Status.COMPLETED, None, 0
    running = torch.zeros((), device=device)  # summed on the device; read back only when logged
    stream = batches(train_data, config.batch_size, config.seed)
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        if should_stop is not None and should_stop():
            raise RunAbandoned(f"run {run_id} stopped at step {step} of {steps}")
        x, y, epochs = next(stream)
        with autocast(device):
            loss = loss_fn(module(to_device(x, device)), to_device(y, device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        schedule.step()
        done, running, count = done + 1, running + loss.detach().float(), count + 1
        if (step + 1) % log_every == 0 or step + 1 == steps:
            mean = float(running) / count
            if not math.isfinite(mean):
                status, error = Status.DIVERGED, f"training loss became {mean} by step {step + 1} of {steps}"
                break
            seen = (step + 1) * per_step
            rows.append({"run_id": run_id, "step": step + 1, "tokens": seen, "flops": seen * flops_per_token,
                         "loss": mean, "lr": lr})
            emit({"type": "step", "run_id": run_id, "step": step + 1, "steps": steps, "tokens": seen,
                  "loss": mean, "lr": lr})
            running, count = torch.zeros((), device=device), 0
    sync(device)
    train_time = time.perf_counter() - start
    final = float("nan")
    if status == Status.COMPLETED:
        final = evaluate(module, eval_data, loss_fn, config, device)
        if not math.isfinite(final):
            status, error = Status.DIVERGED, f"held-out loss is {final}"
        emit({"type": "eval", "run_id": run_id, "loss": final})
    throughput = done * per_step / train_time if train_time > 0 else float("nan")
    achieved = throughput * flops_per_token
    outcome = {
        "loss": final, "status": status.value, "error": error, "tokens_trained": done * per_step, "steps": done,
        "epochs": epochs, "wall_time": time.perf_counter() - start, "tokens_per_second": throughput,
        "flops_per_second": achieved, "utilisation": achieved / peak_flops(device), "device": device,
    }
    return outcome, pd.DataFrame(rows, columns=CURVE_COLUMNS)
