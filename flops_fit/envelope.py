"""Approach 1: the lower envelope of all training curves (Hoffmann et al. 2022, Sec. 3.1).

At each FLOP count C, every run whose curve reaches C offers the loss it had there;
the run with the lowest loss gives N_opt(C). Power laws through those points are
fitted as for Approach 2 (:func:`fit_power_laws`).

Caveat, as in the paper: a curve's intermediate points come from a schedule tuned
for the run's full length, so they lie above what a run stopped there would reach;
sweeps with several run lengths per size make the envelope honest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._checks import check_number, param_error
from .analyzer import OPTIMA_COLUMNS


def fit_envelope(curves: pd.DataFrame, results: pd.DataFrame | None = None, *, points: int = 40,
                 min_runs: int = 3) -> pd.DataFrame:
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

    Returns
    -------
    pandas.DataFrame
        Optima in the format of :func:`fit_isoflops` (``budget`` is the FLOP count),
        plus ``n_runs``; ready for :func:`fit_power_laws`.
    """
    func = "fit_envelope"
    if not isinstance(curves, pd.DataFrame):
        raise param_error("curves", func, "a DataFrame of loss curves (run_id, tokens, flops, loss)", type(curves))
    frame = curves
    if "params" not in frame.columns:
        if results is None or "params" not in results.columns:
            raise param_error("curves", func, "a curves frame with a 'params' column, or results= to take it from",
                              list(curves.columns))
        frame = frame.merge(results[["run_id", "params"]], on="run_id", how="inner")
    missing = [c for c in ("run_id", "tokens", "flops", "loss", "params") if c not in frame.columns]
    if missing:
        raise param_error("curves", func, "columns run_id, tokens, flops, loss and params", list(frame.columns),
                          f"Missing: {missing}.")
    frame = frame[np.isfinite(frame[["flops", "loss"]].to_numpy(dtype=float)).all(axis=1) & (frame["flops"] > 0)]
    runs = [(float(g["params"].iloc[0]), np.log(g["flops"].to_numpy(float)), g["loss"].to_numpy(float),
             np.log(g["tokens"].to_numpy(float)))
            for _, g in frame.sort_values(["run_id", "flops"]).groupby("run_id") if len(g) >= 2]
    if len(runs) < min_runs:
        raise param_error("curves", func, f"curves of at least {min_runs} runs with 2 or more points each",
                          len(runs))
    lo = min(r[1][0] for r in runs)
    hi = max(r[1][-1] for r in runs)
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
        raise param_error("curves", func, f"at least 2 FLOP counts where {min_runs} or more curves cross and the "
                          "lowest is neither the smallest nor the largest model", len(rows),
                          "Lower min_runs, or train sizes on both sides of the optimum.")
    return pd.DataFrame(rows, columns=[*OPTIMA_COLUMNS, "n_runs"])


def bootstrap_envelope(curves: pd.DataFrame, results: pd.DataFrame | None = None, *, n_resamples: int = 200,
                       seed: int = 0, targets: tuple[float, ...] = ()) -> pd.DataFrame:
    """Approach 1 refitted on resamples of the runs (with replacement); one row per resample that fits.

    Columns ``a``, ``b``, ``k_params`` and ``params_at_<C>`` for each target.
    """
    import warnings

    from .analyzer import FitWarning, fit_power_laws

    check_number(n_resamples, "n_resamples", "bootstrap_envelope", integer=True, above=1)
    frame = curves if "params" in curves.columns else curves.merge(results[["run_id", "params"]], on="run_id")
    by_run = {rid: g for rid, g in frame.groupby("run_id")}
    ids = list(by_run)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_resamples):
        picked = rng.choice(len(ids), len(ids), replace=True)
        sample = pd.concat([by_run[ids[i]].assign(run_id=f"{ids[i]}#{k}") for k, i in enumerate(picked)])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FitWarning)
                laws = fit_power_laws(fit_envelope(sample)).set_index("quantity")
        except ValueError:
            continue
        row = {"a": laws.loc["params", "exponent"], "b": laws.loc["tokens", "exponent"],
               "k_params": laws.loc["params", "coefficient"]}
        for goal in targets:
            row[f"params_at_{goal:.3g}"] = row["k_params"] * goal ** row["a"]
        rows.append(row)
    return pd.DataFrame(rows)
