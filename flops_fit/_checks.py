"""Validation at the public boundary, with scikit-learn style messages."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence, Set

import numpy as np


def param_error(param: str, func: str, expected: str, got: object, fix: str = "") -> ValueError:
    """``The 'x' parameter of f must be ... Got ... instead. <fix>``"""
    message = f"The '{param}' parameter of {func} must be {expected}. Got {got!r} instead."
    if fix:
        message += f" {fix}"
    return ValueError(message)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def check_budgets(budgets: object, func: str, param: str = "compute_budgets") -> list[float]:
    """Return positive, distinct budgets in ascending order, or raise naming the bad value."""
    if _is_number(budgets):
        budgets = [budgets]
    if isinstance(budgets, (str, bytes)) or not isinstance(budgets, Iterable):
        raise param_error(param, func, "a list of positive FLOP counts such as [1e18, 1e19, 1e20]", budgets)
    if isinstance(budgets, (Mapping, Set)):  # iterable, but a dict's keys or a set's order are not a list of budgets
        fix = ("A dict is not a list of budgets (only its keys would be used); pass list(...) of the budgets."
               if isinstance(budgets, Mapping) else "A set has no order; pass the budgets as a list, e.g. sorted(...).")
        raise param_error(param, func, "a list of positive FLOP counts such as [1e18, 1e19, 1e20]", budgets, fix)
    values = list(budgets)
    if not values:
        raise param_error(param, func, "a non-empty list of positive FLOP counts", values)
    out: list[float] = []
    for value in values:
        if not _is_number(value):
            raise param_error(param, func, "a list of positive FLOP counts", values, f"{value!r} is not a number.")
        number = float(value)
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


def check_compute(value: object, func: str, param: str = "compute") -> float:
    """One positive, finite FLOP count."""
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) <= 0:  # type: ignore[arg-type]
        raise param_error(param, func, "a positive, finite number of FLOPs such as 1e23", value)
    return float(value)  # type: ignore[arg-type]


def check_number(value: object, param: str, func: str, *, integer: bool = False, above: float = 0.0) -> float:
    """A finite number (an integer if asked) strictly greater than ``above``."""
    ok = _is_number(value) and math.isfinite(float(value))  # type: ignore[arg-type]
    if ok and integer:
        ok = float(value).is_integer()  # type: ignore[arg-type]
    if not ok or float(value) <= above:  # type: ignore[arg-type]
        kind = "an integer" if integer else "a number"
        raise param_error(param, func, f"{kind} greater than {above:g}", value)
    return int(value) if integer else float(value)  # type: ignore[arg-type]


def check_int_list(values: object, param: str, func: str, expected: str) -> list[int]:
    """A non-empty sequence (list, tuple, array) of positive integers."""
    items = list(values) if isinstance(values, (Sequence, np.ndarray)) and not isinstance(values, (str, bytes)) else None
    if not items or not all(_is_number(v) and float(v).is_integer() and v >= 1 for v in items):
        raise param_error(param, func, expected, values)
    return [int(v) for v in items]


def check_int(value: object, param: str, func: str, *, low: int = 1, fix: str = "") -> int:
    """An integer (Python or numpy; not a float such as 1e9, not a bool) of at least ``low``.

    >>> check_int(32, "batch_size", "TrainConfig")
    32
    >>> check_int(1e9, "batch_size", "TrainConfig")
    Traceback (most recent call last):
    ...
    ValueError: The 'batch_size' parameter of TrainConfig must be an integer of at least 1. Got 1000000000.0 instead.
    """
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < low:
        raise param_error(param, func, f"an integer of at least {low}", value, fix)
    return int(value)


def check_choice(value: object, param: str, func: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise param_error(param, func, f"one of {list(choices)}", value)
    return str(value)


def check_seed(seed: object, func: str) -> int:
    if not _is_number(seed) or not float(seed).is_integer() or seed < 0:  # type: ignore[operator]
        raise param_error("seed", func, "a non-negative integer", seed)
    return int(seed)  # type: ignore[arg-type]


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside flops_fit, so users see their own line."""
    import os
    import sys
    import warnings

    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def check_run_timeout(value: object, func: str) -> float | None:
    """``run_timeout``: seconds > 0, or None (no limit)."""
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) <= 0:
        raise param_error("run_timeout", func, "a number of seconds greater than 0, or None", value,
                          "It is how long a run may go without a logged step before it is recorded failed; "
                          "None waits forever.")
    return float(value)
