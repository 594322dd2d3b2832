"""Approach 3: fit L(N, D) = E + A / N**alpha + B / D**beta to every run at once.

Hoffmann et al. 2022 (Sec. 3.3, App. D.2) minimise the Huber loss (delta = 1e-3) of
log L, written as LSE(a - alpha log N, b - beta log D, e) with A = e^a, B = e^b,
E = e^e, from a grid of L-BFGS starts. That objective has many poor local minima;
Besiroglu et al. 2024 needed 4,500 starts to reproduce it. Here the starts are found
by a well-conditioned search instead: for each (alpha, beta) on a grid the model is
linear in (E, A, B), so non-negative least squares gives them exactly; the best few
grid points then seed L-BFGS on the Huber objective, with its analytic gradient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import _deps
from .._format import ReadableFrame, exponent, loss, number
from .._checks import check_number, param_error
from ..errors import CannotFitError
from ..frames import prepare_results
from .estimates import estimate_rows
from .frontier import FlopsCurve, parametric_frontier
from .vpnls import check_identifiable, check_terms, law_g

APPROACH = "3: parametric fit"
PARAMETRIC_COLUMNS = ["E", "A", "B", "alpha", "beta", "a", "b", "G", "objective", "n_points"]
_ALPHAS = np.linspace(0.05, 1.2, 24)  # exponents seen in practice lie well inside this range
_BETAS = np.linspace(0.05, 1.2, 24)


class ParametricLaw(ReadableFrame):
    """:func:`fit_parametric`'s one-row law (a DataFrame), shown formatted with its columns explained."""

    _title = "Parametric law L = E + A/N^alpha + B/D^beta (Approach 3)"
    _legend = {
        "E": "the irreducible loss",
        "A, alpha": "the parameter term A/N^alpha",
        "B, beta": "the data term B/D^beta",
        "a, b": "N_opt ∝ C^a, D_opt ∝ C^b along C = 6ND: a = beta/(alpha+beta), b = alpha/(alpha+beta)",
        "G": "the frontier's coefficient: N_opt = G (C/6)^a and D_opt = (C/6)/N_opt",
        "objective": "the minimised Huber loss of the log-loss residuals, summed over runs and divided by delta "
                     "(lower fits closer; comparable only between fits of the same runs)",
        "n_points": "runs fitted",
    }

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        formats = {"E": loss, "A": number, "B": number, "alpha": exponent, "beta": exponent, "a": exponent,
                   "b": exponent, "G": number, "objective": number, "n_points": number}
        header = [str(c) for c in self.columns]
        rows = [[formats.get(c, number)(v) for c, v in zip(header, row)] for row in self.itertuples(index=False)]
        return header, rows


@dataclass(frozen=True)
class _Data:
    x: np.ndarray  # log N
    y: np.ndarray  # log D
    log_loss: np.ndarray
    loss: np.ndarray


def _huber_and_grad(theta: np.ndarray, data: _Data, delta: float) -> tuple[float, np.ndarray]:
    """Huber loss of LSE(a - alpha x, b - beta y, e) - log L, summed and divided by delta, and its gradient.

    Dividing by delta keeps the objective and its gradient of order one, so L-BFGS's
    tolerances mean the same for any delta. The log-sum-exp is written out (three
    terms) rather than calling scipy: for a few hundred points, call overhead dominates.
    """
    a, b, e, alpha, beta = theta
    t1, t2 = a - alpha * data.x, b - beta * data.y
    top = np.maximum(np.maximum(t1, t2), e)
    w1, w2, w3 = np.exp(t1 - top), np.exp(t2 - top), np.exp(e - top)
    total = w1 + w2 + w3
    r = top + np.log(total) - data.log_loss
    w1, w2, w3 = w1 / total, w2 / total, w3 / total  # softmax weights: d pred / d term
    abs_r = np.abs(r)
    value = np.where(abs_r <= delta, 0.5 * r * r, delta * (abs_r - 0.5 * delta)).sum() / delta
    dr = np.clip(r, -delta, delta) / delta
    g1, g2 = dr * w1, dr * w2
    grad = np.array([g1.sum(), g2.sum(), (dr * w3).sum(), -(g1 @ data.x), -(g2 @ data.y)])
    return float(value), grad


def _grid_starts(data: _Data, delta: float, keep: int) -> list[np.ndarray]:
    """For each (alpha, beta) on a grid, E, A, B >= 0 by least squares in relative error; the ``keep`` best."""
    scored = []
    nnls = _deps.scipy_optimize().nnls
    n_pow = np.exp(-np.outer(_ALPHAS, data.x))  # (grid, n): N**-alpha
    d_pow = np.exp(-np.outer(_BETAS, data.y))
    inv = 1.0 / data.loss  # relative errors approximate errors in log L
    for i, alpha in enumerate(_ALPHAS):
        for j, beta in enumerate(_BETAS):
            design = np.column_stack([inv, n_pow[i] * inv, d_pow[j] * inv])
            coef, _ = nnls(design, np.ones_like(inv))
            coef = np.maximum(coef, 1e-12)
            theta = np.array([math.log(coef[1]), math.log(coef[2]), math.log(coef[0]), alpha, beta])
            scored.append((_huber_and_grad(theta, data, delta)[0], theta))
    scored.sort(key=lambda item: item[0])
    return [theta for _, theta in scored[:keep]]


def _refine(theta: np.ndarray, data: _Data, delta: float) -> object:
    return _deps.scipy_optimize().minimize(_huber_and_grad, theta, args=(data, delta), jac=True, method="L-BFGS-B",
                             options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-8})


def _as_row(theta: np.ndarray, objective: float, n: int) -> dict[str, float]:
    a, b, e, alpha, beta = (float(v) for v in theta)
    A, B, E = math.exp(a), math.exp(b), math.exp(e)
    G = law_g(alpha, A, beta, B)
    return {"E": E, "A": A, "B": B, "alpha": alpha, "beta": beta, "a": beta / (alpha + beta),
            "b": alpha / (alpha + beta), "G": G, "objective": objective, "n_points": n}


def _data(results: pd.DataFrame, func: str) -> _Data:
    frame = prepare_results(results, func, budgets=False)
    if len(frame) < 5:
        raise CannotFitError(str(param_error("results", func, "at least 5 usable runs (the law has 5 parameters)",
                                             len(frame))))
    n, d, loss = (frame[c].to_numpy(dtype=float) for c in ("params", "tokens", "loss"))
    check_identifiable(n, d, loss, func)
    return _Data(np.log(n), np.log(d), np.log(loss), loss)


def fit_parametric(results: pd.DataFrame, *, delta: float = 1e-3, starts: int = 8) -> pd.DataFrame:
    """Approach 3: the law L = E + A/N^alpha + B/D^beta fitted to all runs (Huber loss on log L).

    Parameters
    ----------
    results : pandas.DataFrame
        Runs with ``params``, ``tokens``, ``loss`` (see :func:`load_results`).
    delta : float, default 1e-3
        Huber threshold on the log-loss residual (Hoffmann et al. 2022).
    starts : int, default 8
        How many of the best grid points seed L-BFGS.

    Returns
    -------
    pandas.DataFrame
        One row: ``E, A, B, alpha, beta``, the implied exponents ``a = beta/(alpha+beta)``
        (N_opt ∝ C^a) and ``b = alpha/(alpha+beta)``, ``G`` (the frontier's coefficient under
        C = 6ND: N_opt = G (C/6)^a, D_opt = (C/6)/N_opt), the minimised ``objective`` (the Huber loss
        of the log-loss residuals summed over runs and divided by ``delta``: lower fits closer, comparable
        only between fits of the same runs) and ``n_points`` (runs fitted). :func:`parametric_frontier`
        turns it into N_opt, D_opt and loss per budget. A DataFrame (a :class:`ParametricLaw`) that a
        notebook shows formatted, with these columns explained.

    Raises
    ------
    CannotFitError
        When the runs cannot determine the law: fewer than 3 distinct sizes N or token
        counts D (all runs at one D leave B and beta undetermined), fewer than 5 distinct
        (N, D) points, a loss that never changes, or a fitted N or D term that vanishes.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> n, d = np.meshgrid(np.geomspace(1e7, 1e10, 8), np.geomspace(1e9, 1e12, 8))
    >>> runs = pd.DataFrame({"params": n.ravel(), "tokens": d.ravel(), "flops": 6 * n.ravel() * d.ravel()})
    >>> runs["loss"] = 1.69 + 406.4 / runs["params"] ** 0.34 + 410.7 / runs["tokens"] ** 0.28
    >>> law = fit_parametric(runs).iloc[0]
    >>> round(float(law["alpha"]), 3), round(float(law["beta"]), 3), round(float(law["E"]), 3)
    (0.34, 0.28, 1.69)
    """
    func = "fit_parametric"
    if not isinstance(delta, (int, float)) or isinstance(delta, bool) or not delta > 0:
        raise param_error("delta", func, "a positive number such as 1e-3", delta)
    data = _data(results, func)
    best = min((_refine(theta, data, delta) for theta in _grid_starts(data, delta, starts)), key=lambda r: r.fun)
    a, b, e, alpha, beta = (float(v) for v in best.x)
    check_terms(np.exp(data.x), np.exp(data.y), data.loss, (math.exp(e), math.exp(a), math.exp(b), alpha, beta), func)
    return ParametricLaw(pd.DataFrame([_as_row(best.x, float(best.fun), len(data.x))], columns=PARAMETRIC_COLUMNS))


def parametric_estimates(law: pd.DataFrame, budgets: Sequence[float], targets: Sequence[float],
                         flops: FlopsCurve, resample: int = 0) -> list[dict[str, object]]:
    """Approach 3 as estimate rows: a and b are the slopes of N_opt and D_opt over the swept ``budgets``
    (beta/(alpha+beta) and alpha/(alpha+beta) under 6N), N and D at ``targets`` from the frontier."""
    ends = [min(budgets), max(budgets)] if max(budgets) > min(budgets) else [min(budgets), 10 * min(budgets)]
    swept = parametric_frontier(law, ends, flops=flops)
    span = math.log(ends[1] / ends[0])
    a = math.log(swept["params_opt"].iloc[1] / swept["params_opt"].iloc[0]) / span
    b = math.log(swept["tokens_opt"].iloc[1] / swept["tokens_opt"].iloc[0]) / span
    at = parametric_frontier(law, list(targets), flops=flops)
    return estimate_rows(APPROACH, resample, a, b, targets, at["params_opt"], at["tokens_opt"])


def bootstrap_parametric(results: pd.DataFrame, *, n_resamples: int = 1000, seed: int = 0,
                         delta: float = 1e-3, law: pd.DataFrame | None = None) -> pd.DataFrame:
    """Refit Approach 3 on ``n_resamples`` resamples of the runs (with replacement); one row per resample.

    Each refit starts L-BFGS from the full-data fit (``law``, the :func:`fit_parametric` of these
    runs with this ``delta`` when you have it already; made here otherwise), so 1,000 resamples of
    240 runs take a few seconds. Quantiles of the columns are the intervals.
    """
    func = "bootstrap_parametric"
    check_number(n_resamples, "n_resamples", func, integer=True, above=1)
    data = _data(results, func)
    full = (law if law is not None else fit_parametric(results, delta=delta)).iloc[0]
    start = np.array([math.log(full["A"]), math.log(full["B"]), math.log(full["E"]), full["alpha"], full["beta"]])
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(data.x), len(data.x))
        sample = _Data(data.x[pick], data.y[pick], data.log_loss[pick], data.loss[pick])
        fit = _refine(start, sample, delta)
        rows.append(_as_row(fit.x, float(fit.fun), len(pick)))
    return pd.DataFrame(rows, columns=PARAMETRIC_COLUMNS)
