"""Result: what a sweep found, a thin view over its frames, with predictions, tables and figures."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import provenance
from ._checks import check_budgets, check_compute, param_error, warn
from . import _format as fmt
from .approaches.compare import estimate_all, summarise
from .approaches.diagnostics import diagnose
from .approaches.estimates import interval as percentile_interval
from .approaches import estimator as estimators
from .approaches.laws import predict_from_laws
from .approaches.frontier import FlopsCurve
from .errors import FitWarning
from .frames import drop_thin_budgets, incomplete_runs, prepare_results
from .mock import PlantedLaw
from .schema import BACKTEST_COLUMNS, LAW_QUANTITIES, Status
from .spec import PlanSpec
from .store import SweepStore
from .visualizer import plot_backtest, plot_isoflops, plot_scaling_laws


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(frame.columns))) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def default_targets(budgets: Sequence[float]) -> list[float]:
    """What to extrapolate to when nobody said: 10x and 100x the largest budget."""
    top = float(max(budgets))
    return [10 * top, 100 * top]


@dataclass
class Result:
    """Everything a sweep found: the frames behind it, predictions, a table and figures.

    Attributes
    ----------
    results : DataFrame
        One row per run (plan + outcome).
    curves : DataFrame
        Loss against tokens along each run.
    optima : DataFrame
        The optimum at each budget (the columns of :func:`fit_isoflops`).
    laws : DataFrame
        Power laws across budgets (the columns of :func:`fit_power_laws`).
    targets : list of float
        Compute budgets to extrapolate to (default 10x and 100x the largest budget).
    law : PlantedLaw or None
        The planted law of a mock sweep (its known answer), else None.
    spec : PlanSpec or None
        How the sweep was planned, when known.
    estimator : str
        What fitted it: ``"vpnls"`` (default; each budget's curve in the loss law's shape,
        :func:`flops_fit.vpnls_optima`, power laws across them, :func:`flops_fit.vpnls_laws`) or
        ``"parabola"`` (Approach 2, :func:`fit_isoflops`, :func:`fit_power_laws`).
    fit : DataFrame or None
        The law fitted to every run (:func:`flops_fit.fit_vpnls`) whose exponents shape the curves:
        its constants, covariance and noise (measured from repeats when there are any).
    """

    results: pd.DataFrame
    optima: pd.DataFrame
    laws: pd.DataFrame
    curves: pd.DataFrame | None = None
    plan: pd.DataFrame | None = None
    targets: list[float] = field(default_factory=list)
    law: PlantedLaw | None = None
    spec: PlanSpec | None = None
    estimator: str = estimators.DEFAULT
    fit: pd.DataFrame | None = None

    @classmethod
    def from_results(cls, results: pd.DataFrame, *, curves: pd.DataFrame | None = None,
                     plan: pd.DataFrame | None = None, extrapolate_to: Sequence[float] | None = None,
                     law: PlantedLaw | None = None, spec: PlanSpec | None = None,
                     estimator: str = estimators.DEFAULT) -> Result:
        """Fit a results frame (yours, or :func:`run_sweep`'s) and wrap it.

        ``estimator`` is ``"vpnls"`` (the default: each budget's curve in the loss law's shape,
        without the parabola's bias) or ``"parabola"`` (Approach 2). Unlike the
        stage functions, this keeps going where it can: budgets with fewer than 3 usable sizes
        are left out, and when no power law can be fitted the Result still holds the runs and the
        optima (with a :class:`FitWarning`).
        """
        func = "Result.from_results"
        estimator = estimators.check_estimator(estimator, func)
        targets = None if extrapolate_to is None else check_budgets(extrapolate_to, func, "extrapolate_to")
        frame = drop_thin_budgets(prepare_results(results, func), func)
        fitted = estimators.fit(frame, estimator, func)
        optima = fitted.optima
        if targets is None:
            targets = default_targets(optima["budget"] if len(optima) else frame["budget"])
        law = law if law is not None else stored_law(results)
        return cls(results=results, optima=optima, laws=fitted.laws, curves=curves, plan=plan, targets=targets,
                   law=law, spec=spec, estimator=fitted.estimator, fit=fitted.law)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **fit_options: Any) -> Result:
        """The Result of a sweep directory (at any moment, also while the sweep runs) or of a saved result.

        From a sweep directory the stored :class:`~flops_fit.PlanSpec` and, for a mock sweep, its
        planted law come back with it; ``fit_options`` go to :meth:`from_results`
        (``extrapolate_to=...``). A result written by :meth:`save` is refitted from its data,
        which must match its hashes, and the refit must reproduce the saved constants, or a
        ``ValueError`` says which differ; ``fit_options`` then refit the checked data (another
        ``estimator``, say).
        """
        if os.path.isdir(path) and provenance.is_saved_result(path):
            saved = cls._load_saved(path)
            asked = {key: value for key, value in fit_options.items() if value is not None}
            if not asked:
                return saved
            options = {"extrapolate_to": saved.targets, "estimator": saved.estimator, **asked}
            return cls.from_results(saved.results, curves=saved.curves, law=saved.law, spec=saved.spec, **options)
        if not os.path.isdir(path) or not os.path.exists(os.path.join(path, "plan.csv")):
            raise param_error("path", "load", "a sweep directory written by run_sweep(..., store=PATH) or a "
                              "result written by Result.save(PATH)", os.fspath(path))
        store = SweepStore(path)
        results = store.results()
        if incomplete_runs(results):
            warn(f"load: {incomplete_runs(results)}", FitWarning)
        return cls.from_results(results, curves=store.curves(), plan=store.plan(), spec=store.spec(),
                                **fit_options)

    def save(self, path: str | os.PathLike[str]) -> os.PathLike[str]:
        """Write this result to directory ``path`` as JSON and CSV (see :mod:`flops_fit.provenance`): the runs
        and curves with their SHA-256, the estimator, the package version and the fitted constants with their
        covariance. :meth:`load` (or ``flops_fit.load``) reads it back and checks it. Never a pickle."""
        header = {"estimator": {"name": self.estimator, "options": {"min_points": 3}}, "targets": self.targets,
                  "law": None if self.law is None else asdict(self.law),
                  "spec": None if self.spec is None else self.spec.to_dict()}
        return provenance.write(path, self.results, self.curves, header,
                                provenance.constants(self.optima, self.laws, self.fit))

    @classmethod
    def _load_saved(cls, path: str | os.PathLike[str]) -> Result:
        record, results, curves = provenance.read(path)
        with warnings.catch_warnings():  # the fit warned when it was made
            warnings.simplefilter("ignore", FitWarning)
            result = cls.from_results(results, curves=curves, extrapolate_to=record["targets"],
                                      law=PlantedLaw(**record["law"]) if record["law"] else None,
                                      spec=PlanSpec.from_dict(record["spec"]) if record["spec"] else None,
                                      estimator=record["estimator"]["name"])
        changed = provenance.differences(record["fit"], provenance.constants(result.optima, result.laws, result.fit))
        if changed:
            raise ValueError(f"Refitting the result saved in {os.fspath(path)} (by flops_fit "
                             f"{record['flops_fit_version']}) does not reproduce its constants: "
                             + "; ".join(changed[:5]) + (" ..." if len(changed) > 5 else ""))
        return result

    def _require_laws(self, func: str) -> None:
        if self.laws.empty:
            raise ValueError(f"{func} needs fitted power laws, and this Result has none: fewer than 2 budgets had "
                             "a located minimum (see result.optima['flag']). Add budgets or resample sizes.")

    def exponent(self, quantity: str = "params") -> float:
        """The fitted exponent: a for ``"params"`` (N_opt ∝ C^a), b for ``"tokens"``, c for ``"loss"``."""
        if quantity not in LAW_QUANTITIES:
            raise param_error("quantity", "Result.exponent", f"one of {list(LAW_QUANTITIES)}", quantity)
        self._require_laws("Result.exponent")
        return float(self.laws.set_index("quantity").loc[quantity, "exponent"])

    def predict(self, compute: float, *, interval: str = "delta", n_resamples: int = 1000,
                seed: int = 0) -> dict[str, float]:
        """Compute-optimal N, D and loss at ``compute`` FLOPs, each with a 95 % interval.

        Returns a dict with ``target_compute, optimal_params, optimal_tokens,
        expected_loss`` and ``*_low`` / ``*_high`` bounds for each. ``interval="delta"``
        takes the bounds from the fitted power laws' covariance (instant);
        ``"bootstrap"`` from ``n_resamples`` resamples of the runs within budgets, refitted with
        this result's estimator (the loss keeps its delta-method bounds). ``estimator`` names it.
        """
        func = "Result.predict"
        value = check_compute(compute, func)
        if interval not in ("delta", "bootstrap"):
            raise param_error("interval", func, "'delta' or 'bootstrap'", interval)
        self._require_laws(func)
        out = predict_from_laws(self.laws, value)
        if interval == "bootstrap":
            draws = estimators.bootstrap(self.results, self.estimator, n_resamples=n_resamples, seed=seed,
                                         targets=[value])
            for name, quantity in (("optimal_params", "params"), ("optimal_tokens", "tokens")):
                out[f"{name}_low"], out[f"{name}_high"] = percentile_interval(draws, quantity, value)
        out["estimator"] = self.estimator
        return out

    @property
    def located_budgets(self) -> list[float]:
        """The budgets whose minimum was located inside their sampled sizes, ascending."""
        return sorted(float(b) for b in self.optima.loc[self.optima["usable"].astype(bool), "budget"]) \
            if len(self.optima) else []

    def backtest(self, holdout: int = 1) -> pd.DataFrame:
        """Refit without the largest ``holdout`` budget(s) and compare what that fit predicts for them with what
        they measured.

        One row per held-out budget and quantity (``params``: N_opt, ``loss``: the optimal loss):
        ``budget, quantity, predicted, low, high, measured, relative_error, held``. ``measured`` is
        the budget's own IsoFLOP optimum, ``low``/``high`` the prediction's interval (at the laws'
        confidence), ``held`` whether it holds the measurement (missing when 2 budgets are left, whose
        power law passes exactly through them and has no interval), ``relative_error`` is
        measured / predicted - 1. Needs ``holdout`` + 2 budgets with a located minimum.
        """
        func = "Result.backtest"
        if isinstance(holdout, bool) or not isinstance(holdout, int) or holdout < 1:
            raise param_error("holdout", func, "a positive integer (how many of the largest budgets to hold out)",
                              holdout)
        located = self.located_budgets
        if len(located) < holdout + 2:
            raise param_error("holdout", func, f"at most {max(len(located) - 2, 0)} here: the refit needs 2 "
                              "budgets with a located minimum besides those held out", holdout,
                              f"This result has {len(located)} such budget(s); add budgets.")
        held = located[-holdout:]
        kept = self.results[~pd.to_numeric(self.results["budget"], errors="coerce").isin(held)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            refit = Result.from_results(kept, extrapolate_to=held, estimator=self.estimator)
        measured = self.optima.set_index("budget")
        rows = []
        for budget in held:
            p = predict_from_laws(refit.laws, budget)
            for quantity, key, column in (("params", "optimal_params", "params_opt"),
                                          ("loss", "expected_loss", "loss_opt")):
                value = float(measured.loc[budget, column])
                low, high = p[f"{key}_low"], p[f"{key}_high"]
                rows.append({"budget": budget, "quantity": quantity, "predicted": p[key], "low": low, "high": high,
                             "measured": value, "relative_error": value / p[key] - 1,
                             "held": bool(low <= value <= high) if np.isfinite([low, high]).all() else pd.NA})
        table = pd.DataFrame(rows, columns=BACKTEST_COLUMNS)
        table["held"] = table["held"].astype("boolean")
        return table

    def estimates(self, *, n_resamples: int = 200, seed: int = 0) -> tuple[pd.DataFrame, dict[str, str]]:
        """Every approach's estimates as one long frame (``approach, resample, quantity, target, value``;
        resample 0 is the fit, 1..n the bootstrap) at the largest target, and why any approach could not run."""
        self._require_laws("Result.estimates")
        return estimate_all(self.results, self.curves, [max(self.targets)], n_resamples=n_resamples, seed=seed)

    def compare_approaches(self, *, n_resamples: int = 200, seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
        """The exponent a and N_opt at the largest target by each approach, with bootstrap intervals.

        Approach 1 (envelope of training curves; needs ``curves``), 2 (IsoFLOP
        parabolas, resampled within budgets), 2b (the default estimator, each budget's curve in the
        law's shape, resampled within budgets) and 3 (parametric law, all runs), each under the
        plan's FLOP convention. One row per approach: ``approach, a, a_low, a_high, params,
        params_low, params_high, resamples, reason`` (why it could not run; empty when it did).
        """
        estimates, reasons = self.estimates(n_resamples=n_resamples, seed=seed)
        return summarise(estimates, reasons, max(self.targets), confidence)

    def diagnostics(self, comparison: pd.DataFrame | None = None, *, emit: bool = True) -> pd.DataFrame:
        """What the data cannot support (see :func:`flops_fit.diagnose`); warned unless ``emit=False``."""
        usable = self.optima.loc[self.optima["usable"].astype(bool), "params_opt"] if len(self.optima) else []
        slope = FlopsCurve.from_results(self.results).slope(min(usable), max(usable)) if len(usable) else 1.0
        return diagnose(self.optima, self.laws, targets=self.targets, comparison=comparison,
                        params_exponent=slope, emit=emit, fit=self.fit)

    def table(self, targets: Sequence[float] | None = None) -> pd.DataFrame:
        """The numbers behind :meth:`chinchilla_table`, one row per budget then per target.

        Columns ``compute, params, tokens, loss``, their 95 % bounds ``*_low``/``*_high`` (missing at the
        swept budgets, whose optima were measured), ``source`` and ``tokens_per_param``. At a target the
        bounds are :meth:`predict`'s: each from its own power law's covariance, D_opt's from the tokens law.
        """
        targets = self.targets if targets is None else check_budgets(targets, "Result.table", "targets")
        if self.laws.empty:
            targets = []
        bounds = {f"{q}_{end}": float("nan") for q in ("params", "tokens", "loss") for end in ("low", "high")}
        rows = [{"compute": r.budget, "params": r.params_opt, "tokens": r.tokens_opt, "loss": r.loss_opt, **bounds,
                 "source": f"{self.estimator} fit" if r.usable else f"{self.estimator} fit ({r.flag})"}
                for r in self.optima.itertuples()]
        for compute in targets:
            p = predict_from_laws(self.laws, compute)
            named = {"params": "optimal_params", "tokens": "optimal_tokens", "loss": "expected_loss"}
            rows.append({"compute": compute, "source": f"{self.estimator} extrapolation",
                         **{f"{q}{end}": p[f"{key}{end}"] for q, key in named.items() for end in ("", "_low", "_high")}})
        frame = pd.DataFrame(rows, columns=["compute", "params", "tokens", "loss", *bounds, "source"])
        frame["tokens_per_param"] = frame["tokens"] / frame["params"]
        return frame

    def chinchilla_table(self, targets: Sequence[float] | None = None) -> str:
        """A markdown table: N_opt, D_opt, D/N and loss per swept budget and per extrapolation target.

        Extrapolated rows carry the intervals of :meth:`predict` in brackets (N_opt, D_opt and loss).
        """
        frame = self.table(targets)
        def column(q: str, write: Any) -> list[str]:  # "v (low–high)" where there are bounds, else "v"
            return [fmt.interval(v, lo, hi, write) for v, lo, hi in zip(frame[q], frame[f"{q}_low"], frame[f"{q}_high"])]

        shown = pd.DataFrame({"Compute (FLOPs)": frame["compute"].map(fmt.flops), "N_opt": column("params", fmt.human),
                              "D_opt": column("tokens", fmt.human), "D/N": frame["tokens_per_param"].map(fmt.ratio),
                              "Loss": column("loss", fmt.loss), "Source": frame["source"]})
        return _markdown(shown)

    def plot(self, show: bool = False, html_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Build the IsoFLOP and scaling-law figures.

        Parameters
        ----------
        show : bool, default False
            Also display them (in a notebook, inline).
        html_dir : path, optional
            Write ``isoflops.html`` and ``scaling_laws.html`` there (created if missing), with
            ``plotly.min.js`` beside them so they open offline.

        Returns
        -------
        dict
            ``{"isoflops": Figure, "scaling_laws": Figure, "backtest": Figure}``: no ``"scaling_laws"``
            when no power law could be fitted, and a ``"backtest"`` (:meth:`backtest`, the largest budget
            held out) once 3 budgets have a located minimum.
        """
        if html_dir is not None and (not isinstance(html_dir, (str, os.PathLike)) or os.path.isfile(html_dir)):
            raise param_error("html_dir", "Result.plot", "a directory path (created if missing)", html_dir)
        named = {"estimator": self.estimator}
        figures = {"isoflops": plot_isoflops(self.results, self.optima, fitted=self.isoflop_curves(), **named)}
        if not self.laws.empty:
            figures["scaling_laws"] = plot_scaling_laws(self.optima, self.laws, self.targets, **named)
        if len(self.located_budgets) >= 3:
            figures["backtest"] = plot_backtest(self.backtest(), **named)
        if html_dir is not None:
            os.makedirs(html_dir, exist_ok=True)
            for name, fig in figures.items():
                fig.write_html(os.path.join(html_dir, f"{name}.html"), include_plotlyjs="directory")
        if show:
            for fig in figures.values():
                fig.show()
        return figures

    def isoflop_curves(self) -> pd.DataFrame | None:
        """Each budget's fitted IsoFLOP curve over its sizes (``budget, params, loss``); None for the parabola
        estimator, whose curves the optima describe."""
        if self.fit is None:
            return None
        fitted = estimators.curves(self.results, estimators.Fitted(self.optima, self.laws, self.fit))
        return fitted[fitted["budget"].isin(self.optima["budget"])]  # not budgets left out for too few sizes

    def _headline(self) -> str:
        if self.laws.empty:
            return f"no power law fitted ({self.estimator})"
        return f"N_opt ∝ C^{fmt.exponent(self.exponent('params'))} ({self.estimator} fit)"

    @property
    def incomplete(self) -> str:
        """Which planned runs did not complete and why ("" when all did); the table's caption says it too."""
        return incomplete_runs(self.results)

    def __repr__(self) -> str:
        note = f"\n{self.incomplete}" if self.incomplete else ""
        return (f"Result({len(self.results)} runs, {len(self.optima)} budgets, {self._headline()})\n"
                f"{self.chinchilla_table()}{note}")

    def _repr_markdown_(self) -> str:
        note = f"\n\n*{self.incomplete}*" if self.incomplete else ""
        return f"**flops_fit Result**: {self._headline()}\n\n{self.chinchilla_table()}{note}"


def load(path: str | os.PathLike[str], **fit_options: Any) -> Result:
    """The :class:`Result` of a sweep directory (see :meth:`Result.load`)."""
    return Result.load(path, **fit_options)


def stored_law(results: pd.DataFrame) -> PlantedLaw | None:
    """The planted law a mock sweep's runs were simulated from, read from their ``identity`` (None for trained
    runs, or runs of several laws)."""
    if "identity" not in results.columns:
        return None
    done = results.loc[results["status"] == Status.COMPLETED.value, "identity"].dropna()
    laws = {text for text in done if isinstance(text, str)}
    if len(laws) != 1:
        return None
    identity = json.loads(laws.pop())
    return PlantedLaw(**identity["law"]) if identity.get("mode") == "mock" else None
