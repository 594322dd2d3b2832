"""Fits: where loss bottoms out at each budget (Approach 2), and power laws across budgets.

Hoffmann et al. 2022, Sec. 3.2: at each compute budget C, fit a parabola of loss
in log N through the runs of that budget; its vertex is N_opt(C). Then fit
N_opt = k * C**a and D_opt = k' * C**b by least squares in log space, and
L_opt = E + k'' * C**c the same way on ln(L_opt - E), with the floor E chosen to
fit best (E = 0 is the pure power law; a loss with an irreducible part, as every
language-model loss has, needs E > 0 or it extrapolates below that floor).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import optimize, special

from ._checks import param_error, warn

OPTIMA_COLUMNS = [
    "budget", "params_opt", "tokens_opt", "loss_opt", "n_points", "params_min", "params_max",
    "curvature", "scatter", "has_minimum", "inside", "usable", "flag",
]
LAW_QUANTITIES = {"params": "params_opt", "tokens": "tokens_opt", "loss": "loss_opt"}
LAW_COLUMNS = [
    "quantity", "coefficient", "exponent", "exponent_se", "exponent_lo", "exponent_hi", "r2", "n_budgets", "dof",
    "budget_min", "budget_max", "floor", "covariance",
]


class FitWarning(UserWarning):
    """A fit ran, but part of the data cannot support it (named in the message)."""


class TooFewBudgetsError(ValueError):
    """Fewer than two budgets have a located minimum, so no power law can be fitted."""


def snap_budgets(flops: Iterable[float], tolerance: float = 0.1, *, warn_func: str = "snap_budgets") -> np.ndarray:
    """Group noisy FLOP counts into budgets.

    Values within ``tolerance`` decades of their neighbour (after sorting) belong to
    one budget. Its value is the group's geometric mean, rounded to the fewest
    significant figures (1, 2 or 3) that stay within 5 %, 2 % or any distance of it,
    so runs planned for 1e19 FLOPs that logged 9.8e18 snap back to 1e19.

    Examples
    --------
    >>> snap_budgets([0.98e18, 1.03e18, 1.01e19, 0.99e19, 3.3e19]).tolist()
    [1e+18, 1e+18, 1e+19, 1e+19, 3.3e+19]
    """
    values = np.asarray(list(flops), dtype=float)
    logs = np.log10(values)
    order = np.argsort(logs)
    group = np.empty(len(values), dtype=int)
    group[order] = np.concatenate([[0], np.cumsum(np.diff(logs[order]) > tolerance)]) if len(values) else []
    out = np.empty(len(values))
    for g in np.unique(group):
        members = group == g
        out[members] = _round_budget(10 ** logs[members].mean())
        spread = np.ptp(logs[members])
        if spread > 2 * tolerance:  # neighbours chained into one wide group: not one budget
            warn(f"{warn_func}: FLOP counts from {10 ** logs[members].min():.3g} to "
                          f"{10 ** logs[members].max():.3g} ({spread:.2f} decades) were grouped into one budget, "
                          f"{out[members][0]:.3g}. Give each run its planned 'budget' column instead.",
                          FitWarning)
    return out


def _round_budget(centre: float) -> float:
    for digits, rtol in ((1, 0.05), (2, 0.02)):
        rounded = float(f"{centre:.{digits}g}")
        if abs(rounded / centre - 1) <= rtol:
            return rounded
    return float(f"{centre:.3g}")


def prepare_results(results: pd.DataFrame, func: str = "fit_isoflops", *, budgets: bool = True,
                    allow_empty: bool = False) -> pd.DataFrame:
    """Validate a results frame and return the usable rows with a ``budget`` column.

    Needs ``params``, ``tokens``, ``loss`` and ``budget`` or ``flops``. Rows whose
    ``status`` is not ``completed``, or whose numbers are missing or not positive,
    are left out with a :class:`FitWarning` that says how many and why. With
    ``budgets=False`` (fits that do not group runs by budget) no budget is needed. With
    ``allow_empty=True`` a frame with no usable row (a sweep that has just started) gives an
    empty frame instead of an error.
    """
    if not isinstance(results, pd.DataFrame):
        raise param_error("results", func, "a pandas DataFrame", type(results).__name__,
                          "Load a CSV with flops_fit.load_results(path).")
    required = ["params", "tokens", "loss"]
    missing = [c for c in required if c not in results.columns]
    if budgets and "budget" not in results.columns and "flops" not in results.columns:
        missing.append("budget (or flops)")
    if missing:
        raise param_error(
            "results", func, "a DataFrame with columns params, tokens, loss and budget or flops",
            list(results.columns), f"Missing: {missing}. Rename your columns, e.g. "
            "load_results(df, columns={'n_params': 'params'}).",
        )
    frame = results.copy()
    if "status" in frame.columns:
        status = frame["status"].astype("string").str.strip().str.lower()
        bad = (status.notna() & (status != "") & (status != "completed")).to_numpy(dtype=bool)
        unfinished = status.isin(["pending", "running"]).to_numpy(dtype=bool)
        if (bad & ~unfinished).any():  # runs still to come are no surprise while a sweep runs
            counts = status[bad & ~unfinished].value_counts().to_dict()
            warn(f"{func}: left out {int((bad & ~unfinished).sum())} run(s) that did not complete: {counts}.",
                 FitWarning)
        frame = frame.loc[~bad]
    if "run_id" in frame.columns and frame["run_id"].duplicated().any():
        repeated = int(frame["run_id"].duplicated().sum())
        warn(f"{func}: {repeated} run(s) appear more than once (same run_id); kept the last record of each.",
                      FitWarning)
        frame = frame.drop_duplicates("run_id", keep="last")
    for column in [*required, "budget", "flops"]:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    needs_budget = budgets and ("budget" not in frame.columns or frame["budget"].isna().any())
    if needs_budget and "flops" in frame.columns:
        snapped = pd.Series(np.nan, index=frame.index)
        valid = frame["flops"].gt(0) & np.isfinite(frame["flops"])
        if valid.any():
            snapped[valid] = snap_budgets(frame.loc[valid, "flops"], warn_func=func)
        # budgets the user gave win; runs without one get theirs from the FLOPs they spent
        frame["budget"] = frame["budget"].fillna(snapped) if "budget" in frame.columns else snapped
    checked = [*required, "budget"] if budgets else required
    numbers = frame[checked].to_numpy(dtype=float)
    ok = np.isfinite(numbers).all(axis=1) & (numbers > 0).all(axis=1)
    if not ok.all():
        warn(f"{func}: left out {int((~ok).sum())} run(s) with missing, infinite or non-positive "
             f"{'/'.join(checked)}.", FitWarning)
        frame = frame.loc[ok]
    if frame.empty and not allow_empty:
        raise param_error("results", func, "a DataFrame with at least one completed run", "no usable rows")
    return frame.reset_index(drop=True)


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


def _fit_budget(group: pd.DataFrame) -> dict[str, object]:
    """Approach 2 at one budget: parabola of loss in ln N, vertex, and D at the vertex."""
    x = np.log(group["params"].to_numpy(dtype=float))
    y = group["loss"].to_numpy(dtype=float)
    c2, c1, c0, centre = centred_parabola(x, y)
    fitted = np.polyval([c2, c1, c0], x - centre)
    scatter = float(np.sqrt(((y - fitted) ** 2).sum() / (len(y) - 3))) if len(y) > 3 else float("nan")
    lo, hi = x.min(), x.max()
    has_minimum = bool(c2 > 0)
    if has_minimum:
        x_opt = centre - c1 / (2 * c2)
        loss_opt = c0 - c1**2 / (4 * c2)
    else:  # no vertex to speak of: report the lowest run, flagged
        x_opt, loss_opt = x[np.argmin(y)], y.min()
    inside = bool(has_minimum and lo <= x_opt <= hi)
    log_d_opt = log_tokens_at(x, np.log(group["tokens"].to_numpy(dtype=float)), x_opt)
    if inside:
        flag = ""
    elif not has_minimum:
        flag = "no minimum (loss does not curve upwards)"
    else:
        flag = f"vertex outside the sampled sizes ({'below' if x_opt < lo else 'above'} them)"
    return {
        "params_opt": float(np.exp(x_opt)), "tokens_opt": float(np.exp(log_d_opt)),
        "loss_opt": float(loss_opt), "n_points": len(group), "params_min": float(np.exp(lo)),
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
    for budget, group in frame.groupby("budget", sort=True):
        n_sizes = group["params"].nunique()
        if n_sizes < min_points:
            raise param_error(
                "results", "fit_isoflops", f"at least {min_points} distinct model sizes at every budget",
                f"{n_sizes} at budget {budget:.4g}",
                f"Add runs at that budget or drop it: results[results['budget'] != {budget:.6g}].",
            )
        rows.append({"budget": float(budget), **_fit_budget(group)})
    optima = pd.DataFrame(rows, columns=OPTIMA_COLUMNS)
    for row in optima.itertuples():
        if row.flag:
            detail = (f"N_opt={row.params_opt:.3g} vs sampled {row.params_min:.3g}..{row.params_max:.3g}"
                      if row.has_minimum else f"lowest loss at N={row.params_opt:.3g}")
            warn(f"budget {row.budget:.3g}: {row.flag} ({detail}); it is left out of the power-law fits. "
                          f"{_remedy(row)}", FitWarning)
    return optima


def _remedy(row: object) -> str:
    """Which way to move the sizes of a budget whose minimum was not bracketed."""
    x_opt, lo, hi = (math.log(getattr(row, c)) for c in ("params_opt", "params_min", "params_max"))
    if x_opt <= lo + 0.25 * (hi - lo):
        return ("The optimum lies at or below the smallest size: sample smaller models "
                "(in plan_sweep, raise tokens_per_param).")
    if x_opt >= hi - 0.25 * (hi - lo):
        return ("The optimum lies at or above the largest size: sample larger models "
                "(in plan_sweep, lower tokens_per_param).")
    return "The curve is too flat or noisy here: sample a wider range of sizes (size_span) or more points."


def fit_power_laws(optima: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Fit N_opt = k*C**a, D_opt = k'*C**b and L_opt = E + k''*C**c across budgets.

    Least squares of ln y on ln C over the ``usable`` budgets. For the loss, with 4 or
    more budgets, L_opt = E + k*C**c is fitted by least squares on L_opt itself
    (``floor`` holds E; 0 where the pure power law fits as well), and E costs a
    degree of freedom. Intervals are t-intervals from the parameters' covariance.

    Returns
    -------
    pandas.DataFrame
        One row per ``quantity`` (``params``, ``tokens``, ``loss``) with
        ``coefficient, exponent, exponent_se, exponent_lo, exponent_hi, r2,
        n_budgets, dof, budget_min, budget_max, floor`` and ``covariance`` (of the
        fitted parameters, which :func:`predict_from_laws` turns into intervals).

    Examples
    --------
    >>> import pandas as pd
    >>> c = [1e18, 1e19, 1e20]
    >>> optima = pd.DataFrame({"budget": c, "params_opt": [0.1 * x**0.5 for x in c],
    ...                        "tokens_opt": [x / (0.6 * x**0.5) for x in c], "loss_opt": [3.0, 2.5, 2.2]})
    >>> laws = fit_power_laws(optima).set_index("quantity")
    >>> round(float(laws.loc["params", "exponent"]), 6), round(float(laws.loc["tokens", "exponent"]), 6)
    (0.5, 0.5)
    """
    func = "fit_power_laws"
    if not isinstance(optima, pd.DataFrame):
        raise param_error("optima", func, "the DataFrame returned by fit_isoflops()", type(optima).__name__)
    missing = [c for c in ["budget", *LAW_QUANTITIES.values()] if c not in optima.columns]
    if missing:
        raise param_error("optima", func, "the DataFrame returned by fit_isoflops()", list(optima.columns),
                          f"Missing: {missing}.")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise param_error("confidence", func, "a number between 0 and 1 such as 0.95", confidence)
    usable = optima["usable"].astype(bool) if "usable" in optima.columns else pd.Series(True, index=optima.index)
    left_out = optima.loc[~usable, "budget"].tolist()
    if left_out:
        warn(f"{func}: left out budget(s) {', '.join(f'{b:.3g}' for b in left_out)} whose minimum "
                      "could not be located (see the optima's 'flag' column).", FitWarning)
    data = optima.loc[usable]
    columns = ["budget", *LAW_QUANTITIES.values()]
    values = data[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if not (np.isfinite(values) & (values > 0)).all():
        raise param_error("optima", func, f"positive, finite numbers in {columns} of every usable row",
                          "missing, infinite or non-positive values",
                          "Set 'usable' to False for rows you want left out.")
    if data["budget"].duplicated().any():
        raise param_error("optima", func, "one row per budget", data.loc[data["budget"].duplicated(), "budget"].tolist())
    if len(data) < 2:
        raise TooFewBudgetsError(str(param_error(
            "optima", func, "at least 2 budgets with a located minimum", f"{len(data)} usable",
            "Add budgets, or sample sizes that straddle each budget's minimum (each flagged budget's "
            "warning says which way).")))
    log_c = np.log(values[:, 0])
    rows = []
    for i, quantity in enumerate(LAW_QUANTITIES, start=1):
        rows.append({"quantity": quantity, **_fit_law(log_c, values[:, i], confidence, floor=quantity == "loss"),
                     "budget_min": float(values[:, 0].min()), "budget_max": float(values[:, 0].max())})
    laws = pd.DataFrame(rows, columns=LAW_COLUMNS)
    laws.attrs["confidence"] = confidence
    if len(data) == 2:
        warn(f"{func}: only 2 budgets; the power laws pass exactly through them and carry no interval.",
                      FitWarning)
    return laws


def _loss_floor(log_c: np.ndarray, loss: np.ndarray) -> float:
    """The E in [0, min L) for which E + k*C**c fits L_opt best (least squares on L itself).

    Needs 4 budgets: through 3 the three-parameter curve passes exactly, for many E.
    """
    if len(loss) < 4:
        return 0.0

    def sse(floor: float) -> float:
        log_gap = np.log(loss - floor)
        slope, intercept = np.polyfit(log_c, log_gap, 1)
        return float(((loss - floor - np.exp(intercept + slope * log_c)) ** 2).sum())

    top = float(loss.min()) * (1 - 1e-6)
    found = optimize.minimize_scalar(sse, bounds=(0.0, top), method="bounded", options={"xatol": 1e-6 * top})
    best = float(found.x)
    return best if sse(best) < sse(0.0) else 0.0


def _t_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student-t critical value (scipy.special is far lighter to import than scipy.stats)."""
    return float(special.stdtrit(dof, 0.5 + confidence / 2))


def _fit_law(x: np.ndarray, y: np.ndarray, confidence: float, floor: bool) -> dict[str, object]:
    """y = k * C**e (least squares in log space), or y = E + k * C**e (least squares on y) with ``floor``.

    ``covariance`` is the parameters' covariance, s^2 (J'J)^-1, over (ln k, e) or
    (E, ln k, e); predictions take their intervals from it (the delta method).
    """
    n = len(x)
    slope, intercept = np.polyfit(x, np.log(y), 1)
    params = np.array([intercept, slope])
    floor_value = _loss_floor(x, y) if floor else 0.0
    if floor_value > 0:
        slope, intercept = np.polyfit(x, np.log(y - floor_value), 1)
        fit = optimize.least_squares(
            lambda p: p[0] + np.exp(p[1] + p[2] * x) - y, [floor_value, intercept, slope],
            bounds=([0.0, -np.inf, -np.inf], [float(y.min()), np.inf, np.inf]), x_scale="jac")
        params = fit.x
        floor_value = float(params[0])
        resid, jac = fit.fun, fit.jac
        log_gap = np.log(np.maximum(y - floor_value, 1e-300))
    else:
        jac = np.column_stack([np.ones(n), x])
        resid = np.log(y) - jac @ params
        log_gap = np.log(y)
    dof = n - len(params)
    if dof > 0:
        s2 = float(resid @ resid) / dof
        covariance = s2 * np.linalg.pinv(jac.T @ jac)
        exponent_se = float(math.sqrt(max(covariance[-1, -1], 0.0)))
        t = _t_quantile(confidence, dof)
    else:
        covariance = np.full((len(params), len(params)), np.nan)
        exponent_se = t = float("nan")
    ss_tot = float(((log_gap - log_gap.mean()) ** 2).sum())
    ss_res = float(((log_gap - (params[-2] + params[-1] * x)) ** 2).sum())
    slope = float(params[-1])
    return {
        "coefficient": math.exp(params[-2]), "exponent": slope, "exponent_se": exponent_se,
        "exponent_lo": slope - t * exponent_se, "exponent_hi": slope + t * exponent_se,
        "r2": 1 - ss_res / ss_tot if ss_tot > 0 else 1.0, "n_budgets": n, "dof": dof, "floor": floor_value,
        "covariance": tuple(map(tuple, covariance.tolist())),
    }


def predict_from_laws(laws: pd.DataFrame, compute: float, confidence: float | None = None) -> dict[str, float]:
    """N_opt, D_opt and loss at ``compute`` from :func:`fit_power_laws`, with intervals.

    Intervals are confidence intervals of the fitted curve at ``compute`` from the
    parameters' covariance (delta method); they widen away from the sampled budgets.
    """
    if confidence is None:
        confidence = laws.attrs.get("confidence", 0.95)
    out: dict[str, float] = {"target_compute": float(compute)}
    names = {"params": "optimal_params", "tokens": "optimal_tokens", "loss": "expected_loss"}
    x0 = math.log(compute)
    for row in laws.itertuples():
        covariance = np.array(row.covariance, dtype=float)
        power = math.exp(math.log(row.coefficient) + row.exponent * x0)
        t = _t_quantile(confidence, row.dof) if row.dof > 0 else float("nan")
        name = names[row.quantity]
        if row.floor > 0:  # y = E + exp(ln k + e x): interval on y itself
            grad = np.array([1.0, power, x0 * power])
            half = t * math.sqrt(max(float(grad @ covariance @ grad), 0.0))
            centre = row.floor + power
            out[name], out[f"{name}_low"], out[f"{name}_high"] = centre, max(centre - half, 0.0), centre + half
        else:  # ln y = ln k + e x: interval on ln y
            grad = np.array([1.0, x0])
            half = t * math.sqrt(max(float(grad @ covariance @ grad), 0.0))
            out[name], out[f"{name}_low"], out[f"{name}_high"] = power, power * math.exp(-half), power * math.exp(half)
    return out
