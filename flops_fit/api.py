"""find_optimal(): plan, run and fit an IsoFLOP sweep in one call."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._checks import check_budgets, check_choice, check_seed, param_error
from .flops import FlopConvention
from .mock import PlantedLaw, check_law
from .runner import MODES
from .trainer import TrainConfig, sample_pair, tokens_per_sample
from .result import Result, SweepPlan
from .sweep import plan_sweep


def training_facts(dataset: Any, mode: str, train_config: TrainConfig | None) -> dict[str, Any]:
    """What :func:`plan_sweep` reads from the data and training settings of a ``"local"`` sweep: an
    example input (for FLOP conventions), tokens per sample, and the settings that enter each run_id."""
    if mode != "local" or dataset is None:
        return {}
    return {"example_input": sample_pair(dataset, 0, "dataset")[0], "tokens_per_sample": tokens_per_sample(dataset),
            "train_config": train_config or TrainConfig()}


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
    points_per_budget: int = 9,
    tokens_per_param: float = 20.0,
    size_span: float = 100.0,
    size_values: Sequence[int] | None = None,
    size_range: tuple[int, int] | None = None,
    multiple_of: int = 1,
    flop_convention: FlopConvention = "6N",
    model_kwargs: Mapping[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    eval_dataset: Any = None,
    callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
    progress: bool | None = None,
    store: Any = None,
    executor: Any = None,
    retry_failed: bool = False,
) -> Result | SweepPlan:
    """Find the compute-optimal model size for a model family, the Chinchilla way.

    Plans an IsoFLOP sweep (:func:`plan_sweep`), runs it (:func:`run_sweep`), fits
    each budget's minimum (:func:`fit_isoflops`) and power laws across budgets
    (:func:`fit_power_laws`).

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
    points_per_budget, tokens_per_param, size_span, size_values, size_range, multiple_of, flop_convention, model_kwargs
        Passed to :func:`plan_sweep`.
    train_config, eval_dataset, callbacks, progress
        Passed to :func:`run_sweep` for ``mode="local"``.
    store, executor, retry_failed
        Passed to :func:`run_sweep`: keep every finished run in a sweep directory
        (rerunning resumes), run on any ``concurrent.futures.Executor``.

    Returns
    -------
    Result or SweepPlan

    Examples
    --------
    >>> from flops_fit import find_optimal
    >>> from flops_fit.examples import GPT
    >>> result = find_optimal(GPT, "d_model", dataset="unused in mock mode", loss_fn="unused",
    ...                       compute_budgets=[1e17, 1e18, 1e19], mode="mock", seed=0)
    >>> sorted(result.predict(1e21))[:2]
    ['expected_loss', 'expected_loss_high']
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
    if extrapolate_to is not None:
        check_budgets(extrapolate_to, func, "extrapolate_to")
    plan = plan_sweep(
        model_cls, model_size_param, compute_budgets, points_per_budget=points_per_budget,
        tokens_per_param=tokens_per_param, size_span=size_span, size_values=size_values, size_range=size_range,
        multiple_of=multiple_of, flop_convention=flop_convention, model_kwargs=model_kwargs,
        **training_facts(dataset, mode, train_config),
    )
    sweep = SweepPlan(plan, model_cls=model_cls, model_size_param=model_size_param, dataset=dataset,
                      loss_fn=loss_fn, train_config=train_config, eval_dataset=eval_dataset)
    if not train or dataset is None or loss_fn is None:
        return sweep
    return sweep.run(mode=mode, law=law, seed=seed, extrapolate_to=extrapolate_to, callbacks=callbacks,
                     progress=progress, store=store, executor=executor, retry_failed=retry_failed)
