"""FLOP conventions: how many FLOPs one training token costs for a model of N parameters.

The default, ``"6N"``, charges 6 FLOPs per parameter per token (2 for the forward
pass, 4 for the backward pass; Kaplan et al. 2020, Sec. 2.1; Hoffmann et al. 2022,
App. F), with N as the model's ``num_params()`` reports it. A callable
``params -> flops_per_token`` may stand in for a name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import numpy as np

from ._checks import param_error

FlopConvention = Union[str, Callable[[float], float]]

CONVENTIONS: dict[str, Callable[[float], float]] = {
    "6N": lambda params: 6.0 * params,
}


def convention_name(convention: FlopConvention) -> str:
    return convention if isinstance(convention, str) else getattr(convention, "__name__", repr(convention))


def resolve_convention(convention: FlopConvention, func: str = "plan_sweep") -> Callable[[float], float]:
    """Return the ``params -> flops_per_token`` function behind a convention."""
    if callable(convention):
        return convention
    if isinstance(convention, str) and convention in CONVENTIONS:
        return CONVENTIONS[convention]
    raise param_error(
        "flop_convention", func, f"one of {sorted(CONVENTIONS)} or a callable params -> FLOPs per token", convention
    )


def flops_per_token(params: float | np.ndarray, convention: FlopConvention = "6N") -> float | np.ndarray:
    """FLOPs charged per training token for a model of ``params`` parameters.

    Examples
    --------
    >>> flops_per_token(1e6)
    6000000.0
    """
    return resolve_convention(convention, "flops_per_token")(params)
