"""Log axes that read well: a few labelled ticks whatever the span, and ranges known before any run lands."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._format import human

# tick mantissas within a decade, sparse to dense (a decade stride above 1 comes before these)
_MANTISSAS = [(1,), (1, 3), (1, 2, 5), (1, 2, 3, 5, 7), (1, 2, 3, 4, 5, 6, 7, 8, 9)]


def power_label(value: float) -> str:
    """3e17 -> '3×10<sup>17</sup>', 1e17 -> '10<sup>17</sup>': a FLOP count on an axis, short enough for many ticks."""
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = round(value / 10.0**exponent, 6)
    power = f"10<sup>{exponent}</sup>"
    return power if mantissa == 1 else f"{mantissa:g}×{power}"


def log_ticks(lo: float, hi: float, max_labels: int = 6,
              label: Callable[[float], str] = human) -> dict[str, Any]:
    """Ticks for a log axis over ``[lo, hi]`` (log10 units): as many as fit in ``max_labels``, never fewer than two
    where a decade's 1-2-5 steps allow it, each labelled by ``label`` (``human``: ``2M``, ``10M``). Returns the
    axis properties (``tickmode``, ``tickvals``, ``ticktext``).

    >>> log_ticks(6.35, 7.2)["ticktext"]  # a narrow range still gets several labels
    ['3M', '5M', '7M', '10M']
    >>> log_ticks(16.9, 23.1, 4, power_label)["ticktext"]
    ['10<sup>17</sup>', '10<sup>19</sup>', '10<sup>21</sup>', '10<sup>23</sup>']
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return {}
    first, last = math.floor(lo), math.ceil(hi)
    candidates: list[list[float]] = []
    for stride in (10, 5, 3, 2):  # decades apart
        candidates.append([10.0**k for k in range(math.ceil(lo - 1e-9), last + 1, stride)])
    for mantissas in _MANTISSAS:
        candidates.append([m * 10.0**k for k in range(first, last + 1) for m in mantissas])
    chosen: list[float] = []
    for values in candidates:  # the densest set that fits
        shown = [v for v in values if lo - 1e-9 <= math.log10(v) <= hi + 1e-9]
        if len(shown) <= max_labels and len(shown) >= len(chosen):
            chosen = shown
    return {"tickmode": "array", "tickvals": chosen, "ticktext": [label(v) for v in chosen]}


def padded(values: Sequence[float] | np.ndarray, pad: float = 0.05, least: float = 0.05) -> list[float]:
    """The log10 range covering positive ``values``, padded by ``pad`` of the span (at least ``least`` decades)."""
    values = np.asarray(values, dtype=float)
    logs = np.log10(values[np.isfinite(values) & (values > 0)])
    if not len(logs):
        return []
    lo, hi = float(logs.min()), float(logs.max())
    margin = max(pad * (hi - lo), least)
    return [lo - margin, hi + margin]


def scaling_laws_ranges(budgets: Sequence[float], params: Sequence[float], tokens: Sequence[float],
                        targets: Sequence[float] = ()) -> dict[str, list[float]]:
    """The scaling-law panels' axis ranges (log10) from a plan, before any law is fitted: compute from the smallest
    budget to the largest target; N_opt and D_opt from the smallest planned size up to what an exponent of 1 would
    reach at the largest target. N_opt·D_opt grows as C, so each exponent lies in [0, 1] and the laws, the optima and
    the extrapolations all fall inside; only an interval's band can reach beyond (and is cut at the edge).

    Returns ``{"compute": [lo, hi], "params": [lo, hi], "tokens": [lo, hi]}``.
    """
    budgets = np.asarray(budgets, dtype=float)
    reach = max([*budgets, *targets]) / budgets.max()  # how far past the largest budget the panel goes
    out = {"compute": padded([*budgets, *targets], 0.04)}
    for name, values in (("params", params), ("tokens", tokens)):
        values = np.asarray(values, dtype=float)
        out[name] = padded([values.min(), values.max() * reach], 0.06)
    return out
