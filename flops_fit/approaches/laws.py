"""Power laws across budgets: N_opt = k*C**a, D_opt = k'*C**b and L_opt = E + k''*C**c, with intervals.

Least squares of ln y on ln C; the loss law has a floor E chosen to fit best (E = 0 is
the pure power law; a loss with an irreducible part, as every language-model loss has,
needs E > 0 or it extrapolates below that floor).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import _deps
from .._checks import param_error, warn
from .._format import DASH, ReadableFrame, exponent, flops, human, interval, loss, number
from ..errors import FitWarning, TooFewBudgetsError
from ..schema import LAW_COLUMNS, LAW_QUANTITIES

_LAW_NAMES = {"params": "N_opt = k C^a", "tokens": "D_opt = k C^b", "loss": "L_opt = E + k C^c"}


class PowerLaws(ReadableFrame):
    """Power laws across budgets (a DataFrame of :data:`~flops_fit.schema.LAW_COLUMNS`), shown formatted."""

    _title = "Power laws across budgets"
    _empty = "none fitted (fewer than 2 budgets had a located minimum)"
    _legend = {"law": "the quantity's power law in the compute C (FLOPs)",
               "exponent": "a, b or c, with its interval at the law's confidence (none from 2 budgets)",
               "k": "the coefficient", "E": "the loss floor (0 for N_opt and D_opt)",
               "r2": "fraction of the variance across budgets the law explains", "budgets": "budgets fitted and "
               "their range"}

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        rows = [[_LAW_NAMES.get(r.quantity, str(r.quantity)), interval(r.exponent, r.exponent_lo, r.exponent_hi,
                                                                       exponent),
                 number(r.coefficient), loss(r.floor) if r.floor > 0 else "0", f"{r.r2:.4f}",
                 f"{r.n_budgets} ({flops(r.budget_min)}{DASH}{flops(r.budget_max)})"]
                for r in self.itertuples(index=False)]
        return ["law", "exponent", "k", "E", "r2", "budgets"], rows


class Optima(ReadableFrame):
    """The optimum at each budget (a DataFrame of :data:`~flops_fit.schema.OPTIMA_COLUMNS`), shown formatted."""

    _title = "Optimum at each budget"
    _legend = {"budget": "compute budget C, in FLOPs", "N_opt, D_opt, loss": "the optimum's parameters, tokens and "
               "loss", "sizes": "runs used, and the parameter range they span",
               "usable": "whether the minimum lies inside the sampled sizes (only those enter the power laws)",
               "flag": "why a budget is not usable"}

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        rows = [[flops(r.budget), human(r.params_opt), human(r.tokens_opt), loss(r.loss_opt),
                 f"{r.n_points} ({human(r.params_min)}{DASH}{human(r.params_max)})", "yes" if r.usable else "no",
                 number(r.flag)] for r in self.itertuples(index=False)]
        return ["budget", "N_opt", "D_opt", "loss", "sizes", "usable", "flag"], rows


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
                     "budget_min": float(values[:, 0].min()), "budget_max": float(values[:, 0].max()),
                     "confidence": confidence})
    laws = PowerLaws(pd.DataFrame(rows, columns=LAW_COLUMNS))
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
    found = _deps.scipy_optimize().minimize_scalar(sse, bounds=(0.0, top), method="bounded", options={"xatol": 1e-6 * top})
    best = float(found.x)
    return best if sse(best) < sse(0.0) else 0.0


def t_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student-t critical value (scipy.special is far lighter to import than scipy.stats)."""
    return float(_deps.scipy_special().stdtrit(dof, 0.5 + confidence / 2))


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
        fit = _deps.scipy_optimize().least_squares(
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
        t = t_quantile(confidence, dof)
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
    parameters' covariance (delta method), at each law's ``confidence`` unless one is given;
    they widen away from the sampled budgets.
    """
    out: dict[str, float] = {"target_compute": float(compute)}
    names = {"params": "optimal_params", "tokens": "optimal_tokens", "loss": "expected_loss"}
    x0 = math.log(compute)
    for row in laws.itertuples():
        covariance = np.array(row.covariance, dtype=float)
        power = math.exp(math.log(row.coefficient) + row.exponent * x0)
        level = getattr(row, "confidence", 0.95) if confidence is None else confidence  # older frames lack it
        t = t_quantile(level, row.dof) if row.dof > 0 else float("nan")
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
