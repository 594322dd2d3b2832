"""Approach 1: the lower envelope of all training curves (Hoffmann et al. 2022, Sec. 3.1).

At each FLOP count C, every run whose curve reaches C offers the loss it had there;
the run with the lowest loss gives N_opt(C). Power laws through those points are
fitted as for Approach 2 (:func:`fit_power_laws`).

Caveat, as in the paper: a curve's intermediate points come from a schedule tuned
for the run's full length, so they lie above what a run stopped there would reach;
sweeps with several run lengths per size make the envelope honest.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .._checks import check_budgets, check_number, param_error
from ..errors import CannotFitError, FitWarning
from ..schema import OPTIMA_COLUMNS
from .estimates import estimate_rows
from .laws import fit_power_laws

APPROACH = "1: envelope of curves"


def with_params(curves: pd.DataFrame, results: pd.DataFrame | None, func: str) -> pd.DataFrame:
    """The curves with each run's ``params`` (taken from ``results`` by run_id when the curves lack it)."""
    if not isinstance(curves, pd.DataFrame):
        raise param_error("curves", func, "a DataFrame of loss curves (run_id, tokens, flops, loss)", type(curves))
    if "params" in curves.columns:
        return curves
    if results is None or "params" not in results.columns:
        raise param_error("curves", func, "a curves frame with a 'params' column, or results= to take it from",
                          list(curves.columns))
    return curves.merge(results[["run_id", "params"]], on="run_id", how="inner")


def fit_envelope(curves: pd.DataFrame, results: pd.DataFrame | None = None, *, points: int = 40,
                 min_runs: int = 3, flops_range: tuple[float, float] | None = None) -> pd.DataFrame:
    """N_opt, D_opt and loss along the lower envelope of the training curves.

    Parameters
    ----------
    curves : pandas.DataFrame
        ``run_id, tokens, flops, loss`` per logged step, plus ``params`` (or pass
        ``results`` to take each run's ``params`` from).
    results : pandas.DataFrame, optional
        The runs, for ``params`` by ``run_id``.
    points : int, default 40
        FLOP counts, log-spaced over the range the curves cover, at which the envelope is read.
    min_runs : int, default 3
        A FLOP count counts only where at least this many curves reach it.
    flops_range : (float, float), optional
        Read the envelope only between these FLOP counts (say, the sweep's smallest and largest
        budget), where it is compared with the other approaches; by default wherever curves reach.

    Returns
    -------
    pandas.DataFrame
        Optima in the format of :func:`fit_isoflops` (``budget`` is the FLOP count),
        plus ``n_runs``; ready for :func:`fit_power_laws`.
    """
    func = "fit_envelope"
    frame = with_params(curves, results, func)
    missing = [c for c in ("run_id", "tokens", "flops", "loss", "params") if c not in frame.columns]
    if missing:
        raise param_error("curves", func, "columns run_id, tokens, flops, loss and params", list(frame.columns),
                          f"Missing: {missing}.")
    frame = frame[np.isfinite(frame[["flops", "loss"]].to_numpy(dtype=float)).all(axis=1) & (frame["flops"] > 0)]
    runs = [(float(g["params"].iloc[0]), np.log(g["flops"].to_numpy(float)), g["loss"].to_numpy(float),
             np.log(g["tokens"].to_numpy(float)))
            for _, g in frame.sort_values(["run_id", "flops"]).groupby("run_id") if len(g) >= 2]
    if len(runs) < min_runs:
        raise CannotFitError(str(param_error("curves", func, f"curves of at least {min_runs} runs with 2 or more "
                                             "points each", len(runs))))
    lo = min(r[1][0] for r in runs)
    hi = max(r[1][-1] for r in runs)
    if flops_range is not None:
        lo, hi = max(lo, np.log(flops_range[0])), min(hi, np.log(flops_range[1]))
    rows = []
    for log_c in np.linspace(lo, hi, points):
        offers = [(np.interp(log_c, x, loss), n, np.interp(log_c, x, log_d))
                  for n, x, loss, log_d in runs if x[0] <= log_c <= x[-1]]
        if len(offers) < min_runs:
            continue
        loss, n, log_d = min(offers)
        smallest, largest = min(o[1] for o in offers), max(o[1] for o in offers)
        inside = smallest < n < largest  # at an edge, a size not trained might have done better
        rows.append({"budget": float(np.exp(log_c)), "params_opt": n, "tokens_opt": float(np.exp(log_d)),
                     "loss_opt": float(loss), "n_points": len(offers), "n_runs": len(offers),
                     "params_min": smallest, "params_max": largest, "curvature": np.nan, "scatter": np.nan,
                     "has_minimum": True,
                     "inside": inside, "usable": inside,
                     "flag": "" if inside else "envelope at the smallest or largest curve reaching here"})
    if sum(r["usable"] for r in rows) < 2:
        raise CannotFitError(str(param_error(
            "curves", func, f"at least 2 FLOP counts where {min_runs} or more curves cross and the lowest is "
            "neither the smallest nor the largest model", len(rows),
            "Lower min_runs, or train sizes on both sides of the optimum.")))
    return pd.DataFrame(rows, columns=[*OPTIMA_COLUMNS, "n_runs"])


def envelope_estimates(curves: pd.DataFrame, resample: int = 0, targets: tuple[float, ...] = (),
                       flops_range: tuple[float, float] | None = None) -> list[dict[str, object]]:
    """Approach 1 as estimate rows: the power laws through the envelope's optima, read at ``targets``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        laws = fit_power_laws(fit_envelope(curves, flops_range=flops_range)).set_index("quantity")
    a, b = laws.loc["params", "exponent"], laws.loc["tokens", "exponent"]
    c = np.asarray(targets, dtype=float)
    return estimate_rows(APPROACH, resample, a, b, targets, laws.loc["params", "coefficient"] * c ** a,
                         laws.loc["tokens", "coefficient"] * c ** b)


def bootstrap_envelope(curves: pd.DataFrame, results: pd.DataFrame | None = None, *, n_resamples: int = 200,
                       seed: int = 0, targets: tuple[float, ...] = (),
                       flops_range: tuple[float, float] | None = None) -> pd.DataFrame:
    """Approach 1 refitted on resamples of the runs (with replacement), as the long estimates frame.

    Resamples 1..n whose envelope locates fewer than 2 optima are skipped. Columns as
    :data:`flops_fit.schema.ESTIMATE_COLUMNS`: ``a``, ``b`` and ``params`` / ``tokens`` at each target.
    """
    func = "bootstrap_envelope"
    check_number(n_resamples, "n_resamples", func, integer=True, above=1)
    goals = tuple(check_budgets(targets, func, "targets")) if len(targets) else ()
    frame = with_params(curves, results, func)
    by_run = {rid: g for rid, g in frame.groupby("run_id")}
    ids = list(by_run)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for resample in range(1, n_resamples + 1):
        picked = rng.choice(len(ids), len(ids), replace=True)
        sample = pd.concat([by_run[ids[i]].assign(run_id=f"{ids[i]}#{k}") for k, i in enumerate(picked)])
        try:
            rows += envelope_estimates(sample, resample, goals, flops_range)
        except CannotFitError:
            continue
    return pd.DataFrame(rows)
