"""Bootstrap intervals for Approach 2: resample runs within each budget, refit everything, repeat."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._checks import check_budgets, check_number, param_error
from .analyzer import centred_parabola, log_tokens_at, prepare_results


def _vertex(x: np.ndarray, y: np.ndarray, log_t: np.ndarray) -> tuple[float, float] | None:
    """(ln N_opt, ln D_opt) of one budget's parabola, or None when it has no minimum inside its sizes."""
    if np.unique(x).size < 3:
        return None
    c2, c1, _, centre = centred_parabola(x, y)
    if c2 <= 0:
        return None
    x_opt = centre - c1 / (2 * c2)
    if not x.min() <= x_opt <= x.max():
        return None
    return x_opt, log_tokens_at(x, log_t, x_opt)


def bootstrap_isoflops(results: pd.DataFrame, *, n_resamples: int = 1000, seed: int = 0,
                       targets: Sequence[float] = ()) -> pd.DataFrame:
    """Approach 2 refitted on ``n_resamples`` resamples; one row per resample that could be fitted.

    Each resample draws, within every budget, as many runs as it has, with
    replacement; vertices that leave their sampled sizes are dropped as in the full
    fit. Columns: ``a`` and ``b`` (exponents of N_opt and D_opt), ``k_params`` and
    ``k_tokens`` (coefficients), and ``params_at_<C>`` / ``tokens_at_<C>`` for each
    target. Their quantiles are percentile intervals, reproducible for a seed.
    """
    func = "bootstrap_isoflops"
    check_number(n_resamples, "n_resamples", func, integer=True, above=1)
    goals = check_budgets(targets, func, "targets") if len(targets) else []
    frame = prepare_results(results, func)
    groups = [(np.log(b), np.log(g["params"].to_numpy(float)), g["loss"].to_numpy(float),
               np.log(g["tokens"].to_numpy(float))) for b, g in frame.groupby("budget")]
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_resamples):
        log_c, log_n, log_d = [], [], []
        for c, x, y, t in groups:
            pick = rng.integers(0, len(x), len(x))
            found = _vertex(x[pick], y[pick], t[pick])
            if found is not None:
                log_c.append(c)
                log_n.append(found[0])
                log_d.append(found[1])
        if len(log_c) < 2:
            continue
        a, ln_k = np.polyfit(log_c, log_n, 1)
        b, ln_kd = np.polyfit(log_c, log_d, 1)
        row = {"a": a, "b": b, "k_params": np.exp(ln_k), "k_tokens": np.exp(ln_kd)}
        for goal in goals:
            row[f"params_at_{goal:.3g}"] = np.exp(ln_k + a * np.log(goal))
            row[f"tokens_at_{goal:.3g}"] = np.exp(ln_kd + b * np.log(goal))
        rows.append(row)
    if not rows:
        raise param_error("results", func, "budgets whose minimum can be located in resamples", "none",
                          "Add runs per budget.")
    return pd.DataFrame(rows)
