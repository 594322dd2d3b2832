"""PlanRows: how one planned run's row is made (its size, FLOPs, tokens and run_id), for any planner."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..flops import NEEDS_MODEL, FlopContext, convention_name, resolve_convention
from ..ids import make_run_id, record_json
from ..schema import PLAN_COLUMNS, Status
from ..spec import PlanSpec
from ..training.config import TrainConfig, describe
from .sizes import SizeSpace, build_meta, factory_name


@dataclass
class PlanRows:
    """Everything a plan row needs besides its budget and size: the knob's sizes, the FLOP convention, the
    training settings (part of each run_id) and what one sample and one optimiser step hold."""

    space: SizeSpace
    spec: PlanSpec
    example_input: Any = None
    tokens_per_sample: int = 1
    tokens_known: bool = False  # only then does a row record tokens_per_sample (run_sweep checks the data by it)
    train_config: TrainConfig | None = None
    _per_token_of: Callable[[FlopContext], float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._per_token_of = resolve_convention(self.spec.flop_convention, "plan_sweep")

    @property
    def needs_model(self) -> bool:
        return needs_model(self.spec)

    def fpt(self, params: float) -> float:
        """FLOPs per token as the prior and the servable range see them (see :func:`prior_fpt`)."""
        return prior_fpt(self.spec)(params)

    @property
    def step_tokens(self) -> int:
        """Tokens of one optimiser step (1 when the training settings are not known)."""
        return (self.train_config.batch_size if self.train_config is not None else 1) * self.tokens_per_sample

    def trainable(self, budget: float, size: int) -> bool:
        """Whether ``size`` gets at least one optimiser step at ``budget``."""
        params = self.space.params_of(size)
        return params is not None and budget / self.fpt(params) >= self.step_tokens

    def row(self, budget: float, size: int, repeat: int = 0, reason: str = "grid") -> dict[str, Any]:
        """The plan row of ``size`` at ``budget`` (``repeat`` k > 0: the k-th extra run, under its own seed)."""
        space, spec = self.space, self.spec
        params = space.params_of(size)
        model = build_meta(space.model_cls, space.param, size, spec.model_kwargs) if self.needs_model else None
        per_token = float(self._per_token_of(FlopContext(int(params), model, self.example_input,
                                                         self.tokens_per_sample)))
        tokens = max(int(round(budget / per_token)), 1)
        training = describe(self.train_config) if self.train_config is not None else None
        return {
            "run_id": make_run_id(model=factory_name(space.model_cls), param=space.param,
                                  model_kwargs=spec.model_kwargs, budget=budget, size=size, tokens=tokens,
                                  flop_convention=convention_name(spec.flop_convention), training=training,
                                  **({"repeat": repeat} if repeat else {})),
            "budget": budget, "size": int(size), "params": int(params), "flops_per_token": per_token,
            "tokens": tokens, "flops": per_token * tokens, "tokens_per_param": tokens / params,
            "status": Status.PENDING.value, "size_param": space.param, "model_kwargs": record_json(spec.model_kwargs),
            # only when known: run_sweep then checks the training data against it
            "tokens_per_sample": self.tokens_per_sample if self.tokens_known else None, "repeat": repeat,
            "reason": reason,
        }

    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        plan = pd.DataFrame(rows, columns=PLAN_COLUMNS)
        plan["tokens_per_sample"] = plan["tokens_per_sample"].astype("Int64")
        return plan

    def prior_optimum(self, budget: float) -> float:
        """The size the tokens-per-parameter prior expects to be optimal at ``budget``."""
        return prior_optimum(budget, self.spec.tokens_per_param, self.fpt)


def needs_model(spec: PlanSpec) -> bool:
    """Whether the FLOP convention counts a built model (``"attention"``, ``"measured"``) rather than N alone."""
    return isinstance(spec.flop_convention, str) and spec.flop_convention in NEEDS_MODEL


def prior_fpt(spec: PlanSpec) -> Callable[[float], float]:
    """FLOPs per token as a function of N for the prior and the servable range: 6N unless the convention is a
    function of N alone."""
    if needs_model(spec):
        return lambda n: 6.0 * n
    per_token_of = resolve_convention(spec.flop_convention, "plan_sweep")
    return lambda n: float(per_token_of(FlopContext(int(n))))


def prior_optimum(budget: float, tokens_per_param: float, fpt: Callable[[float], float]) -> float:
    """N at which ``budget = fpt(N) * tokens_per_param * N``: the size the prior expects to be optimal."""
    lo, hi = 0.0, 80.0  # bisection on ln N; fpt is increasing in N
    for _ in range(200):
        mid = (lo + hi) / 2
        n = math.exp(mid)
        if fpt(n) * tokens_per_param * n < budget:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)
