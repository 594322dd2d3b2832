"""The estimators a Result can be fitted with, behind one call: runs in, optima and power laws out.

``"vpnls"`` (the default, :mod:`.isoflop_shape`) fits each budget's curve in the loss law's
shape (exponents from :mod:`.vpnls`, the law fitted to every run); ``"parabola"`` (:mod:`.isoflop` then :mod:`.laws`) is Hoffmann et al.'s Approach 2,
a parabola in ln N per budget and power laws regressed through their vertices. The parabola
is biased when the sizes are wide or off-centre (``benchmarks/bench_bias.py``); it is kept so
people can compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from .._checks import param_error, warn
from ..errors import CannotFitError, FitWarning, TooFewBudgetsError
from ..schema import LAW_COLUMNS, OPTIMA_COLUMNS
from . import isoflop, isoflop_shape, vpnls
from .laws import Optima, PowerLaws, fit_power_laws

ESTIMATORS = {
    "vpnls": "each budget's curve in the loss law's shape (exponents by VPNLS), power laws across budgets",
    "parabola": "a parabola in ln N per budget, power laws through the vertices (Approach 2)",
}
DEFAULT = "vpnls"


def check_estimator(estimator: object, func: str) -> str:
    if estimator not in ESTIMATORS:
        raise param_error("estimator", func, f"one of {list(ESTIMATORS)}", estimator,
                          f"'vpnls' is the default; 'parabola' is {ESTIMATORS['parabola']}.")
    return str(estimator)


@dataclass(frozen=True)
class Fitted:
    """What an estimator found: per-budget ``optima``, power ``laws`` and, for VPNLS, the fitted ``law``."""

    optima: pd.DataFrame
    laws: pd.DataFrame
    law: pd.DataFrame | None = None
    estimator: str = DEFAULT  # what made the optima (the parabola's, while VPNLS has too few budgets)


def fit(frame: pd.DataFrame, estimator: str, func: str) -> Fitted:
    """Fit prepared runs (every budget with 3 or more sizes) with ``estimator``.

    Keeps going where it can: when no power law can be fitted (fewer than 2 budgets, or fewer
    than 2 located minima for the parabola) the laws frame is empty, with a :class:`FitWarning`.
    """
    if frame.empty:
        return Fitted(Optima(columns=OPTIMA_COLUMNS), PowerLaws(columns=LAW_COLUMNS), estimator=estimator)
    if estimator == "vpnls":
        try:
            law = vpnls.fit_vpnls(frame)
        except TooFewBudgetsError as exc:  # one budget: its minimum by the parabola, and said so
            _no_law(func, exc)
            warn(f"{func}: with one budget the law's shape cannot be fitted, so its minimum is the parabola's "
                 "(estimator 'parabola') until a second budget has runs.", FitWarning)
            return Fitted(isoflop.fit_isoflops(frame), PowerLaws(columns=LAW_COLUMNS), estimator="parabola")
        except CannotFitError as exc:  # the runs cannot determine the law; each budget's parabola may still stand
            warn(f"{func}: the law's shape cannot be fitted to these runs, so each budget's minimum is the "
                 f"parabola's (estimator 'parabola'). {exc}", FitWarning)
            return fit(frame, "parabola", func)
        optima = isoflop_shape.vpnls_optima(law, frame)
        for row in optima.itertuples():
            if row.flag:
                where = (f"N_opt={row.params_opt:.3g}" if row.has_minimum else f"lowest loss at N={row.params_opt:.3g}")
                warn(f"budget {row.budget:.3g}: {row.flag} ({where} vs sampled {row.params_min:.3g}.."
                     f"{row.params_max:.3g}); it is left out of the power laws (sample sizes that straddle it).",
                     FitWarning)
        try:
            laws = isoflop_shape.vpnls_laws(optima)
        except TooFewBudgetsError as exc:
            _no_law(func, exc)
            laws = PowerLaws(columns=LAW_COLUMNS)
        return Fitted(optima, laws, law, estimator)
    optima = isoflop.fit_isoflops(frame)
    try:
        laws = fit_power_laws(optima)
    except TooFewBudgetsError as exc:
        _no_law(func, exc)
        laws = PowerLaws(columns=LAW_COLUMNS)
    return Fitted(optima, laws, estimator=estimator)


def _no_law(func: str, exc: Exception) -> None:
    warn(f"{func}: no power law could be fitted, so nothing can be extrapolated; the runs and "
         f"optima are kept. {exc}", FitWarning)


def curves(results: pd.DataFrame, fitted: Fitted) -> pd.DataFrame | None:
    """Each budget's fitted IsoFLOP curve (``budget, params, loss``) for VPNLS; None means the parabolas."""
    return None if fitted.law is None else isoflop_shape.vpnls_curves(fitted.law, results)


def bootstrap(results: pd.DataFrame, estimator: str, *, n_resamples: int, seed: int,
              targets: Sequence[float]) -> pd.DataFrame:
    """``estimator`` refitted on resamples of the runs within budgets, as the long estimates frame."""
    if estimator == "vpnls":
        return isoflop_shape.bootstrap_vpnls(results, n_resamples=n_resamples, seed=seed, targets=list(targets))
    return isoflop.bootstrap_isoflops(results, n_resamples=n_resamples, seed=seed, targets=targets)
