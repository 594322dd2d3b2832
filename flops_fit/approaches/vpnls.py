"""The shape of the IsoFLOP curves: the loss law L = E + A/N^alpha + B/D^beta fitted to every run (VPNLS).

An IsoFLOP curve is not a parabola in ln N. Under this law with D = C / flops_per_token(N) the
curve at budget C is E + A N^-alpha + B (C/kN)^-beta: asymmetric whenever alpha != beta, so a
parabola's vertex drifts from the true minimum as the sampled sizes widen or sit off-centre
(``benchmarks/bench_bias.py``). The default estimator (:mod:`.isoflop_shape`) fits each budget
in the law's shape, with the exponents fitted here.

Variable projection (VPNLS, as in Open-Athena's scaling-law-analysis): for fixed (alpha, beta)
the law is linear in (E, A, B), so a grid of exponent pairs is scored by linear least squares in
relative error, and the best seeds a Levenberg-Marquardt fit of all five constants to ln L
(least squares: run-to-run noise multiplies the loss). Runs repeated at one size (the plan's
``repeats``) measure that noise directly, and an F-test says whether the runs scatter about the
law more than that.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import _deps
from .._checks import param_error, warn
from ..errors import CannotFitError, FitWarning, TooFewBudgetsError
from ..frames import prepare_results, require_sizes

APPROACH = "2b: IsoFLOP curves in the law's shape (vpnls)"
FIT_COLUMNS = ["E", "A", "B", "alpha", "beta", "a", "b", "G", "r2", "residual_sd", "noise_sd", "noise_dof",
               "lack_of_fit_p", "sigma", "dof", "n_points", "n_budgets", "budget_min", "budget_max", "covariance"]
_GRID = np.linspace(0.05, 1.5, 30)  # exponents seen in practice lie well inside this range
_EXACT = 1e-9  # relative size below which a change in loss, or a curvature, is rounding, not data
FLAT = "flat: the loss does not change across sizes, so it has no minimum"


def curve_problem(x: np.ndarray, loss: np.ndarray) -> str:
    """Why one budget's runs (ln N = ``x``, ``loss``) cannot show a minimum whatever is fitted to them, or "".

    Only exact degeneracies are named here: losses that are all equal (``FLAT``), and losses exactly
    linear in ln N (no curvature at all, so no vertex: monotone). Noisy curves are judged by the fits.

    Examples
    --------
    >>> x = np.log([1e6, 1e7, 1e8])
    >>> curve_problem(x, np.array([3.0, 3.0, 3.0]))
    'flat: the loss does not change across sizes, so it has no minimum'
    >>> curve_problem(x, 3.0 - 0.1 * x)[:10], curve_problem(x, np.array([3.1, 3.0, 3.1]))
    ('no minimum', '')
    """
    spread = float(np.ptp(loss)) if len(loss) else 0.0
    if spread <= _EXACT * float(np.abs(loss).max(initial=0.0)):
        return FLAT
    if np.unique(x).size < 3:
        return ""
    c2, c1, _ = np.polyfit(x - x.mean(), loss, 2)
    if abs(c2) * (np.ptp(x) / 2) ** 2 <= _EXACT * spread:  # the quadratic term is rounding: a straight line
        way = "falls" if c1 < 0 else "rises"
        return f"no minimum (monotone: the loss {way} in a straight line in ln N across the sampled sizes)"
    return ""


def law_g(alpha: float, A: float, beta: float, B: float) -> float:
    """G = (alpha A / (beta B))^(1 / (alpha + beta)), computed in logs (inf rather than an overflow)."""
    with np.errstate(over="ignore", divide="ignore"):
        return float(np.exp((np.log(alpha * A) - np.log(beta * B)) / (alpha + beta)))


def check_identifiable(n: np.ndarray, d: np.ndarray, loss: np.ndarray, func: str) -> None:
    """Refuse runs that cannot determine L = E + A/N^alpha + B/D^beta, saying what is missing.

    The N term (A, alpha) needs 3 or more distinct sizes N, the D term (B, beta) 3 or more distinct
    token counts D, the five constants 5 or more distinct (N, D) points, and the loss must vary.
    Raises :class:`~flops_fit.errors.CannotFitError` naming the first that fails.

    Examples
    --------
    >>> n = np.geomspace(1e7, 1e9, 6)
    >>> check_identifiable(n, np.full(6, 1e10), 2 + 1 / n**0.3, "fit_parametric")
    Traceback (most recent call last):
    ...
    flops_fit.errors.CannotFitError: The 'results' parameter of fit_parametric must be ...
    """
    problems = []
    for values, column, letter, term in ((n, "params", "N", "A and alpha"), (d, "tokens", "D", "B and beta")):
        distinct = np.unique(values)
        if distinct.size == 1:
            problems.append(f"all runs have the same {column} {letter} = {distinct[0]:.4g}, so {term} cannot be "
                            f"determined (nor E apart from them); vary {letter}")
        elif distinct.size == 2:
            problems.append(f"the runs have only 2 distinct {column} {letter} ({distinct[0]:.4g}, "
                            f"{distinct[1]:.4g}), so {term} and E cannot all be determined; use 3 or more")
    points = len(np.unique(np.column_stack([n, d]), axis=0))
    if not problems and points < 5:
        problems.append(f"the {len(n)} runs sit at only {points} distinct (params, tokens) points, fewer than the "
                        "law's 5 constants; repeats of a run add no point")
    if not problems and float(np.ptp(loss)) <= _EXACT * float(np.abs(loss).max()):
        problems.append(f"every run has the same loss ({loss[0]:.6g}), so the loss shows no dependence on N or D")
    if problems:
        said = "; ".join(problems)
        raise CannotFitError(str(param_error(
            "results", func, "runs that vary N and D enough to determine the law's 5 constants",
            f"{len(n)} runs", said[0].upper() + said[1:] + ". Sample several budgets with several sizes each "
            "(plan_sweep does).")))


def check_terms(n: np.ndarray, d: np.ndarray, loss: np.ndarray, theta: tuple[float, float, float, float, float],
                func: str) -> None:
    """Refuse a fitted law whose N or D term vanishes on every run: its exponent, and so a and b, are then
    made up. ``theta`` is (E, A, B, alpha, beta)."""
    _, A, B, alpha, beta = theta
    for term, values, scale, power, column, names in ((A * n ** -alpha, n, A, alpha, "params", "A and alpha"),
                                                      (B * d ** -beta, d, B, beta, "tokens", "B and beta")):
        if float(np.max(term / loss)) < 1e-6:
            raise CannotFitError(str(param_error(
                "results", func, f"runs whose loss depends on {column}", f"a fitted term {scale:.3g}/{column}^"
                f"{power:.3g} below 1e-6 of every loss", f"The runs show no effect of {column}, so {names} (and the "
                "exponents a, b) cannot be determined. Sample a wider range of sizes and budgets.")))


def _start(x: np.ndarray, y: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """The best (E, ln A, ln B, alpha, beta) on the exponent grid, each scored by linear least squares.

    All grid points are solved at once through their 3x3 normal equations (relative errors:
    rows divided by L); a point whose E, A or B comes out negative is left out, and if every
    one is, non-negative least squares decides.
    """
    inv = 1.0 / loss
    u = np.exp(-np.outer(_GRID, x)) * inv  # (grid, n)
    v = np.exp(-np.outer(_GRID, y)) * inv
    ai, bj = np.meshgrid(np.arange(len(_GRID)), np.arange(len(_GRID)), indexing="ij")
    ai, bj = ai.ravel(), bj.ravel()
    cols = np.stack([np.broadcast_to(inv, (len(ai), len(x))), u[ai], v[bj]], axis=1)  # (pairs, 3, n)
    gram = np.einsum("pin,pjn->pij", cols, cols) + 1e-300 * np.eye(3)
    rhs = cols.sum(axis=2)  # target: L / L = 1
    with np.errstate(all="ignore"):
        coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
        resid = ((cols * coef[..., None]).sum(axis=1) - 1.0) ** 2
    score = np.where((coef > 0).all(axis=1) & np.isfinite(coef).all(axis=1), resid.sum(axis=1), np.inf)
    best = int(np.argmin(score))
    if not np.isfinite(score[best]):
        nnls = _deps.scipy_optimize().nnls
        fits = [nnls(cols[p].T, np.ones_like(inv)) for p in range(len(ai))]
        best = int(np.argmin([f[1] for f in fits]))
        coef[best] = fits[best][0]
    e, a_, b_ = np.maximum(coef[best], 1e-12)
    return np.array([e, math.log(a_), math.log(b_), _GRID[ai[best]], _GRID[bj[best]]])


def _residuals(p: np.ndarray, x: np.ndarray, y: np.ndarray, log_loss: np.ndarray) -> np.ndarray:
    pred = p[0] + np.exp(p[1] - p[3] * x) + np.exp(p[2] - p[4] * y)
    return np.log(np.maximum(pred, 1e-300)) - log_loss


def _jacobian(p: np.ndarray, x: np.ndarray, y: np.ndarray, log_loss: np.ndarray) -> np.ndarray:
    t1, t2 = np.exp(p[1] - p[3] * x), np.exp(p[2] - p[4] * y)
    pred = p[0] + t1 + t2
    return np.column_stack([np.ones_like(x), t1, t2, -x * t1, -y * t2]) / pred[:, None]


def _least_squares(x: np.ndarray, y: np.ndarray, loss: np.ndarray) -> object:
    """Levenberg-Marquardt from the grid's best point; bounded (E >= 0, exponents > 0) if it strays."""
    optimize = _deps.scipy_optimize()
    args = (x, y, np.log(loss))
    start = _start(x, y, loss)
    fit = optimize.least_squares(_residuals, start, jac=_jacobian, args=args, method="lm",
                                 xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=2000)
    if fit.x[0] < 0 or fit.x[3] <= 0 or fit.x[4] <= 0:
        low, high = np.array([0, -np.inf, -np.inf, 1e-3, 1e-3]), np.array([loss.min(), np.inf, np.inf, 5, 5])
        inside = np.clip(start, low + 1e-9, np.where(np.isfinite(high), high * (1 - 1e-9), high))  # highs are > 0
        fit = optimize.least_squares(_residuals, inside, jac=_jacobian, args=args, method="trf", bounds=(low, high),
                                     xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=2000)
    return fit


def fit_with_arrays(x: np.ndarray, y: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """(E, ln A, ln B, alpha, beta) fitted to ln N = x, ln D = y and ``loss`` (no checks: for resampling)."""
    return _least_squares(x, y, loss).x


def _repeat_noise(frame: pd.DataFrame) -> tuple[float, int]:
    """Run-to-run variance of ln L from runs repeated at one (budget, size), pooled, and its degrees of freedom."""
    log_loss = np.log(frame["loss"].to_numpy(float))
    groups = pd.Series(log_loss).groupby([frame["budget"].to_numpy(float), frame["params"].to_numpy(float)])
    counts = groups.count()
    dof = int((counts - 1).sum())
    if dof == 0:
        return float("nan"), 0
    return float(groups.var(ddof=1).mul(counts - 1).sum() / dof), dof


def check_budgets_for_fit(frame: pd.DataFrame, func: str, min_points: int) -> None:
    """Every budget needs ``min_points`` distinct sizes (its minimum must show), and the law 2 budgets."""
    require_sizes(frame, func, min_points)
    if frame["budget"].nunique() < 2:
        raise TooFewBudgetsError(str(param_error(
            "results", func, "runs at 2 or more compute budgets (one budget cannot separate the N and D terms)",
            f"{frame['budget'].nunique()} budget", "Add budgets.")))


def _without_shapeless_budgets(frame: pd.DataFrame, func: str) -> pd.DataFrame:
    """The runs without budgets whose losses are all equal or exactly linear in ln N (:func:`curve_problem`):
    no law's curve passes through them, so they would only bend its exponents. Said so, by budget."""
    found = {}
    for budget, group in frame.groupby("budget", sort=True):
        problem = curve_problem(np.log(group["params"].to_numpy(float)), group["loss"].to_numpy(float))
        if problem and group["params"].nunique() > 1:
            found[float(budget)] = problem
    if found:
        said = "; ".join(f"budget {b:.3g}: {problem}" for b, problem in found.items())
        warn(f"{func}: left out of the law's fit {said}. Check that those runs recorded their own loss.",
             FitWarning)
    return frame[~frame["budget"].isin(list(found))].reset_index(drop=True)


def fit_vpnls(results: pd.DataFrame, *, min_points: int = 3) -> pd.DataFrame:
    """Fit L = E + A/N^alpha + B/D^beta to every run at once by variable projection (the default estimator).

    Parameters
    ----------
    results : pandas.DataFrame
        Runs with ``params``, ``tokens``, ``loss`` and ``budget`` or ``flops`` (see
        :func:`load_results`); rows whose ``status`` is not ``completed`` are left out.
    min_points : int, default 3
        Fewest distinct model sizes a budget needs.

    Returns
    -------
    pandas.DataFrame
        One row: the constants ``E, A, B, alpha, beta``; ``a = beta/(alpha+beta)`` and
        ``b = alpha/(alpha+beta)`` (the exponents of N_opt and D_opt under C = kND) and ``G``;
        ``r2`` of ln L; ``residual_sd`` (of ln L about the fit, about the relative noise);
        ``noise_sd`` and ``noise_dof``, the run-to-run noise measured from repeated runs (NaN
        and 0 without repeats), and ``lack_of_fit_p``, the p-value of the scatter about the law
        being no larger than that noise (F-test); ``sigma`` and ``dof``, the noise the intervals
        use (the larger estimate) and its degrees of freedom; ``covariance`` of
        (E, ln A, ln B, alpha, beta). :func:`vpnls_laws` and :func:`vpnls_optima` turn it into
        power laws and per-budget optima.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> n = np.concatenate([np.geomspace(2e7, 2e9, 9) * s for s in (1, 3.2, 10)])
    >>> c = np.repeat([1e19, 1e20, 1e21], 9)
    >>> runs = pd.DataFrame({"params": n, "tokens": c / (6 * n), "budget": c})
    >>> runs["loss"] = 1.69 + 406.4 / runs["params"] ** 0.34 + 410.7 / runs["tokens"] ** 0.28
    >>> fit = fit_vpnls(runs).iloc[0]
    >>> round(float(fit["alpha"]), 4), round(float(fit["beta"]), 4), round(float(fit["a"]), 4)
    (0.34, 0.28, 0.4516)
    """
    func = "fit_vpnls"
    if isinstance(min_points, bool) or not isinstance(min_points, int) or min_points < 3:
        raise param_error("min_points", func, "an integer of at least 3 (a curve's minimum needs 3 sizes)",
                          min_points)
    frame = _without_shapeless_budgets(prepare_results(results, func), func)
    check_budgets_for_fit(frame, func, min_points)
    n, d, loss = (frame[c].to_numpy(float) for c in ("params", "tokens", "loss"))
    x, y = np.log(n), np.log(d)
    if len(x) < 6:
        raise param_error("results", func, "at least 6 runs (the law has 5 constants)", len(x), "Add runs.")
    check_identifiable(n, d, loss, func)
    fit = _least_squares(x, y, loss)
    check_terms(n, d, loss, (fit.x[0], math.exp(fit.x[1]), math.exp(fit.x[2]), fit.x[3], fit.x[4]), func)
    p, resid, jac = fit.x, fit.fun, fit.jac
    count = len(x)
    dof = count - 5
    residual_var = float(resid @ resid) / dof
    noise_var, noise_dof = _repeat_noise(frame)
    lack_p = float("nan")
    if noise_dof and dof > noise_dof:
        lack = (float(resid @ resid) - noise_var * noise_dof) / (dof - noise_dof)
        if noise_var > 0:
            lack_p = float(_deps.scipy_special().fdtrc(dof - noise_dof, noise_dof, max(lack, 0.0) / noise_var))
        elif lack > 1e-24:  # repeats agree exactly, yet the runs leave the law: any scatter is lack of fit
            lack_p = 0.0
    var, used_dof = (noise_var, noise_dof) if noise_dof and noise_var > residual_var else (residual_var, dof)
    covariance = var * np.linalg.pinv(jac.T @ jac)
    log_loss = np.log(loss)
    alpha, beta = float(p[3]), float(p[4])
    A, B = math.exp(p[1]), math.exp(p[2])
    row = {"E": float(p[0]), "A": A, "B": B, "alpha": alpha, "beta": beta, "a": beta / (alpha + beta),
           "b": alpha / (alpha + beta), "G": law_g(alpha, A, beta, B),
           "r2": 1 - float(resid @ resid) / float(((log_loss - log_loss.mean()) ** 2).sum()),
           "residual_sd": math.sqrt(residual_var), "noise_sd": math.sqrt(noise_var) if noise_dof else float("nan"),
           "noise_dof": noise_dof, "lack_of_fit_p": lack_p, "sigma": math.sqrt(var), "dof": used_dof,
           "n_points": count, "n_budgets": int(frame["budget"].nunique()),
           "budget_min": float(frame["budget"].min()), "budget_max": float(frame["budget"].max()),
           "covariance": tuple(map(tuple, covariance.tolist()))}
    return pd.DataFrame([row], columns=FIT_COLUMNS)
