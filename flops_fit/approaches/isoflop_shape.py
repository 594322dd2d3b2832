"""The default estimator, ``"vpnls"``: each budget's IsoFLOP curve in the loss law's shape, power laws across them.

1. :func:`~flops_fit.fit_vpnls` fits the law L = E + A/N^alpha + B/D^beta to every run; its
   exponents give the curves their shape (asymmetric whenever alpha != beta).
2. :func:`vpnls_optima`: at each budget, that budget's own E, A, B under those exponents (linear
   least squares in relative error), the minimum of its curve, and the standard error of
   ln N_opt (delta method). The noise behind it is pooled over the budgets' residuals, or measured
   from repeated runs (the plan's ``repeats``) where that is larger.
3. :func:`vpnls_laws`: ln N_opt and ln D_opt regressed on ln C; the budgets' standard errors
   give the line's covariance. Where the budgets scatter about it more than those errors allow
   (an F-test at 5 %), the covariance grows by that excess and the t-quantile takes n_budgets - 2
   degrees of freedom: the interval widens rather than pretends. The loss law is
   :func:`fit_power_laws`'.

Each budget's optimum rests on its own runs, so a law that holds only locally still places it
well, and the power law across budgets is an honest regression (its scatter shows). With the
true shape and no noise the optima are exact, so is the power law (``bench_bias.py``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import _deps
from .._checks import check_budgets, check_number, param_error, warn
from ..errors import FitWarning, TooFewBudgetsError
from ..frames import prepare_results
from ..schema import LAW_COLUMNS, OPTIMA_COLUMNS
from .estimates import estimate_rows
from .frontier import FlopsCurve, optimal_log_params
from .laws import Optima, PowerLaws, fit_power_laws, t_quantile
from .vpnls import APPROACH, check_budgets_for_fit, curve_problem, fit_with_arrays

SHAPED_OPTIMA_COLUMNS = [*OPTIMA_COLUMNS, "log_params_se", "se_dof"]
_EXCESS_P = 0.05  # budgets that scatter more than this F-test allows widen the interval


def _design(x: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return np.column_stack([np.ones_like(x), np.exp(-alpha * x), np.exp(-beta * y)])


def _budget_curve(x: np.ndarray, y: np.ndarray, loss: np.ndarray, alpha: float, beta: float, budget: float,
                  flops: FlopsCurve) -> dict[str, float]:
    """One budget in the law's shape: its E, A, B (>= 0), the minimum, and what the error of ln N_opt scales with."""
    design = _design(x, y, alpha, beta) / loss[:, None]
    coef, _ = _deps.scipy_optimize().nnls(design, np.ones_like(loss))
    resid = design @ coef - 1.0
    E, A, B = (float(c) for c in coef)
    problem = curve_problem(x, loss)  # flat or a straight line: whatever the law's shape says, no minimum shows
    out = {"E": E, "A": A, "B": B, "rss": float(resid @ resid), "n": len(x),
           "has_minimum": A > 0 and B > 0 and not problem, "problem": problem,
           "x_opt": float(x[np.argmin(loss)]), "spread": float("nan"), "inside": False,
           "information": design.T @ design, "grad": np.zeros(3)}
    if out["has_minimum"]:
        out["x_opt"] = optimal_log_params(A, alpha, B, beta, budget, flops)
        grad = np.zeros(3)
        for i in (1, 2):  # ln N_opt depends on A and B only
            step = 1e-6 * coef[i]
            up, down = coef.copy(), coef.copy()
            up[i], down[i] = coef[i] + step, coef[i] - step
            grad[i] = (optimal_log_params(up[1], alpha, up[2], beta, budget, flops)
                       - optimal_log_params(down[1], alpha, down[2], beta, budget, flops)) / (2 * step)
        out["grad"] = grad
        out["spread"] = float(grad @ np.linalg.pinv(design.T @ design) @ grad)  # times sigma^2: Var ln N_opt
        out["inside"] = bool(x.min() <= out["x_opt"] <= x.max())
    return out


def _curves(frame: pd.DataFrame, alpha: float, beta: float, flops: FlopsCurve) -> list[tuple[float, pd.DataFrame,
                                                                                                dict[str, float]]]:
    found = []
    for budget, group in frame.groupby("budget", sort=True):
        x, y, loss = (np.log(group["params"].to_numpy(float)), np.log(group["tokens"].to_numpy(float)),
                      group["loss"].to_numpy(float))
        found.append((float(budget), group, _budget_curve(x, y, loss, alpha, beta, float(budget), flops)))
    return found


def budget_curves(fit: pd.DataFrame, results: pd.DataFrame) -> list[dict[str, object]]:
    """Each budget's curve in the law's shape with the exponents of ``fit``, as a design sees it: ``budget, E, A,
    B, x_opt`` (ln N_opt), ``inside``, ``has_minimum``, ``information`` (the 3x3 matrix D'D of the budget's rows
    [1, N^-alpha, D^-beta] / loss, in relative error) and ``grad`` (of ln N_opt in E, A, B), so that
    Var ln N_opt = noise variance * grad' (D'D)^-1 grad; and ``noise``, the relative noise variance those use."""
    row = fit.iloc[0]
    frame = prepare_results(results, "budget_curves")
    curves = _curves(frame, float(row["alpha"]), float(row["beta"]), FlopsCurve.from_results(frame))
    var, _ = _noise(curves, row)
    return [{"budget": budget, **c, "noise": var} for budget, _, c in curves]


def design_row(x: float, y: float, alpha: float, beta: float, curve: dict[str, object]) -> np.ndarray:
    """The row a run at ln N = ``x``, ln D = ``y`` would add to a budget's ``information`` (see
    :func:`budget_curves`), scaled by the loss the curve predicts there."""
    row = _design(np.array([x]), np.array([y]), alpha, beta)[0]
    return row / float(row @ [curve["E"], curve["A"], curve["B"]])


def _noise(curves: list[tuple[float, pd.DataFrame, dict[str, float]]], fit: pd.Series) -> tuple[float, int]:
    """The relative noise variance the errors use, and its degrees of freedom: the budgets' residuals pooled,
    or the repeats' run-to-run noise where that is larger."""
    rss = sum(c["rss"] for _, _, c in curves)
    dof = sum(c["n"] for _, _, c in curves) - 3 * len(curves) - 2
    var = rss / dof if dof > 0 else float("nan")
    if fit["noise_dof"] > 0 and not fit["noise_sd"] ** 2 <= var:
        return float(fit["noise_sd"] ** 2), int(fit["noise_dof"])
    return var, max(dof, 0)


def vpnls_optima(fit: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Each budget's optimum from its own runs, in the law's shape with the exponents of ``fit`` (:func:`fit_vpnls`).

    Returns the frame of :func:`fit_isoflops` (``curvature`` is half the second derivative of loss
    in ln N at the optimum, ``scatter`` the residual standard deviation of loss about the curve),
    plus ``log_params_se``, the standard error of ln N_opt, and ``se_dof``, the degrees of freedom
    of the noise behind it. A budget whose optimum lies outside its sampled sizes is flagged and
    not ``usable``; :func:`vpnls_laws` fits the power laws across the usable ones.
    """
    row = fit.iloc[0]
    alpha, beta = float(row["alpha"]), float(row["beta"])
    frame = prepare_results(results, "vpnls_optima")
    flops = FlopsCurve.from_results(frame)
    curves = _curves(frame, alpha, beta, flops)
    var, dof = _noise(curves, row)
    rows = []
    for budget, group, c in curves:
        x, loss = np.log(group["params"].to_numpy(float)), group["loss"].to_numpy(float)
        lo, hi, x_opt = float(x.min()), float(x.max()), c["x_opt"]
        fitted = _design(x, np.log(group["tokens"].to_numpy(float)), alpha, beta) @ [c["E"], c["A"], c["B"]]
        scatter = float(np.sqrt(((loss - fitted) ** 2).sum() / (len(x) - 3))) if len(x) > 3 else float("nan")
        if c["has_minimum"]:
            near = curve_loss(np.array([x_opt - 0.01, x_opt, x_opt + 0.01]), c, alpha, beta, budget, flops)
            loss_opt, curvature = float(near[1]), float((near[0] - 2 * near[1] + near[2]) / 2e-4)
        else:
            loss_opt, curvature = float(loss.min()), float("nan")
        inside = c["inside"]
        flag = ("" if inside else (c["problem"] or "no minimum (loss does not curve upwards)") if not c["has_minimum"]
                else f"optimum outside the sampled sizes ({'below' if x_opt < lo else 'above'} them)")
        rows.append({"budget": budget, "params_opt": math.exp(x_opt),
                     "tokens_opt": budget / math.exp(float(flops(np.array([x_opt]))[0])), "loss_opt": loss_opt,
                     "n_points": len(x), "params_min": math.exp(lo), "params_max": math.exp(hi),
                     "curvature": curvature, "scatter": scatter, "has_minimum": bool(c["has_minimum"]),
                     "inside": inside, "usable": inside, "flag": flag,
                     "log_params_se": math.sqrt(var * c["spread"]) if c["has_minimum"] else float("nan"),
                     "se_dof": dof})
    return Optima(pd.DataFrame(rows, columns=SHAPED_OPTIMA_COLUMNS))


def _law_across(log_c: np.ndarray, y: np.ndarray, se: np.ndarray, se_dof: int,
                confidence: float) -> dict[str, object]:
    """y = ln k + e ln C by least squares, its covariance from each point's standard error ``se``, widened where
    the points scatter about the line more than those errors allow.

    Unweighted: the errors of minima near the edge of their sizes are the least certain, and weighting by
    them made the median error at 100x worse (``bench_bias.py``); they enter through the covariance,
    (X'X)^-1 X' diag(se^2) X (X'X)^-1.
    """
    design = np.column_stack([np.ones_like(log_c), log_c])
    bread = np.linalg.pinv(design.T @ design)
    params = bread @ design.T @ y
    covariance = bread @ (design.T * se**2) @ design @ bread
    weights = 1.0 / np.maximum(se, 1e-12) ** 2
    resid = y - design @ params
    excess_dof, dof = len(y) - 2, se_dof
    if excess_dof > 0 and se_dof > 0:
        ratio = float((weights * resid**2).sum()) / excess_dof
        if ratio > 1 and _deps.scipy_special().fdtrc(excess_dof, se_dof, ratio) < _EXCESS_P:
            covariance, dof = covariance * ratio, excess_dof
    t = t_quantile(confidence, dof) if dof > 0 else float("nan")
    se_e = math.sqrt(max(covariance[1, 1], 0.0))
    total = float(((y - y.mean()) ** 2).sum())
    return {"coefficient": math.exp(params[0]), "exponent": float(params[1]), "exponent_se": se_e,
            "exponent_lo": params[1] - t * se_e, "exponent_hi": params[1] + t * se_e,
            "r2": 1 - float(resid @ resid) / total if total > 0 else 1.0, "dof": dof,
            "covariance": tuple(map(tuple, covariance.tolist()))}


def vpnls_laws(optima: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Power laws N_opt = k C^a, D_opt = k' C^b (intervals from each budget's error) and L_opt = E + k'' C^c.

    ``optima`` is :func:`vpnls_optima`'s frame; the result has :func:`fit_power_laws`' columns, so
    :func:`predict_from_laws` reads it. Only 2 usable budgets still give an interval here: each
    optimum's error is known from its runs (with too few runs for that, 3 sizes a budget, the
    lines are :func:`fit_power_laws`' unweighted ones).
    """
    func = "vpnls_laws"
    if not isinstance(optima, pd.DataFrame) or "log_params_se" not in optima.columns:
        raise param_error("optima", func, "the DataFrame returned by vpnls_optima()",
                          type(optima).__name__ if not isinstance(optima, pd.DataFrame) else list(optima.columns),
                          "For a parabola's optima (fit_isoflops) use fit_power_laws.")
    usable = optima.loc[optima["usable"].astype(bool)]
    if len(usable) < 2:
        raise TooFewBudgetsError(str(param_error(
            "optima", func, "at least 2 budgets with a located minimum", f"{len(usable)} usable",
            "Add budgets, or sample sizes that straddle each budget's minimum.")))
    with warnings.catch_warnings():  # its warnings are about unweighted lines; ours follow
        warnings.simplefilter("ignore", FitWarning)
        laws = fit_power_laws(optima, confidence=confidence).set_index("quantity")
    left_out = optima.loc[~optima["usable"].astype(bool), "budget"].tolist()
    if left_out:
        warn(f"{func}: left out budget(s) {', '.join(f'{b:.3g}' for b in left_out)} whose minimum "
             "could not be located (see the optima's 'flag' column).", FitWarning)
    log_c = np.log(usable["budget"].to_numpy(float))
    se, se_dof = usable["log_params_se"].to_numpy(float), int(usable["se_dof"].iloc[0])
    if not (np.isfinite(se).all() and se_dof > 0):  # too few runs to know each optimum's error: unweighted
        laws = PowerLaws(laws.reset_index()[LAW_COLUMNS])
        _warn_without_interval(func, laws)
        return laws
    for quantity, column in (("params", "params_opt"), ("tokens", "tokens_opt")):
        found = _law_across(log_c, np.log(usable[column].to_numpy(float)), se, se_dof, confidence)
        for key, value in found.items():
            laws.at[quantity, key] = value
    laws = PowerLaws(laws.reset_index()[LAW_COLUMNS])
    _warn_without_interval(func, laws)
    return laws


def _warn_without_interval(func: str, laws: pd.DataFrame) -> None:
    bare = laws.loc[laws["dof"] <= 0, "quantity"].tolist()
    if bare:
        warn(f"{func}: the {' and '.join(bare)} law(s) have no degrees of freedom left (too few budgets or runs), "
             "so they carry no interval. Add budgets, or sizes per budget.", FitWarning)


def curve_loss(x: np.ndarray, coef: dict[str, float], alpha: float, beta: float, budget: float,
               flops: FlopsCurve) -> np.ndarray:
    """Loss along the IsoFLOP curve of ``budget`` at ln N = x, for that budget's ``coef`` (E, A, B)."""
    log_d = math.log(budget) - flops(x)
    return coef["E"] + coef["A"] * np.exp(-alpha * x) + coef["B"] * np.exp(-beta * log_d)


def vpnls_curves(fit: pd.DataFrame, results: pd.DataFrame, points: int = 60, margin: float = 0.04) -> pd.DataFrame:
    """Each budget's fitted curve over its sampled sizes (``budget, params, loss``), for the IsoFLOP figure."""
    row = fit.iloc[0]
    alpha, beta = float(row["alpha"]), float(row["beta"])
    frame = prepare_results(results, "vpnls_curves")
    flops = FlopsCurve.from_results(frame)
    parts = []
    for budget, group, c in _curves(frame, alpha, beta, flops):
        x = np.log(group["params"].to_numpy(float))
        pad = margin * (x.max() - x.min())
        grid = np.linspace(x.min() - pad, x.max() + pad, points)
        parts.append(pd.DataFrame({"budget": budget, "params": np.exp(grid),
                                   "loss": curve_loss(grid, c, alpha, beta, budget, flops)}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["budget", "params", "loss"])


def bootstrap_vpnls(results: pd.DataFrame, *, n_resamples: int = 1000, seed: int = 0,
                    targets: Sequence[float] = ()) -> pd.DataFrame:
    """The default estimator refitted on ``n_resamples`` resamples of the runs (within each budget, with replacement).

    Returns the long estimates frame (``approach, resample, quantity, target, value``): ``a``, ``b``
    and N_opt / D_opt at each target, for resamples 1..n; a resample whose budgets keep fewer than
    3 distinct sizes, or that locates fewer than 2 minima, is skipped. Percentiles are the intervals.
    """
    func = "bootstrap_vpnls"
    check_number(n_resamples, "n_resamples", func, integer=True, above=1)
    goals = check_budgets(targets, func, "targets") if len(targets) else []
    frame = prepare_results(results, func)
    check_budgets_for_fit(frame, func, 3)
    frame = frame.reset_index(drop=True)
    flops = FlopsCurve.from_results(frame)
    groups = [(float(b), g.index.to_numpy()) for b, g in frame.groupby("budget", sort=True)]
    n, d, loss = (frame[c].to_numpy(float) for c in ("params", "tokens", "loss"))
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for resample in range(1, n_resamples + 1):
        picks = [(budget, rng.choice(index, len(index))) for budget, index in groups]
        if any(np.unique(n[pick]).size < 3 for _, pick in picks):
            continue
        every = np.concatenate([pick for _, pick in picks])
        alpha, beta = fit_with_arrays(np.log(n[every]), np.log(d[every]), loss[every])[3:]
        located = []
        for budget, pick in picks:
            c = _budget_curve(np.log(n[pick]), np.log(d[pick]), loss[pick], alpha, beta, budget, flops)
            if c["inside"]:
                located.append((budget, c["x_opt"], c["spread"]))
        if len(located) < 2:
            continue
        log_c, x_opt, spread = (np.array(v) for v in zip(*located))
        log_c = np.log(log_c)
        log_d = log_c - flops(x_opt)
        at = np.log(np.asarray(goals, dtype=float)) if goals else np.array([])
        fits = [_law_across(log_c, y, np.sqrt(spread), 0, 0.95) for y in (x_opt, log_d)]
        (ln_k, a), (ln_kd, b) = ((math.log(f["coefficient"]), f["exponent"]) for f in fits)
        rows += estimate_rows(APPROACH, resample, a, b, goals, np.exp(ln_k + a * at), np.exp(ln_kd + b * at))
    if not rows:
        raise param_error("results", func, "budgets whose minimum can be located in resamples", "none",
                          "Add runs per budget.")
    return pd.DataFrame(rows)

