"""The training settings shared by every run of a sweep, and the learning-rate schedule each run follows.

A run planned for D tokens takes ``round(D / tokens_per_step)`` optimiser steps and its
schedule (linear warm-up, then cosine or warmup-stable-decay) spans exactly those steps:
a run is never cut out of a longer schedule (Hoffmann et al. 2022, Sec. 3.1 and App. B).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .._checks import _is_number, check_choice, check_int, check_number, param_error


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
        self.batch_size = check_int(self.batch_size, "batch_size", func,
                                    fix="It is the number of samples in one optimiser step, such as 32.")
        for name in ("warmup", "decay", "min_lr_ratio", "eval_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
                raise param_error(name, func, "a fraction in [0, 1)", value)
        if self.schedule == "wsd" and self.warmup + self.decay > 1 + 1e-12:
            raise param_error("decay", func, f"at most 1 - warmup = {1 - self.warmup:g} under schedule='wsd'",
                              self.decay, "Warm-up and decay together cannot take more than the whole run.")
        for name in ("weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(float(value)) or value < 0:
                raise param_error(name, func, "a non-negative, finite number", value)
        betas = self.betas
        if (not isinstance(betas, (tuple, list)) or len(betas) != 2
                or not all(_is_number(b) and 0 <= b < 1 for b in betas)):
            raise param_error("betas", func, "two numbers in [0, 1), AdamW's (beta1, beta2)", betas,
                              "The default is (0.9, 0.95).")
        self.betas = tuple(betas)  # type: ignore[assignment]  # a list from a YAML config becomes a pair
        self.eval_batches = check_int(self.eval_batches, "eval_batches", func)
        self.log_points = check_int(self.log_points, "log_points", func)
        self.seed = check_int(self.seed, "seed", func, low=0)
        check_choice(self.schedule, "schedule", func, ("cosine", "wsd"))
        check_choice(self.device, "device", func, ("auto", "cpu", "cuda", "mps"))
        if not isinstance(self.compile, (bool, np.bool_)):
            raise param_error("compile", func, "True or False", self.compile)
        self.compile = bool(self.compile)


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


def describe(config: TrainConfig) -> dict[str, Any]:
    """The settings that change what a run learns (they go into its run_id); device and compile do not."""
    settings = asdict(config)
    for name in ("device", "compile", "log_points"):
        settings.pop(name)
    return settings


def steps_for(tokens: int, config: TrainConfig, sample_tokens: int) -> int:
    """Optimiser steps of a run planned for ``tokens``: the nearest whole number of batches, at least one.

    >>> steps_for(64_000, TrainConfig(batch_size=32), 64)
    31
    """
    return max(1, round(tokens / (config.batch_size * sample_tokens)))
