"""find_optimal(): plan, run and fit an IsoFLOP sweep in one call; SweepPlan, what it plans."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ._checks import check_budgets, check_choice, check_run_timeout, check_seed, param_error, warn
from ._format import flops, html_table, human, ratio, text_table
from .approaches.estimator import check_estimator
from .mock import PlantedLaw, check_law
from .planning.planner import plan_sweep
from .errors import FitWarning
from .frames import incomplete_runs
from .result import Result
from .runner import run_sweep, training_facts
from .schema import MODES
from .spec import PlanSpec
from .training.config import TrainConfig


def find_optimal(
    model_cls: Callable[..., Any],
    model_size_param: str,
    dataset: Any = None,
    loss_fn: Callable[..., Any] | None = None,
    compute_budgets: Sequence[float] | None = None,
    *,
    mode: str = "mock",
    train: bool = True,
    seed: int = 0,
    law: PlantedLaw | None = None,
    extrapolate_to: Sequence[float] | None = None,
    spec: PlanSpec | None = None,
    train_config: TrainConfig | None = None,
    eval_dataset: Any = None,
    callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
    progress: bool | None = None,
    store: Any = None,
    executor: Any = None,
    retry_failed: bool = False,
    estimator: str = "vpnls",
    run_timeout: float | None = 3600.0,
    **options: Any,
) -> Result | SweepPlan:
    """Find the compute-optimal model size for a model family, the Chinchilla way.

    Plans an IsoFLOP sweep (:func:`plan_sweep`), runs it (:func:`run_sweep`) and fits
    it: by default the loss law's own IsoFLOP shape to every budget at once
    (:func:`fit_vpnls`), or with ``estimator="parabola"`` a parabola per budget and power
    laws across their vertices (:func:`fit_isoflops`, :func:`fit_power_laws`).

    Parameters
    ----------
    model_cls : callable
        Model factory called as ``model_cls(**{model_size_param: value})``; the
        model must expose ``num_params() -> int``.
    model_size_param : str
        The integer size knob, e.g. ``"d_model"``.
    dataset, loss_fn
        Training data and loss. Without them (or with ``train=False``) the
        planned sweep is returned as a :class:`SweepPlan` to inspect first.
    compute_budgets : sequence of float
        Budgets C in FLOPs, e.g. ``[1e17, 1e18, 1e19]``.
    mode : {"mock", "local"}
        ``"mock"`` simulates runs from ``law`` instead of training; ``"local"``
        trains each run on this machine (cuda, then mps, then cpu).
    train : bool, default True
        False returns the plan without running it.
    seed : int, default 0
        Makes mock noise reproducible.
    law : PlantedLaw, optional
        The law mock mode simulates.
    extrapolate_to : sequence of float, optional
        Budgets to predict for; default 10x and 100x the largest budget.
    spec : PlanSpec, optional
        How to plan (see :class:`~flops_fit.PlanSpec` and :func:`plan_sweep`).
    train_config, eval_dataset, callbacks, progress
        Passed to :func:`run_sweep` for ``mode="local"``.
    store, executor, retry_failed, run_timeout
        Passed to :func:`run_sweep`: keep every finished run in a sweep directory
        (rerunning resumes), run on any ``concurrent.futures.Executor`` (:func:`process_pool` for
        this machine's cores), give up on a run unheard of for ``run_timeout`` seconds.
    estimator : {"vpnls", "parabola"}
        How the result is fitted (see :meth:`Result.from_results`).
    **options
        Planning options, any field of :class:`~flops_fit.PlanSpec` (``points_per_budget``,
        ``tokens_per_param``, ``size_span``, ``size_values``, ``size_range``, ``multiple_of``,
        ``flop_convention``, ``model_kwargs``, ``repeats``, ``strategy``, ``target_precision``,
        ``max_compute``, ``target_compute``, ``parallel``), replacing that field of ``spec``.
        ``strategy="adaptive"`` starts from three sizes a budget and adds ``parallel`` runs at a time,
        chosen from the runs so far, until N_opt at ``target_compute`` (default 100x the largest budget)
        is known within ``target_precision`` or ``max_compute`` FLOPs are spent; each run's ``reason``
        says why it was added.

    Returns
    -------
    Result or SweepPlan

    Examples
    --------
    >>> from flops_fit import find_optimal
    >>> from flops_fit.examples import GPT
    >>> result = find_optimal(GPT, "d_model", dataset="unused in mock mode", loss_fn="unused",
    ...                       compute_budgets=[1e17, 1e18, 1e19], mode="mock", seed=0)
    >>> p = result.predict(1e21)
    >>> p["estimator"], sorted(k for k in p if k.startswith("optimal_params"))
    ('vpnls', ['optimal_params', 'optimal_params_high', 'optimal_params_low'])
    """
    func = "find_optimal"
    # everything is checked before planning, so no mistake surfaces after compute was spent
    if compute_budgets is None:
        raise param_error("compute_budgets", func, "a list of FLOP budgets such as [1e17, 1e18, 1e19]", None)
    if len(check_budgets(compute_budgets, func)) < 2:
        raise param_error("compute_budgets", func, "at least 2 budgets (power laws are fitted across budgets)",
                          compute_budgets, "Use 3 to 5 budgets a decade or so apart, e.g. [1e17, 1e18, 1e19].")
    if not isinstance(train, bool):
        raise param_error("train", func, "True or False", train)
    check_choice(mode, "mode", func, MODES)
    check_seed(seed, func)
    check_law(law, func)
    check_estimator(estimator, func)
    check_run_timeout(run_timeout, func)
    if extrapolate_to is not None:
        check_budgets(extrapolate_to, func, "extrapolate_to")
    spec = PlanSpec.from_options(spec, options, func, inspect.signature(find_optimal).parameters)
    plan = plan_sweep(model_cls, model_size_param, compute_budgets, spec=spec,
                      **training_facts(dataset, mode, train_config))
    sweep = SweepPlan(plan, model_cls=model_cls, model_size_param=model_size_param, dataset=dataset,
                      loss_fn=loss_fn, train_config=train_config, eval_dataset=eval_dataset, spec=spec)
    if not train or dataset is None or loss_fn is None:
        return sweep
    return sweep.run(mode=mode, law=law, seed=seed, extrapolate_to=extrapolate_to, callbacks=callbacks,
                     progress=progress, store=store, executor=executor, retry_failed=retry_failed,
                     estimator=estimator, run_timeout=run_timeout)


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
    train_config: TrainConfig | None = None
    eval_dataset: Any = None
    spec: PlanSpec | None = None  # how the plan was made; stored with it in a sweep directory

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
            estimator: str = "vpnls", **run_options: Any) -> Result:
        """Run the plan (:func:`run_sweep`) and fit it; returns a :class:`Result`.

        ``dataset`` and ``loss_fn`` default to the ones the plan was made with;
        ``run_options`` go to :func:`run_sweep` (``train_config``, ``callbacks``, ...); ``estimator``
        to :meth:`Result.from_results`.
        """
        run_options.setdefault("train_config", self.train_config)
        run_options.setdefault("eval_dataset", self.eval_dataset)
        if self.spec is not None:
            run_options.setdefault("model_kwargs", self.spec.model_kwargs)
        results, curves = run_sweep(
            self.plan, self.model_cls, dataset if dataset is not None else self.dataset,
            loss_fn if loss_fn is not None else self.loss_fn, mode=mode, law=law, seed=seed, return_curves=True,
            model_size_param=self.model_size_param, spec=self.spec, **run_options)
        adaptive = self.spec is not None and self.spec.strategy == "adaptive"
        plan = results[[c for c in self.plan.columns if c in results.columns]] if adaptive else self.plan
        if incomplete_runs(results):
            warn(f"find_optimal: {incomplete_runs(results)}", FitWarning)
        return Result.from_results(results, curves=curves, plan=plan, extrapolate_to=extrapolate_to,
                                   spec=self.spec, estimator=estimator)

    @property
    def adaptive(self) -> bool:
        """Whether the plan is an adaptive sweep's start design (more runs are chosen as it runs)."""
        return self.spec is not None and self.spec.strategy == "adaptive"

    def describe(self) -> str:
        """One line: how many runs, over which budgets, and what they spend (for an adaptive sweep, at most)."""
        head = f"{len(self.plan)} runs over {len(self.compute_budgets)} budgets, total {flops(self.total_compute)} FLOPs"
        if not self.adaptive:
            return head
        spec = self.spec
        cap = spec.max_compute if spec.max_compute is not None else spec.points_per_budget * sum(self.compute_budgets)
        target = spec.target_compute if spec.target_compute is not None else 100 * max(self.compute_budgets)
        return (f"adaptive: a start design of {head}; batches of {spec.parallel} run(s) are added until N_opt at "
                f"{flops(target)} FLOPs is known within +-{spec.target_precision:.0%} (95 %) or {flops(cap)} FLOPs "
                "are spent")

    _LEGEND = {"budget": "compute budget C, in FLOPs", "runs": "runs planned at that budget",
               "sizes": "the values of the size knob", "N": "parameters, smallest to largest",
               "D/N": "training tokens per parameter, largest to smallest (D = C / FLOPs per token)"}

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        """The summary, formatted: one row per budget."""
        rows = [[flops(r.Index), str(r.runs), r.sizes, f"{human(r.params_min)}–{human(r.params_max)}",
                 f"{ratio(r.tokens_per_param_max)}–{ratio(r.tokens_per_param_min)}"]
                for r in self.summary().itertuples()]
        header = ["budget", "runs", "sizes" if self.model_size_param is None else f"sizes ({self.model_size_param})",
                  "N", "D/N"]
        return header, rows

    def __repr__(self) -> str:
        return f"SweepPlan({self.describe()})\n{text_table(*self._cells())}"

    def _repr_html_(self) -> str:
        return html_table(*self._cells(), caption=f"SweepPlan: {self.describe()}", legend=self._LEGEND)
