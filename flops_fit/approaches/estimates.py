"""The one shape every approach answers in: a long frame of estimates, fitted and bootstrapped.

Columns ``approach, resample, quantity, target, value``: resample 0 is the fit on all the
data, 1..n the bootstrap resamples; quantity ``a`` and ``b`` are the exponents of N_opt and
D_opt (``target`` NaN), ``params`` and ``tokens`` are N_opt and D_opt at ``target`` FLOPs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..schema import ESTIMATE_COLUMNS


def estimate_rows(approach: str, resample: int, a: float, b: float, targets: Sequence[float],
                  params: Sequence[float], tokens: Sequence[float]) -> list[dict[str, object]]:
    """The rows of one fit: its exponents, then N_opt and D_opt at each target."""
    nan = float("nan")
    rows: list[dict[str, object]] = [
        {"approach": approach, "resample": resample, "quantity": "a", "target": nan, "value": float(a)},
        {"approach": approach, "resample": resample, "quantity": "b", "target": nan, "value": float(b)},
    ]
    for target, n, d in zip(targets, params, tokens):
        rows.append({"approach": approach, "resample": resample, "quantity": "params", "target": float(target),
                     "value": float(n)})
        rows.append({"approach": approach, "resample": resample, "quantity": "tokens", "target": float(target),
                     "value": float(d)})
    return rows


def as_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=ESTIMATE_COLUMNS)


def values(estimates: pd.DataFrame, quantity: str, target: float | None = None, *,
           resampled: bool | None = None) -> pd.Series:
    """The values of ``quantity`` (at ``target``): all, only the fit (``resampled=False``) or only resamples."""
    keep = estimates["quantity"] == quantity
    if target is not None:
        keep &= np.isclose(estimates["target"].to_numpy(dtype=float), target, rtol=1e-9)
    if resampled is not None:
        keep &= (estimates["resample"] > 0) if resampled else (estimates["resample"] == 0)
    return estimates.loc[keep, "value"].astype(float)


def interval(estimates: pd.DataFrame, quantity: str, target: float | None = None,
             confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``quantity`` over the bootstrap resamples (NaN when there are none)."""
    draws = values(estimates, quantity, target, resampled=True)
    if draws.empty:
        return float("nan"), float("nan")
    low, high = draws.quantile([(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)
