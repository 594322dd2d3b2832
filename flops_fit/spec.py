"""PlanSpec: every option of how a sweep is planned, validated once, in one frozen dataclass.

:func:`~flops_fit.plan_sweep`, :func:`~flops_fit.find_optimal`, the
:class:`~flops_fit.widgets.SweepDesigner` and ``ff-plan`` all take one (their keyword
forms, ``points_per_budget=5`` and so on, build it). A sweep directory stores it as
``spec.json`` and gives it back (:meth:`flops_fit.SweepStore.spec`).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import InitVar, dataclass, field, fields
from typing import Any

import numpy as np

from ._checks import check_choice, check_int_list, check_number, param_error
from .flops import FlopConvention, convention_name, is_recorded, resolve_convention
from .ids import record_json, to_json


STRATEGIES = ("fixed", "adaptive")


@dataclass(frozen=True)
class PlanSpec:
    """How to plan an IsoFLOP sweep (all but the model, its knob and the budgets).

    Examples
    --------
    >>> spec = PlanSpec(points_per_budget=5, tokens_per_param=100)
    >>> spec.points_per_budget, spec.size_span
    (5, 100.0)
    >>> PlanSpec.from_dict(spec.to_dict()) == spec
    True
    """

    points_per_budget: int = 9  # model sizes per budget; a curve needs at least 3
    # prior for the optimal D/N: Hoffmann et al. 2022 found ~20 at scale; small models often want far more
    tokens_per_param: float = 20.0
    size_span: float = 100.0  # largest / smallest planned N at a budget, centred in log space on the prior optimum
    size_values: tuple[int, ...] | None = None  # knob values to run exactly, at every budget where they get a step
    size_range: tuple[int, int] | None = None  # lowest and highest knob values to search
    multiple_of: int = 1  # only knob values that are multiples of this are tried
    # FLOPs per token: "6N", "6N_non_embedding", "attention", "measured", or a callable params -> FLOPs
    flop_convention: FlopConvention = "6N"
    # fixed keyword arguments of the factory (None means none); numpy scalars are stored as Python numbers
    model_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # runs of each budget's middle size (the one nearest the prior optimum), each under its own seed: the
    # run-to-run noise they show enters the intervals (1: no repeats)
    repeats: int = 1
    # "fixed": points_per_budget sizes at every budget, planned up front. "adaptive": a small start design, then
    # batches chosen from the runs so far (planning/adaptive.py) until target_precision or max_compute
    strategy: str = "fixed"
    # adaptive: stop when the 95 % interval of N_opt at target_compute is this narrow ((high - low) / 2 / N_opt)
    target_precision: float = 0.1
    max_compute: float | None = None  # adaptive: FLOPs it may spend; None: what the fixed design would spend
    target_compute: float | None = None  # adaptive: where precision is judged; None: 100x the largest budget
    parallel: int = 1  # adaptive: runs proposed at a time, so an executor with this many workers stays busy
    caller: InitVar[str] = "PlanSpec"  # the function named in error messages

    def __post_init__(self, caller: str) -> None:
        func = caller
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "points_per_budget", check_number(self.points_per_budget, "points_per_budget", func,
                                                     integer=True, above=2))
        set_(self, "tokens_per_param", check_number(self.tokens_per_param, "tokens_per_param", func))
        set_(self, "size_span", check_number(self.size_span, "size_span", func, above=1.0))
        set_(self, "multiple_of", check_number(self.multiple_of, "multiple_of", func, integer=True))
        set_(self, "repeats", check_number(self.repeats, "repeats", func, integer=True))
        check_choice(self.strategy, "strategy", func, STRATEGIES)
        precision = self.target_precision
        if isinstance(precision, bool) or not isinstance(precision, (int, float)) or not 0 < precision < 1:
            raise param_error("target_precision", func, "a number strictly between 0 and 1", precision,
                              "It is the relative half-width of the 95 % interval of N_opt to stop at: 0.1 "
                              "means within about +-10 %.")
        set_(self, "target_precision", float(precision))
        for name in ("max_compute", "target_compute"):
            if getattr(self, name) is not None:
                set_(self, name, check_number(getattr(self, name), name, func))
        set_(self, "parallel", check_number(self.parallel, "parallel", func, integer=True))
        if not is_recorded(self.flop_convention):
            resolve_convention(self.flop_convention, func)
        if self.size_values is not None and self.size_range is not None:
            raise param_error("size_range", func, "None when size_values is given", self.size_range,
                              "Pass one or the other.")
        if self.size_values is not None:
            set_(self, "size_values", tuple(check_int_list(self.size_values, "size_values", func,
                                                           "a non-empty list of positive integers")))
        if self.size_range is not None:
            expected = "a pair of integers (low, high) with 1 <= low <= high"
            pair = check_int_list(self.size_range, "size_range", func, expected)
            if len(pair) != 2 or pair[0] > pair[1]:
                raise param_error("size_range", func, expected, self.size_range)
            set_(self, "size_range", (pair[0], pair[1]))
        if self.model_kwargs is None:
            set_(self, "model_kwargs", {})
        if not isinstance(self.model_kwargs, Mapping):
            raise param_error("model_kwargs", func, "a dict of fixed keyword arguments for model_cls",
                              self.model_kwargs)
        # a copy (the caller's dict may change later), with numpy scalars as the numbers they are
        settings = {k: v.item() if isinstance(v, np.generic) else v for k, v in self.model_kwargs.items()}
        to_json(settings)  # every setting must name itself, or run ids could collide
        set_(self, "model_kwargs", settings)

    # -- the keyword forms -------------------------------------------------------------------
    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_options(cls, spec: PlanSpec | None, options: Mapping[str, Any], func: str,
                     arguments: Iterable[str] = ()) -> PlanSpec:
        """``spec`` (default: the defaults) with ``options`` replacing its fields, checked for ``func``
        (whose own ``arguments`` are suggested too when a keyword is misspelt)."""
        if spec is not None and not isinstance(spec, PlanSpec):
            raise param_error("spec", func, "a flops_fit.PlanSpec", spec)
        unknown = sorted(set(options) - set(cls.option_names()))
        if unknown:
            known = [*cls.option_names(), *arguments]
            close = {name: difflib.get_close_matches(name, known, n=1) for name in unknown}
            hint = "; ".join(f"Did you mean {found[0]!r} for {name!r}?" for name, found in close.items() if found)
            raise TypeError(f"{func}() got unexpected keyword argument(s) {unknown}: neither arguments of {func} "
                            f"nor planning options {cls.option_names()} (see flops_fit.PlanSpec). {hint}".rstrip())
        if spec is not None and not options:
            return spec
        base = spec.options() if spec is not None else {}
        return cls(**{**base, **options}, caller=func)

    def options(self) -> dict[str, Any]:
        """The fields as keyword arguments (``model_kwargs`` as a plain dict)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["model_kwargs"] = dict(self.model_kwargs)
        return values

    # -- storing ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists for tuples (model settings that were tuples come back as lists); a callable
        convention by name (``"callable:<name>"``, which cannot plan again); model settings that JSON cannot
        hold as ``{"__repr__": ...}`` (which cannot build a model again: pass them anew)."""
        values = self.options()
        values["size_values"] = None if self.size_values is None else list(self.size_values)
        values["size_range"] = None if self.size_range is None else list(self.size_range)
        if not isinstance(self.flop_convention, str):
            values["flop_convention"] = convention_name(self.flop_convention, recorded=True)
        values["model_kwargs"] = json.loads(record_json(values["model_kwargs"]))
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], func: str = "PlanSpec.from_dict") -> PlanSpec:
        """The spec :meth:`to_dict` wrote (fields it does not know are refused)."""
        return cls.from_options(None, dict(values), func)
