"""Validation at the public boundary, with scikit-learn style messages."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np


def param_error(param: str, func: str, expected: str, got: object, fix: str = "") -> ValueError:
    """``The 'x' parameter of f must be ... Got ... instead. <fix>``"""
    message = f"The '{param}' parameter of {func} must be {expected}. Got {got!r} instead."
    if fix:
        message += f" {fix}"
    return ValueError(message)


def check_budgets(budgets: object, func: str, param: str = "compute_budgets") -> list[float]:
    """Return positive, distinct budgets in ascending order, or raise naming the bad value."""
    if isinstance(budgets, (int, float, np.number)) and not isinstance(budgets, bool):
        budgets = [budgets]
    if isinstance(budgets, (str, bytes)) or not isinstance(budgets, Iterable):
        raise param_error(param, func, "a list of positive FLOP counts such as [1e18, 1e19, 1e20]", budgets)
    values = list(budgets)
    if not values:
        raise param_error(param, func, "a non-empty list of positive FLOP counts", values)
    out: list[float] = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise param_error(param, func, "a list of positive FLOP counts", values) from None
        if not math.isfinite(number) or number <= 0:
            raise param_error(
                param, func, "a list of positive, finite FLOP counts", values, f"{value!r} is not positive and finite."
            )
        out.append(number)
    ordered = sorted(out)
    duplicates = sorted({b for b, nxt in zip(ordered, ordered[1:]) if math.isclose(b, nxt, rel_tol=1e-9)})
    if duplicates:
        raise param_error(
            param, func, "a list of distinct FLOP counts", values,
            f"Remove the duplicate budget(s) {', '.join(f'{d:.3g}' for d in duplicates)}.",
        )
    return ordered


def check_positive(value: object, param: str, func: str, *, integer: bool = False, minimum: float = 0.0) -> float:
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or not math.isfinite(float(value)) or float(value) <= minimum:
        bound = f"greater than {minimum:g}"
        raise param_error(param, func, f"{kind} {bound}", value)
    return int(value) if integer else float(value)


def check_choice(value: object, param: str, func: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise param_error(param, func, f"one of {list(choices)}", value)
    return str(value)
