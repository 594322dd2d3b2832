"""Approach 2 (Hoffmann et al. 2022, Sec. 3.2): where loss bottoms out at each budget, and its bootstrap.

At each compute budget C, fit a parabola of loss in ln N through the runs of that
budget; its vertex is N_opt(C), and D_opt is read off the line ln D(ln N) at that C.
The power laws across budgets are :mod:`.laws`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._checks import check_budgets, check_number, param_error, warn
from ..errors import CannotFitError, FitWarning
from ..frames import prepare_results, require_sizes
from ..schema import OPTIMA_COLUMNS
from .estimates import estimate_rows
from .laws import Optima
from .vpnls import FLAT, curve_problem

def centred_parabola(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Least squares y = c2 (x - m)^2 + c1 (x - m) + c0 with m the mean of x; returns (c2, c1, c0, m).

    Centring keeps the normal equations well conditioned; the vertex is at m - c1 / (2 c2).
    """
    centre = float(x.mean())
    c2, c1, c0 = np.polyfit(x - centre, y, 2)
    return float(c2), float(c1), float(c0), centre


def log_tokens_at(x: np.ndarray, log_tokens: np.ndarray, x_opt: float) -> float:
    """ln D at ln N = x_opt: ln D is linear in ln N at fixed C (exactly so under 6N)."""
    slope, intercept = np.polyfit(x, log_tokens, 1) if np.ptp(x) > 0 else (0.0, log_tokens.mean())
    return float(intercept + slope * x_opt)


def budget_optimum(x: np.ndarray, y: np.ndarray, log_tokens: np.ndarray) -> dict[str, object]:
    """Approach 2 at one budget, from ln N, loss and ln D of its runs: the parabola of loss in ln N, its
    vertex and D there. The fit and its bootstrap both call this: one vertex, computed one way."""
    c2, c1, c0, centre = centred_parabola(x, y)
    fitted = np.polyval([c2, c1, c0], x - centre)
    scatter = float(np.sqrt(((y - fitted) ** 2).sum() / (len(y) - 3))) if len(y) > 3 else float("nan")
    lo, hi = x.min(), x.max()
    problem = curve_problem(x, y)  # all losses equal, or a straight line: no vertex, whatever c2's rounding says
    has_minimum = bool(c2 > 0) and not problem
    if has_minimum:
        x_opt = centre - c1 / (2 * c2)
        loss_opt = c0 - c1**2 / (4 * c2)
    else:  # no vertex to speak of: report the lowest run, flagged
        x_opt, loss_opt = x[np.argmin(y)], y.min()
    inside = bool(has_minimum and lo <= x_opt <= hi)
    log_d_opt = log_tokens_at(x, log_tokens, x_opt)
    if inside:
        flag = ""
    elif problem:
        flag = problem
    elif not has_minimum:
        flag = "no minimum (loss does not curve upwards)"
    else:
        flag = f"vertex outside the sampled sizes ({'below' if x_opt < lo else 'above'} them)"
    return {
        "params_opt": float(np.exp(x_opt)), "tokens_opt": float(np.exp(log_d_opt)),
        "loss_opt": float(loss_opt), "n_points": len(y), "params_min": float(np.exp(lo)),
        "params_max": float(np.exp(hi)), "curvature": float(c2), "scatter": scatter, "has_minimum": has_minimum,
        "inside": inside, "usable": inside, "flag": flag,
    }


def fit_isoflops(results: pd.DataFrame, *, min_points: int = 3) -> pd.DataFrame:
    """Approach 2: the loss-minimising N, D and loss at each budget.

    Parameters
    ----------
    results : pandas.DataFrame
        Columns ``params``, ``tokens``, ``loss`` and ``budget`` or ``flops`` (noisy
        FLOP counts are snapped to budgets); rows whose ``status`` is not
        ``completed`` are left out.
    min_points : int, default 3
        Fewest distinct model sizes a budget needs.

    Returns
    -------
    pandas.DataFrame
        One row per budget: ``budget, params_opt, tokens_opt, loss_opt, n_points,
        params_min, params_max, curvature, scatter`` (residual standard deviation about
        the parabola), ``has_minimum, inside, usable, flag``.
        ``usable`` is False where the vertex lies outside the sampled sizes or the
        curve has no minimum; those budgets are flagged, warned about and left out
        of :func:`fit_power_laws`.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> n = np.geomspace(1e6, 1e8, 7)
    >>> df = pd.DataFrame({"params": n, "tokens": 1e18 / (6 * n), "budget": 1e18,
    ...                    "loss": 2 + 0.1 * (np.log(n) - np.log(1e7)) ** 2})
    >>> round(float(fit_isoflops(df)["params_opt"].iloc[0]) / 1e7, 6)
    1.0
    """
    if isinstance(min_points, bool) or not isinstance(min_points, int) or min_points < 3:
        raise param_error("min_points", "fit_isoflops", "an integer of at least 3 (a parabola needs 3 points)", min_points)
    frame = prepare_results(results, "fit_isoflops")
    rows = []
    require_sizes(frame, "fit_isoflops", min_points)
    for budget, group in frame.groupby("budget", sort=True):
        x, y, log_t = (np.log(group["params"].to_numpy(float)), group["loss"].to_numpy(float),
                       np.log(group["tokens"].to_numpy(float)))
        rows.append({"budget": float(budget), **budget_optimum(x, y, log_t)})
    optima = Optima(pd.DataFrame(rows, columns=OPTIMA_COLUMNS))
    for row in optima.itertuples():
        if row.flag:
            detail = (f"N_opt={row.params_opt:.3g} vs sampled {row.params_min:.3g}..{row.params_max:.3g}"
                      if row.has_minimum else f"lowest loss at N={row.params_opt:.3g}")
            warn(f"budget {row.budget:.3g}: {row.flag} ({detail}); it is left out of the power-law fits. "
                          f"{_remedy(row)}", FitWarning)
    return optima


def _remedy(row: object) -> str:
    """Which way to move the sizes of a budget whose minimum was not bracketed."""
    if getattr(row, "flag") == FLAT:
        return "Check that these runs recorded their own loss: every size gave the same one."
    with np.errstate(divide="ignore"):  # a vertex far outside can under- or overflow to 0 or inf
        x_opt, lo, hi = (float(np.log(getattr(row, c))) for c in ("params_opt", "params_min", "params_max"))
    if x_opt <= lo + 0.25 * (hi - lo):
        return ("The optimum lies at or below the smallest size: sample smaller models "
                "(in plan_sweep, raise tokens_per_param).")
    if x_opt >= hi - 0.25 * (hi - lo):
        return ("The optimum lies at or above the largest size: sample larger models "
                "(in plan_sweep, lower tokens_per_param).")
    return "The curve is too flat or noisy here: sample a wider range of sizes (size_span) or more points."


def bootstrap_isoflops(results: pd.DataFrame, *, n_resamples: int = 1000, seed: int = 0,
                       targets: Sequence[float] = ()) -> pd.DataFrame:
    """Approach 2 refitted on ``n_resamples`` resamples, as the long estimates frame.

    Each resample draws, within every budget, as many runs as it has, with replacement;
    vertices that leave their sampled sizes are dropped as in the full fit, and a resample
    with fewer than 2 located budgets is skipped. Returns ``approach, resample, quantity,
    target, value`` (see :data:`flops_fit.schema.ESTIMATE_COLUMNS`): ``a`` and ``b``, the
    exponents of N_opt and D_opt, and ``params`` / ``tokens`` at each target, for resamples
    1..n. Their quantiles are percentile intervals, reproducible for a seed.
    """
    func = "bootstrap_isoflops"
    check_number(n_resamples, "n_resamples", func, integer=True, above=1)
    goals = check_budgets(targets, func, "targets") if len(targets) else []
    frame = prepare_results(results, func)
    groups = [(np.log(b), np.log(g["params"].to_numpy(float)), g["loss"].to_numpy(float),
               np.log(g["tokens"].to_numpy(float))) for b, g in frame.groupby("budget")]
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for resample in range(1, n_resamples + 1):
        located = []
        for c, x, y, t in groups:
            pick = rng.integers(0, len(x), len(x))
            if np.unique(x[pick]).size < 3:
                continue
            found = budget_optimum(x[pick], y[pick], t[pick])
            if found["usable"]:
                located.append((c, math.log(found["params_opt"]), math.log(found["tokens_opt"])))
        if len(located) >= 2:
            log_c, log_n, log_d = (np.array(v) for v in zip(*located))
            rows += power_law_rows(APPROACH, resample, log_c, log_n, log_d, goals)
    if not rows:
        raise CannotFitError(str(param_error("results", func, "budgets whose minimum can be located in resamples",
                                             "none", "Add runs per budget.")))
    return pd.DataFrame(rows)


def power_law_rows(approach: str, resample: int, log_c: np.ndarray, log_n: np.ndarray, log_d: np.ndarray,
                   targets: Sequence[float]) -> list[dict[str, object]]:
    """Least-squares power laws of N_opt and D_opt on C, as estimate rows (a, b, and N, D at each target)."""
    a, ln_k = np.polyfit(log_c, log_n, 1)
    b, ln_kd = np.polyfit(log_c, log_d, 1)
    at = np.log(np.asarray(targets, dtype=float))
    return estimate_rows(approach, resample, a, b, targets, np.exp(ln_k + a * at), np.exp(ln_kd + b * at))


APPROACH = "2: IsoFLOP parabolas"
