"""SweepPlan (what will be trained) and Result (what was found), each a thin view over DataFrames."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ._checks import check_budgets, check_compute, param_error, warn
from ._format import human
from .analyzer import (
    LAW_COLUMNS, LAW_QUANTITIES, OPTIMA_COLUMNS, FitWarning, TooFewBudgetsError, fit_isoflops, fit_power_laws,
    predict_from_laws, prepare_results,
)
from .mock import PlantedLaw


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(frame.columns))) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


@dataclass
class SweepPlan:
    """A planned IsoFLOP sweep: ``plan`` has one row per run (see :func:`plan_sweep`).

    Inspect it, edit ``plan`` if you like, then call :meth:`run`.
    """

    plan: pd.DataFrame
    model_cls: Callable[..., Any] | None = None
    model_size_param: str | None = None
    dataset: Any = None
    loss_fn: Callable[..., Any] | None = None
    train_config: Any = None
    eval_dataset: Any = None

    @property
    def compute_budgets(self) -> list[float]:
        return sorted(self.plan["budget"].unique().tolist())

    @property
    def total_compute(self) -> float:
        """FLOPs the whole sweep will spend."""
        return float(self.plan["flops"].sum())

    def summary(self) -> pd.DataFrame:
        """One row per budget: how many runs, which sizes, the N and D/N they span."""
        grouped = self.plan.groupby("budget", sort=True)
        return pd.DataFrame({
            "runs": grouped.size(),
            "sizes": grouped["size"].agg(lambda s: ", ".join(str(v) for v in s)),
            "params_min": grouped["params"].min(), "params_max": grouped["params"].max(),
            "tokens_per_param_min": grouped["tokens_per_param"].min(),
            "tokens_per_param_max": grouped["tokens_per_param"].max(),
        })

    def run(self, dataset: Any = None, loss_fn: Callable[..., Any] | None = None, *, mode: str = "mock",
            law: PlantedLaw | None = None, seed: int = 0, extrapolate_to: Sequence[float] | None = None,
            **run_options: Any) -> Result:
        """Run the plan (:func:`run_sweep`) and fit it; returns a :class:`Result`.

        ``dataset`` and ``loss_fn`` default to the ones the plan was made with;
        ``run_options`` go to :func:`run_sweep` (``train_config``, ``callbacks``, ...).
        """
        from .runner import run_sweep

        run_options.setdefault("train_config", self.train_config)
        run_options.setdefault("eval_dataset", self.eval_dataset)
        results, curves = run_sweep(
            self.plan, self.model_cls, dataset if dataset is not None else self.dataset,
            loss_fn if loss_fn is not None else self.loss_fn, mode=mode, law=law, seed=seed, return_curves=True,
            model_size_param=self.model_size_param, **run_options)
        return Result.from_results(results, curves=curves, plan=self.plan, extrapolate_to=extrapolate_to)

    def __repr__(self) -> str:
        return (f"SweepPlan({len(self.plan)} runs over {len(self.compute_budgets)} budgets, "
                f"total {self.total_compute:.3g} FLOPs)\n{self.summary().to_string()}")

    def _repr_html_(self) -> str:
        head = (f"<b>SweepPlan</b>: {len(self.plan)} runs over {len(self.compute_budgets)} budgets, "
                f"total {self.total_compute:.3g} FLOPs")
        return head + self.summary().to_html()


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
        Approach 2's optimum at each budget (:func:`fit_isoflops`).
    laws : DataFrame
        Power laws across budgets (:func:`fit_power_laws`).
    targets : list of float
        Compute budgets to extrapolate to (default 10x and 100x the largest budget).
    """

    results: pd.DataFrame
    optima: pd.DataFrame
    laws: pd.DataFrame
    curves: pd.DataFrame | None = None
    plan: pd.DataFrame | None = None
    targets: list[float] = field(default_factory=list)

    @classmethod
    def from_results(cls, results: pd.DataFrame, *, curves: pd.DataFrame | None = None,
                     plan: pd.DataFrame | None = None, extrapolate_to: Sequence[float] | None = None) -> Result:
        """Fit a results frame (yours, or :func:`run_sweep`'s) and wrap it.

        Unlike the stage functions, this keeps going where it can: budgets with fewer
        than 3 usable sizes are left out, and when no power law can be fitted the
        Result still holds the runs and the optima (with a :class:`FitWarning`).
        """
        func = "Result.from_results"
        targets = None if extrapolate_to is None else check_budgets(extrapolate_to, func, "extrapolate_to")
        frame = prepare_results(results, func)
        sizes = frame.groupby("budget")["params"].nunique()
        thin = sizes[sizes < 3].index.tolist()
        if thin:
            warn(f"{func}: left out budget(s) {', '.join(f'{b:.3g}' for b in thin)} with fewer than 3 "
                          "usable sizes.", FitWarning)
            frame = frame[~frame["budget"].isin(thin)]
        optima = fit_isoflops(frame) if not frame.empty else pd.DataFrame(columns=OPTIMA_COLUMNS)
        try:
            laws = fit_power_laws(optima)
        except TooFewBudgetsError as exc:
            warn(f"{func}: no power law could be fitted, so nothing can be extrapolated; the runs and "
                          f"optima are kept. {exc}", FitWarning)
            laws = pd.DataFrame(columns=LAW_COLUMNS)
        if targets is None:
            targets = default_targets(optima["budget"] if len(optima) else frame["budget"])
        return cls(results=results, optima=optima, laws=laws, curves=curves, plan=plan, targets=targets)

    @property
    def law(self) -> PlantedLaw | None:
        """The planted law of a mock sweep (its known answer), else None."""
        law = self.results.attrs.get("law")
        return law if isinstance(law, PlantedLaw) else None

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
        ``"bootstrap"`` from ``n_resamples`` resamples of the runs within budgets
        (:func:`bootstrap_isoflops`; the loss keeps its delta-method bounds).
        """
        func = "Result.predict"
        value = check_compute(compute, func)
        if interval not in ("delta", "bootstrap"):
            raise param_error("interval", func, "'delta' or 'bootstrap'", interval)
        self._require_laws(func)
        out = predict_from_laws(self.laws, value)
        if interval == "bootstrap":
            from .bootstrap import bootstrap_isoflops

            draws = bootstrap_isoflops(self.results, n_resamples=n_resamples, seed=seed, targets=[value])
            for name, column in (("optimal_params", f"params_at_{value:.3g}"),
                                 ("optimal_tokens", f"tokens_at_{value:.3g}")):
                out[f"{name}_low"], out[f"{name}_high"] = (float(q) for q in draws[column].quantile([0.025, 0.975]))
        return out

    def compare_approaches(self, *, n_resamples: int = 200, seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
        """The exponent a and N_opt at the largest target by each approach, with bootstrap intervals.

        Approach 1 (envelope of training curves; needs ``curves``), 2 (IsoFLOP
        parabolas, resampled within budgets) and 3 (parametric law, all runs). One row
        per approach: ``approach, a, a_low, a_high, params, params_low, params_high``.
        """
        import warnings as _warnings

        from .bootstrap import bootstrap_isoflops
        from .envelope import bootstrap_envelope, fit_envelope
        from .parametric import bootstrap_parametric, fit_parametric, parametric_frontier

        self._require_laws("Result.compare_approaches")
        target = max(self.targets)
        key = f"params_at_{target:.3g}"
        low, high = (1 - confidence) / 2, (1 + confidence) / 2

        def row(name: str, a: float, params: float, draws: pd.DataFrame) -> dict[str, object]:
            return {"approach": name, "a": a, "a_low": draws["a"].quantile(low), "a_high": draws["a"].quantile(high),
                    "params": params, "params_low": draws[key].quantile(low), "params_high": draws[key].quantile(high),
                    "resamples": len(draws)}

        rows = []
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", FitWarning)
            if self.curves is not None and len(self.curves):
                try:
                    laws1 = fit_power_laws(fit_envelope(self.curves, self.results)).set_index("quantity")
                    draws = bootstrap_envelope(self.curves, self.results, n_resamples=n_resamples, seed=seed,
                                               targets=(target,))
                    rows.append(row("1: envelope of curves", laws1.loc["params", "exponent"],
                                    laws1.loc["params", "coefficient"] * target ** laws1.loc["params", "exponent"],
                                    draws))
                except ValueError:
                    pass
            draws = bootstrap_isoflops(self.results, n_resamples=n_resamples, seed=seed, targets=(target,))
            rows.append(row("2: IsoFLOP parabolas", self.exponent("params"),
                            predict_from_laws(self.laws, target)["optimal_params"], draws))
            law = fit_parametric(self.results)
            draws = bootstrap_parametric(self.results, n_resamples=n_resamples, seed=seed)
            draws[key] = draws["G"] * (target / 6.0) ** draws["a"]
            rows.append(row("3: parametric fit", float(law["a"].iloc[0]),
                            float(parametric_frontier(law, [target])["params_opt"].iloc[0]), draws))
        return pd.DataFrame(rows)

    def diagnostics(self, comparison: pd.DataFrame | None = None, *, emit: bool = True) -> pd.DataFrame:
        """What the data cannot support (see :func:`flops_fit.diagnostics.diagnose`); warned unless ``emit=False``."""
        from .diagnostics import diagnose

        return diagnose(self.optima, self.laws, targets=self.targets, comparison=comparison, emit=emit)

    def table(self, targets: Sequence[float] | None = None) -> pd.DataFrame:
        """The numbers behind :meth:`chinchilla_table`, one row per budget then per target."""
        targets = self.targets if targets is None else check_budgets(targets, "Result.table", "targets")
        if self.laws.empty:
            targets = []
        nan = float("nan")
        rows = [{"compute": r.budget, "params": r.params_opt, "tokens": r.tokens_opt, "loss": r.loss_opt,
                 "params_low": nan, "params_high": nan, "loss_low": nan, "loss_high": nan,
                 "source": "IsoFLOP fit" if r.usable else f"IsoFLOP fit ({r.flag})"}
                for r in self.optima.itertuples()]
        for compute in targets:
            p = predict_from_laws(self.laws, compute)
            rows.append({"compute": compute, "params": p["optimal_params"], "tokens": p["optimal_tokens"],
                         "loss": p["expected_loss"], "params_low": p["optimal_params_low"],
                         "params_high": p["optimal_params_high"], "loss_low": p["expected_loss_low"],
                         "loss_high": p["expected_loss_high"], "source": "power-law extrapolation"})
        frame = pd.DataFrame(rows)
        frame["tokens_per_param"] = frame["tokens"] / frame["params"]
        return frame

    def chinchilla_table(self, targets: Sequence[float] | None = None) -> str:
        """A markdown table: N_opt, D_opt, D/N and loss per swept budget and per extrapolation target.

        Extrapolated rows carry the intervals of :meth:`predict` in brackets.
        """
        frame = self.table(targets)
        shown = pd.DataFrame({
            "Compute (FLOPs)": frame["compute"].map(lambda c: f"{c:.2e}"),
            "N_opt": [human(p) if pd.isna(lo) else f"{human(p)} ({human(lo)}–{human(hi)})"
                      for p, lo, hi in zip(frame["params"], frame["params_low"], frame["params_high"])],
            "D_opt": frame["tokens"].map(human),
            "D/N": frame["tokens_per_param"].map(lambda r: f"{r:.1f}"),
            "Loss": [f"{v:.3f}" if pd.isna(lo) else f"{v:.3f} ({lo:.3f}–{hi:.3f})"
                     for v, lo, hi in zip(frame["loss"], frame["loss_low"], frame["loss_high"])],
            "Source": frame["source"],
        })
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
            ``{"isoflops": Figure, "scaling_laws": Figure}`` (no ``"scaling_laws"`` when
            no power law could be fitted).
        """
        from .visualizer import plot_isoflops, plot_scaling_laws

        if html_dir is not None and (not isinstance(html_dir, (str, os.PathLike)) or os.path.isfile(html_dir)):
            raise param_error("html_dir", "Result.plot", "a directory path (created if missing)", html_dir)
        figures = {"isoflops": plot_isoflops(self.results, self.optima)}
        if not self.laws.empty:
            figures["scaling_laws"] = plot_scaling_laws(self.optima, self.laws, self.targets)
        if html_dir is not None:
            os.makedirs(html_dir, exist_ok=True)
            for name, fig in figures.items():
                fig.write_html(os.path.join(html_dir, f"{name}.html"), include_plotlyjs="directory")
        if show:
            for fig in figures.values():
                fig.show()
        return figures

    def _headline(self) -> str:
        if self.laws.empty:
            return "no power law fitted"
        return f"N_opt ∝ C^{self.exponent('params'):.3f}"

    def __repr__(self) -> str:
        return (f"Result({len(self.results)} runs, {len(self.optima)} budgets, {self._headline()})\n"
                f"{self.chinchilla_table()}")

    def _repr_markdown_(self) -> str:
        return f"**flops_fit Result**: {self._headline()}\n\n{self.chinchilla_table()}"
