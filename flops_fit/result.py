"""SweepPlan (what will be trained) and Result (what was found), each a thin view over DataFrames."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ._checks import check_budgets, param_error
from .analyzer import fit_isoflops, fit_power_laws, predict_from_laws
from .mock import PlantedLaw


def human(value: float) -> str:
    """1234567 -> '1.23M'; the short form used in tables."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


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
            law: PlantedLaw | None = None, seed: int = 0, extrapolate_to: Sequence[float] | None = None) -> Result:
        """Run the plan and fit it; returns a :class:`Result`."""
        from .runner import run_sweep

        results, curves = run_sweep(
            self.plan, self.model_cls, dataset if dataset is not None else self.dataset,
            loss_fn if loss_fn is not None else self.loss_fn, mode=mode, law=law, seed=seed, return_curves=True)
        return Result.from_results(results, curves=curves, plan=self.plan, extrapolate_to=extrapolate_to)

    def __repr__(self) -> str:
        return (f"SweepPlan({len(self.plan)} runs over {len(self.compute_budgets)} budgets, "
                f"total {self.total_compute:.3g} FLOPs)\n{self.summary().to_string()}")

    def _repr_html_(self) -> str:
        head = (f"<b>SweepPlan</b>: {len(self.plan)} runs over {len(self.compute_budgets)} budgets, "
                f"total {self.total_compute:.3g} FLOPs")
        return head + self.summary().to_html()


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
        """Fit a results frame (yours, or :func:`run_sweep`'s) and wrap it."""
        optima = fit_isoflops(results)
        laws = fit_power_laws(optima)
        if extrapolate_to is None:
            top = float(optima["budget"].max())
            targets = [10 * top, 100 * top]
        else:
            targets = check_budgets(extrapolate_to, "Result", "extrapolate_to")
        return cls(results=results, optima=optima, laws=laws, curves=curves, plan=plan, targets=targets)

    @property
    def law(self) -> PlantedLaw | None:
        """The planted law of a mock sweep (its known answer), else None."""
        law = self.results.attrs.get("law")
        return law if isinstance(law, PlantedLaw) else None

    def exponent(self, quantity: str = "params") -> float:
        """The fitted exponent: a for ``"params"`` (N_opt ∝ C^a), b for ``"tokens"``."""
        return float(self.laws.set_index("quantity").loc[quantity, "exponent"])

    def predict(self, compute: float) -> dict[str, float]:
        """Compute-optimal N, D and loss at ``compute`` FLOPs, each with a 95 % interval.

        Returns a dict with ``target_compute, optimal_params, optimal_tokens,
        expected_loss`` and ``*_low`` / ``*_high`` bounds for each.
        """
        [value] = check_budgets([compute], "Result.predict", "compute")
        return predict_from_laws(self.laws, value)

    def table(self, targets: Sequence[float] | None = None) -> pd.DataFrame:
        """The numbers behind :meth:`chinchilla_table`, one row per budget then per target."""
        targets = self.targets if targets is None else check_budgets(targets, "Result.table", "targets")
        rows = [{"compute": r.budget, "params": r.params_opt, "tokens": r.tokens_opt, "loss": r.loss_opt,
                 "params_low": float("nan"), "params_high": float("nan"),
                 "source": "IsoFLOP fit" if r.usable else f"IsoFLOP fit ({r.flag})"}
                for r in self.optima.itertuples()]
        for compute in targets:
            p = predict_from_laws(self.laws, compute)
            rows.append({"compute": compute, "params": p["optimal_params"], "tokens": p["optimal_tokens"],
                         "loss": p["expected_loss"], "params_low": p["optimal_params_low"],
                         "params_high": p["optimal_params_high"], "source": "power-law extrapolation"})
        frame = pd.DataFrame(rows)
        frame["tokens_per_param"] = frame["tokens"] / frame["params"]
        return frame

    def chinchilla_table(self, targets: Sequence[float] | None = None) -> str:
        """A markdown table: N_opt, D_opt, D/N and loss per swept budget and per extrapolation target."""
        frame = self.table(targets)
        shown = pd.DataFrame({
            "Compute (FLOPs)": frame["compute"].map(lambda c: f"{c:.2e}"),
            "N_opt": [human(p) if pd.isna(lo) else f"{human(p)} ({human(lo)}–{human(hi)})"
                      for p, lo, hi in zip(frame["params"], frame["params_low"], frame["params_high"])],
            "D_opt": frame["tokens"].map(human),
            "D/N": frame["tokens_per_param"].map(lambda r: f"{r:.1f}"),
            "Loss": frame["loss"].map(lambda v: f"{v:.3f}"),
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
            ``{"isoflops": Figure, "scaling_laws": Figure}``.
        """
        from .visualizer import plot_isoflops, plot_scaling_laws

        figures = {
            "isoflops": plot_isoflops(self.results, self.optima),
            "scaling_laws": plot_scaling_laws(self.optima, self.laws, self.targets),
        }
        if html_dir is not None:
            if not isinstance(html_dir, (str, os.PathLike)):
                raise param_error("html_dir", "Result.plot", "a directory path", html_dir)
            os.makedirs(html_dir, exist_ok=True)
            for name, fig in figures.items():
                fig.write_html(os.path.join(html_dir, f"{name}.html"), include_plotlyjs="directory")
        if show:
            for fig in figures.values():
                fig.show()
        return figures

    def __repr__(self) -> str:
        a = self.exponent("params")
        return f"Result({len(self.results)} runs, {len(self.optima)} budgets, N_opt ∝ C^{a:.3f})\n{self.chinchilla_table()}"

    def _repr_markdown_(self) -> str:
        return f"**flops_fit Result**: N_opt ∝ C^{self.exponent('params'):.3f}\n\n{self.chinchilla_table()}"
