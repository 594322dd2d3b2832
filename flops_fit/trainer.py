"""One training run on exactly its token budget.

A run planned for D tokens takes ``round(D / tokens_per_step)`` optimiser steps, so
it trains within half a step of D, and its learning-rate schedule (linear warm-up,
then cosine or warmup-stable-decay) spans exactly those steps: a run is never cut
out of a longer schedule (Hoffmann et al. 2022, Sec. 3.1 and App. B). A dataset
smaller than D is cycled, reshuffled each epoch. The run's loss is measured on a
fixed set of held-out batches at the end.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ._checks import check_choice, check_number, param_error

Callback = Callable[[dict[str, Any]], None]


class RunAbandoned(Exception):
    """A run stopped part-way on request (``SweepHandle.stop()``); it is not recorded and will run again."""


@dataclass
class TrainConfig:
    """Optimiser, schedule and evaluation settings shared by every run of a sweep.

    Defaults suit the small models a CPU can train (the DESIGN table's byte-level GPT).
    """

    lr: float = 3e-3  # peak learning rate; small models tolerate (and need) high rates
    batch_size: int = 32  # samples per step
    warmup: float = 0.05  # fraction of the run's steps spent warming up linearly (step 1 runs at lr / warm-up steps)
    schedule: str = "cosine"  # "cosine", or "wsd": warm up, hold, then decay linearly over `decay`
    decay: float = 0.2  # wsd only: the fraction of steps spent decaying
    min_lr_ratio: float = 0.1  # final learning rate as a fraction of lr (Chinchilla decays 10x, App. B)
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    eval_batches: int = 10  # held-out batches for each run's final loss (the same batches every run)
    eval_fraction: float = 0.02  # held out from the end of a dataset given without an eval split
    log_points: int = 50  # roughly how many points of each run's loss curve to record
    seed: int = 0  # model init and data order; a run is reproducible for a seed
    device: str = "auto"  # "auto" picks cuda, then mps, then cpu
    compile: bool = False  # torch.compile the model (worth it on GPUs, for long runs)

    def __post_init__(self) -> None:
        func = "TrainConfig"
        check_number(self.lr, "lr", func)
        check_number(self.batch_size, "batch_size", func, integer=True)
        for name in ("warmup", "decay", "min_lr_ratio", "eval_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
                raise param_error(name, func, "a fraction in [0, 1)", value)
        check_number(self.weight_decay, "weight_decay", func, above=-1e-300)
        check_number(self.grad_clip, "grad_clip", func, above=-1e-300)
        check_number(self.eval_batches, "eval_batches", func, integer=True)
        check_number(self.log_points, "log_points", func, integer=True)
        check_choice(self.schedule, "schedule", func, ("cosine", "wsd"))
        check_choice(self.device, "device", func, ("auto", "cpu", "cuda", "mps"))


def lr_factor(step: int, steps: int, config: TrainConfig) -> float:
    """Learning rate at ``step`` (0-based) of a ``steps``-long run, as a fraction of ``config.lr``.

    >>> cfg = TrainConfig(warmup=0.1, min_lr_ratio=0.1)
    >>> [round(lr_factor(s, 100, cfg), 3) for s in (0, 9, 10, 55, 99)]
    [0.1, 1.0, 1.0, 0.542, 0.1]
    """
    warm = max(1, round(config.warmup * steps)) if config.warmup > 0 else 0
    if step < warm:
        return (step + 1) / warm
    floor = config.min_lr_ratio
    if config.schedule == "wsd":
        decay_start = steps - max(1, round(config.decay * steps))
        if step < decay_start:
            return 1.0
        progress = (step - decay_start + 1) / (steps - decay_start)
        return 1.0 - (1.0 - floor) * progress
    span = max(steps - warm - 1, 1)
    progress = min((step - warm) / span, 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def pick_device(name: str = "auto") -> str:
    """cuda, then mps, then cpu."""
    import torch

    if name != "auto":
        return name
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
    import torch

    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    n = 4096 if device == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    repeats, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.3:
        a @ b
        repeats += 1
        _sync(device)
    return 2.0 * n**3 * repeats / (time.perf_counter() - start)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def tokens_per_sample(dataset: Any) -> int:
    """``dataset.tokens_per_sample`` if set; else the size of an integer input (token ids); else 1."""
    declared = getattr(dataset, "tokens_per_sample", None)
    if declared is not None:
        return int(declared)
    from .sweep import infer_tokens_per_sample

    return infer_tokens_per_sample(sample_pair(dataset, 0, "dataset")[0])


def sample_pair(dataset: Any, index: int, name: str) -> tuple[Any, Any]:
    """``dataset[index]`` as an (inputs, targets) pair, or a clear error."""
    try:
        item = dataset[index]
    except Exception as exc:
        raise ValueError(f"The '{name}' parameter must be indexable like a torch Dataset "
                         f"({name}[{index}] raised {type(exc).__name__}: {exc}).") from exc
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise ValueError(f"The '{name}' parameter must yield (inputs, targets) pairs. "
                         f"Got {type(item).__name__} from {name}[{index}] instead.")
    return item[0], item[1]


def _fetch(dataset: Any, indices: Sequence[int]) -> tuple[Any, Any]:
    """The samples at ``indices`` as one (inputs, targets) batch.

    A dataset with ``get_batch(indices)`` builds the batch itself (one gather instead
    of a Python loop); otherwise samples are collated as a DataLoader would.
    """
    from torch.utils.data import Subset, default_collate

    base, chosen = dataset, list(indices)
    if isinstance(dataset, Subset):  # a held-out split of a dataset that can batch itself
        base, chosen = dataset.dataset, [dataset.indices[i] for i in chosen]
    if callable(getattr(base, "get_batch", None)):
        return base.get_batch(chosen)
    batch = default_collate([dataset[i] for i in indices])
    return batch[0], batch[1]


def _batches(dataset: Any, batch_size: int, seed: int) -> Iterator[tuple[Any, Any, float]]:
    """Endless shuffled batches, reshuffled each epoch; yields (inputs, targets, epochs consumed so far)."""
    import torch

    n = len(dataset)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator).tolist()
    position, seen = 0, 0
    while True:
        chosen: list[int] = []
        while len(chosen) < batch_size:
            take = order[position:position + batch_size - len(chosen)]
            chosen += take
            position += len(take)
            if position >= n:
                order, position = torch.randperm(n, generator=generator).tolist(), 0
        seen += batch_size
        x, y = _fetch(dataset, chosen)
        yield x, y, seen / n


def split_eval(dataset: Any, eval_dataset: Any, fraction: float) -> tuple[Any, Any]:
    """(train, eval): the given eval split, or the last ``fraction`` of ``dataset`` held out."""
    if eval_dataset is not None:
        return dataset, eval_dataset
    from torch.utils.data import Subset

    n = len(dataset)
    held = max(1, int(round(n * fraction)))
    if n - held < 1:
        raise ValueError(f"The 'dataset' parameter must hold at least 2 samples to hold some out; it has {n}.")
    return Subset(dataset, range(n - held)), Subset(dataset, range(n - held, n))


def evaluate(model: Any, dataset: Any, loss_fn: Callable[..., Any], config: TrainConfig, device: str) -> float:
    """Mean loss over the first ``eval_batches`` batches of ``dataset``, in order: the same batches every run."""
    import torch

    total, count = 0.0, 0
    n = len(dataset)
    model.eval()
    with torch.no_grad(), _autocast(device):
        for start in range(0, min(n, config.eval_batches * config.batch_size), config.batch_size):
            indices = range(start, min(start + config.batch_size, n))
            x, y = _fetch(dataset, indices)
            loss = loss_fn(model(to_device(x, device)), to_device(y, device))
            total += float(loss) * len(indices)
            count += len(indices)
    model.train()
    return total / count


def to_device(batch: Any, device: str) -> Any:
    """Move tensors to ``device``, inside dicts, lists and tuples too (Hugging Face style batches)."""
    if hasattr(batch, "to") and callable(batch.to):
        return batch.to(device)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def _autocast(device: str) -> Any:
    import contextlib

    import torch

    if device == "cuda" and torch.cuda.is_bf16_supported():  # pre-Ampere cards train in fp32
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _optimizer(model: Any, config: TrainConfig, device: str) -> Any:
    """AdamW with decay on matrices only (nanoGPT's split); fused kernels where this torch has them."""
    import torch

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
    callbacks: Sequence[Callback] = (),
    should_stop: Callable[[], bool] | None = None,
    sample_tokens: int | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train ``model`` for ``tokens`` tokens and return (outcome, curve).

    ``outcome`` holds ``loss`` (held-out, at the end), ``status`` (``completed`` or
    ``diverged``), ``tokens_trained``, ``steps``, ``epochs``, ``wall_time``,
    ``tokens_per_second``, ``flops_per_second`` (under the plan's FLOP convention),
    ``utilisation`` (against :func:`peak_flops` of the device), ``device`` and ``error``. ``curve`` has one
    row per logged step: ``run_id, step, tokens, flops, loss, lr`` (training loss,
    averaged since the previous row). ``should_stop`` is polled before every step;
    when it returns True the run raises :class:`RunAbandoned`. ``sample_tokens`` is
    the tokens one sample counts for (default :func:`tokens_per_sample` of the data).
    Divergence is checked at each logged step, so the device is not made to wait for
    the host every step.
    """
    import torch

    device = pick_device(config.device)
    per_sample = sample_tokens if sample_tokens is not None else tokens_per_sample(train_data)
    per_step = config.batch_size * per_sample
    steps = max(1, round(tokens / per_step))
    model = model.to(device)
    module = torch.compile(model) if config.compile else model
    optimizer = _optimizer(model, config, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(min(s, steps - 1), steps, config))
    log_every = max(1, steps // config.log_points)
    emit = emitter(callbacks)
    emit({"type": "run_start", "run_id": run_id, "steps": steps, "tokens": steps * per_step, "device": device})

    rows, count, epochs, status, error, done = [], 0, 0.0, "completed", None, 0
    running = torch.zeros((), device=device)  # summed on the device; read back only when logged
    batches = _batches(train_data, config.batch_size, config.seed)
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        if should_stop is not None and should_stop():
            raise RunAbandoned(f"run {run_id} stopped at step {step} of {steps}")
        x, y, epochs = next(batches)
        with _autocast(device):
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
                status, error = "diverged", f"training loss became {mean} by step {step + 1} of {steps}"
                break
            seen = (step + 1) * per_step
            rows.append({"run_id": run_id, "step": step + 1, "tokens": seen, "flops": seen * flops_per_token,
                         "loss": mean, "lr": lr})
            emit({"type": "step", "run_id": run_id, "step": step + 1, "steps": steps, "tokens": seen,
                  "loss": mean, "lr": lr})
            running, count = torch.zeros((), device=device), 0
    _sync(device)
    train_time = time.perf_counter() - start
    final = float("nan")
    if status == "completed":
        final = evaluate(module, eval_data, loss_fn, config, device)
        if not math.isfinite(final):
            status, error = "diverged", f"held-out loss is {final}"
        emit({"type": "eval", "run_id": run_id, "loss": final})
    throughput = done * per_step / train_time if train_time > 0 else float("nan")
    achieved = throughput * flops_per_token
    outcome = {
        "loss": final, "status": status, "error": error, "tokens_trained": done * per_step, "steps": done,
        "epochs": epochs, "wall_time": time.perf_counter() - start, "tokens_per_second": throughput,
        "flops_per_second": achieved, "utilisation": achieved / peak_flops(device), "device": device,
    }
    emit({"type": "run_end", "run_id": run_id, **outcome})
    curve = pd.DataFrame(rows, columns=["run_id", "step", "tokens", "flops", "loss", "lr"])
    return outcome, curve


def emitter(callbacks: Sequence[Callback]) -> Callback:
    """One function that passes an event to every callback in ``callbacks`` (read at each call, so callbacks
    added later are reached), logging rather than raising a callback's error."""

    def emit(event: dict[str, Any]) -> None:
        for callback in callbacks:
            try:
                callback(event)
            except Exception:  # a broken display must not cost a trained run
                logging.getLogger(__name__).exception("callback %r failed on a %s event", callback, event["type"])

    return emit


def describe(config: TrainConfig) -> dict[str, Any]:
    """The settings that change what a run learns (they go into its run_id); device and compile do not."""
    settings = asdict(config)
    for name in ("device", "compile", "log_points"):
        settings.pop(name)
    return settings


def check_setup(model: Any, train_data: Any, eval_data: Any, loss_fn: Callable[..., Any],
                config: TrainConfig, eval_name: str = "eval_dataset") -> None:
    """Fail before the sweep spends compute: one tiny batch through model and loss, forward and backward,
    on the device and under the autocast that training will use."""
    import torch

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
        x, y = _fetch(train_data, range(min(2, len(train_data))))
    except Exception as exc:
        raise ValueError(f"The 'dataset' parameter must yield samples of one shape that stack into a batch; "
                         f"collating two samples raised {type(exc).__name__}: {exc}") from exc
    shape = tuple(getattr(x, "shape", ())) or type(x).__name__
    x, y = to_device(x, device), to_device(y, device)
    try:
        with _autocast(device):
            out = model(x)
    except Exception as exc:
        raise ValueError(f"The model could not take a batch of dataset inputs of shape {shape} "
                         f"(dtype {getattr(x, 'dtype', type(x).__name__)}): {type(exc).__name__}: {exc}") from exc
    out_shape = tuple(getattr(out, "shape", ()))
    try:
        with _autocast(device):
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
