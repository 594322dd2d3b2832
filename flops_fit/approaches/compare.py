"""The approaches behind one interface, Hoffmann et al.'s three and the default estimator: each turns runs (and
curves) into the long estimates frame.

:data:`APPROACHES` lists them; :func:`estimate_all` runs each, fitted and bootstrapped, and
:func:`summarise` makes one row per approach. An approach that cannot run on the data
(:class:`~flops_fit.errors.CannotFitError`) is a row with the reason; anything else is a bug
and is raised.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from .._format import ReadableFrame, exponent, flops, human, interval as span
from ..errors import CannotFitError, FitWarning
from ..frames import drop_thin_budgets, prepare_results
from ..schema import ESTIMATE_COLUMNS
from . import envelope, isoflop, isoflop_shape, parametric, vpnls
from .estimates import as_frame, estimate_rows, interval, values
from .frontier import FlopsCurve
from .laws import fit_power_laws, predict_from_laws

Estimator = Callable[[pd.DataFrame, "pd.DataFrame | None", Sequence[float], int, int], pd.DataFrame]
SUMMARY_COLUMNS = ["approach", "a", "a_low", "a_high", "params", "params_low", "params_high", "resamples",
                   "reason"]


class Comparison(ReadableFrame):
    """:func:`summarise`'s table (a DataFrame), shown with intervals and a legend of its columns."""

    _title = "Approaches compared"
    _legend = {
        "a": "the fitted exponent of N_opt ∝ C^a, with its bootstrap percentile interval",
        "N_opt": "the compute-optimal parameter count at the target, with its bootstrap percentile interval",
        "resamples": "bootstrap resamples behind the intervals",
        "reason": "why the approach could not run on this data (blank when it ran)",
    }

    def _caption(self) -> str:
        target, level = self.attrs.get("target"), self.attrs.get("confidence")
        at = f" at {flops(target)} FLOPs" if target is not None else ""
        return f"{self._title}: a and N_opt{at}" + (f", {level:.0%} intervals" if level is not None else "")

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        rows = [[str(r.approach), span(r.a, r.a_low, r.a_high, exponent),
                 span(r.params, r.params_low, r.params_high, human), str(r.resamples), str(r.reason)]
                for r in self.itertuples(index=False)]
        return ["approach", "a", "N_opt", "resamples", "reason"], rows


@dataclass(frozen=True)
class Approach:
    """One way from runs to N_opt(C): ``estimate(results, curves, targets, n_resamples, seed)``."""

    name: str
    estimate: Estimator


def _envelope(results: pd.DataFrame, curves: pd.DataFrame | None, targets: Sequence[float], n_resamples: int,
              seed: int) -> pd.DataFrame:
    if curves is None or curves.empty:
        raise CannotFitError("Approach 1 needs the runs' training curves, and there are none "
                             "(a results file without curves, or a sweep with no finished run).")
    frame = envelope.with_params(curves, results, "fit_envelope")
    budgets = prepare_results(results, "fit_envelope")["budget"]
    # under C = kND the frontier is one power law wherever curves reach, and more of it pins the slope better;
    # under other conventions it bends, so it is read only where the approaches are compared
    proportional = FlopsCurve.from_results(results).proportional
    swept = None if proportional else (float(budgets.min()), float(budgets.max()))
    rows = envelope.envelope_estimates(frame, 0, tuple(targets), swept)
    draws = envelope.bootstrap_envelope(frame, n_resamples=n_resamples, seed=seed, targets=tuple(targets),
                                        flops_range=swept)
    return pd.concat([as_frame(rows), draws], ignore_index=True) if len(draws) else as_frame(rows)


def _isoflop(results: pd.DataFrame, curves: pd.DataFrame | None, targets: Sequence[float], n_resamples: int,
             seed: int) -> pd.DataFrame:
    results = drop_thin_budgets(prepare_results(results, "fit_isoflops"), "fit_isoflops")  # as Result fits it
    laws = fit_power_laws(isoflop.fit_isoflops(results))
    draws = isoflop.bootstrap_isoflops(results, n_resamples=n_resamples, seed=seed, targets=targets)
    return _with_draws(isoflop.APPROACH, laws, targets, draws)


def _with_draws(approach: str, laws: pd.DataFrame, targets: Sequence[float], draws: pd.DataFrame) -> pd.DataFrame:
    """The fit's own estimates (resample 0) from its power laws, then the bootstrap's."""
    exps = laws.set_index("quantity")["exponent"]
    preds = [predict_from_laws(laws, t) for t in targets]
    rows = estimate_rows(approach, 0, exps["params"], exps["tokens"], targets,
                         [p["optimal_params"] for p in preds], [p["optimal_tokens"] for p in preds])
    return pd.concat([as_frame(rows), draws], ignore_index=True)


def _shaped(results: pd.DataFrame, curves: pd.DataFrame | None, targets: Sequence[float], n_resamples: int,
            seed: int) -> pd.DataFrame:
    results = drop_thin_budgets(prepare_results(results, "fit_vpnls"), "fit_vpnls")  # as Result fits it
    laws = isoflop_shape.vpnls_laws(isoflop_shape.vpnls_optima(vpnls.fit_vpnls(results), results))
    draws = isoflop_shape.bootstrap_vpnls(results, n_resamples=n_resamples, seed=seed, targets=targets)
    return _with_draws(vpnls.APPROACH, laws, targets, draws)


def _parametric(results: pd.DataFrame, curves: pd.DataFrame | None, targets: Sequence[float], n_resamples: int,
                seed: int) -> pd.DataFrame:
    law = parametric.fit_parametric(results)
    flops = FlopsCurve.from_results(results)
    budgets = prepare_results(results, "fit_parametric")["budget"].unique().tolist()
    rows = parametric.parametric_estimates(law, budgets, targets, flops)
    draws = parametric.bootstrap_parametric(results, n_resamples=n_resamples, seed=seed, law=law)
    for resample, draw in enumerate(draws.itertuples(index=False), start=1):
        rows += parametric.parametric_estimates(pd.DataFrame([draw._asdict()]), budgets, targets, flops, resample)
    return as_frame(rows)


APPROACHES = (
    Approach(envelope.APPROACH, _envelope),
    Approach(isoflop.APPROACH, _isoflop),
    Approach(vpnls.APPROACH, _shaped),
    Approach(parametric.APPROACH, _parametric),
)


def estimate_all(results: pd.DataFrame, curves: pd.DataFrame | None, targets: Sequence[float], *,
                 n_resamples: int = 200, seed: int = 0) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every approach's estimates (one long frame) and, for those that could not run, why."""
    frames, reasons = [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)  # the main fit has warned already
        for approach in APPROACHES:
            try:
                frames.append(approach.estimate(results, curves, targets, n_resamples, seed))
            except CannotFitError as exc:
                reasons[approach.name] = str(exc)
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ESTIMATE_COLUMNS)
    return long, reasons


def summarise(estimates: pd.DataFrame, reasons: dict[str, str], target: float,
              confidence: float = 0.95) -> pd.DataFrame:
    """One row per approach: a and N_opt at ``target`` with percentile intervals, or the reason it could not run.

    Columns ``approach, a, a_low, a_high, params, params_low, params_high, resamples, reason``: ``a`` is the
    exponent of N_opt ∝ C^a, ``params`` N_opt at ``target``, ``*_low``/``*_high`` their percentile intervals at
    ``confidence`` over the bootstrap ``resamples``, ``reason`` why an approach could not run (empty when it
    ran). A DataFrame (a :class:`Comparison`) that a notebook shows formatted, with these columns explained.
    """
    rows = []
    for approach in APPROACHES:
        if approach.name in reasons:
            rows.append({"approach": approach.name, "resamples": 0, "reason": reasons[approach.name]})
            continue
        own = estimates[estimates["approach"] == approach.name]
        fitted_a = values(own, "a", resampled=False)
        fitted_n = values(own, "params", target, resampled=False)
        a_low, a_high = interval(own, "a", confidence=confidence)
        n_low, n_high = interval(own, "params", target, confidence)
        rows.append({"approach": approach.name, "a": float(fitted_a.iloc[0]), "a_low": a_low, "a_high": a_high,
                     "params": float(fitted_n.iloc[0]), "params_low": n_low, "params_high": n_high,
                     "resamples": int(own.loc[own["resample"] > 0, "resample"].nunique()), "reason": ""})
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    table["resamples"] = table["resamples"].astype(int)
    for column in SUMMARY_COLUMNS[1:7]:
        table[column] = table[column].astype(float)
    shown = Comparison(table)
    shown.attrs.update(target=float(target), confidence=float(confidence))
    return shown
