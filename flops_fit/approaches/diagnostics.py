"""What the data cannot support, as a DataFrame (and as warnings): one row per finding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._checks import warn
from .._format import ReadableFrame
from ..errors import FitWarning

DIAGNOSTIC_COLUMNS = ["check", "subject", "detail"]


class Diagnostics(ReadableFrame):
    """:func:`diagnose`'s findings (a DataFrame); shown as "nothing to report" when there are none."""

    _title = "Diagnostics"
    _empty = "nothing to report (every check passed)"
    _legend = {"check": "what the data cannot support", "subject": "the budget, target, exponents or "
               "approaches concerned", "detail": "what was found, and what to do about it"}


def diagnose(optima: pd.DataFrame, laws: pd.DataFrame, *, targets: Sequence[float] = (),
             comparison: pd.DataFrame | None = None, min_points: int = 5, flat_ratio: float = 2.0,
             sum_tolerance: float = 0.02, max_extrapolation: float = 100.0, params_exponent: float = 1.0,
             emit: bool = True, fit: pd.DataFrame | None = None, lack_of_fit_p: float = 0.01) -> pd.DataFrame:
    """Findings about a fit; each is also warned as a :class:`FitWarning` (``emit=False`` to keep quiet).

    Checks: a budget whose vertex lies outside its sizes or that has no minimum; a
    budget with fewer than ``min_points`` sizes; a curve too flat to locate its
    minimum (the loss rises across the sampled half-range by less than ``flat_ratio``
    times the scatter of the points about the parabola); exponents of N_opt and
    D_opt that do not sum to what the FLOP convention implies within ``sum_tolerance`` (1 when
    FLOPs per token are proportional to N; 1 + a (1 - c) when they grow as N**c, ``params_exponent``); approaches whose intervals on
    ``a`` do not overlap (``comparison`` from :meth:`Result.compare_approaches`); a
    target more than ``max_extrapolation`` times the largest budget; with a VPNLS ``fit`` of runs that
    were repeated (the plan's ``repeats``), runs that scatter about the law more than the repeats scatter
    among themselves (an F-test below ``lack_of_fit_p``).

    Returns a DataFrame (a :class:`Diagnostics`) with columns ``check, subject, detail``, one row per
    finding; with no finding it is empty, and a notebook shows "nothing to report".
    """
    rows = []
    for row in optima.itertuples():
        subject = f"budget {row.budget:.3g}"
        if row.flag:
            rows.append(("minimum not located", subject, row.flag))
        if row.n_points < min_points:
            rows.append(("too few points", subject, f"{row.n_points} sizes; {min_points} or more pin the vertex"))
        scatter = getattr(row, "scatter", np.nan)
        if row.has_minimum and np.isfinite(scatter) and scatter > 0:
            half = (np.log(row.params_max) - np.log(row.params_min)) / 2
            rise = row.curvature * half**2
            if rise < flat_ratio * scatter:
                rows.append(("curve too flat", subject, f"the fitted curve rises {rise:.3g} across the sampled "
                             f"half-range against a scatter of {scatter:.3g}: sample a wider range of sizes"))
    if len(laws):
        exps = laws.set_index("quantity")["exponent"]
        total = exps["params"] + exps["tokens"]
        expected = 1 + exps["params"] * (1 - params_exponent)  # D = C / (k N^c): b = 1 - c a
        if abs(total - expected) > sum_tolerance:
            rows.append(("exponents do not sum to 1", "a + b", f"a + b = {total:.3f}; with C = k N^{params_exponent:.3g} D "
                         f"they should sum to {expected:.3f}: the FLOP convention or the tokens column may be off"))
    top = float(optima["budget"].max()) if len(optima) else np.nan
    for target in targets:
        if target > max_extrapolation * top:
            rows.append(("extrapolation far beyond the data", f"target {target:.3g}",
                         f"{target / top:.3g}x the largest budget ({top:.3g}); intervals assume the power law holds"))
    if comparison is not None and len(comparison) > 1:
        ranges = comparison.set_index("approach")[["a_low", "a_high"]].dropna()
        for first in ranges.index:
            for second in ranges.index:
                if first < second and (ranges.loc[first, "a_high"] < ranges.loc[second, "a_low"]
                                       or ranges.loc[second, "a_high"] < ranges.loc[first, "a_low"]):
                    rows.append(("approaches disagree", f"{first} vs {second}",
                                 f"their intervals on a do not overlap ({ranges.loc[first, 'a_low']:.3f}–"
                                 f"{ranges.loc[first, 'a_high']:.3f} vs {ranges.loc[second, 'a_low']:.3f}–"
                                 f"{ranges.loc[second, 'a_high']:.3f})"))
    if fit is not None and len(fit):
        law = fit.iloc[0]
        if law["noise_dof"] > 0 and law["lack_of_fit_p"] < lack_of_fit_p:
            rows.append(("scatter larger than the noise", "the fitted law",
                         f"the runs scatter about the law by {law['residual_sd']:.2%} (of the loss), but repeated runs "
                         f"differ by only {law['noise_sd']:.2%} (p = {law['lack_of_fit_p']:.2g}): the law's shape does "
                         "not fit these runs exactly; the intervals use the larger scatter"))
    found = Diagnostics(pd.DataFrame(rows, columns=DIAGNOSTIC_COLUMNS))
    if emit:
        for row in found.itertuples():
            warn(f"{row.check}: {row.subject}: {row.detail}", FitWarning)
    return found
