"""run_sweep(): execute a plan and return the results frame (plan + outcome)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from ._checks import check_choice, check_seed, param_error
from .mock import CURVE_COLUMNS, PlantedLaw, check_law, simulate_run
from .trainer import Callback, TrainConfig

logger = logging.getLogger(__name__)

MODES = ("mock", "local")
RESULT_COLUMNS = ["loss", "tokens_trained", "epochs", "steps", "wall_time", "tokens_per_second", "flops_per_second",
                  "utilisation", "device", "error"]
_PLAN_REQUIRED = ["run_id", "budget", "size", "params", "flops_per_token", "tokens"]


def run_sweep(
    plan: pd.DataFrame,
    model_cls: Callable[..., Any] | None = None,
    dataset: Any = None,
    loss_fn: Callable[..., Any] | None = None,
    *,
    mode: str = "mock",
    law: PlantedLaw | None = None,
    seed: int = 0,
    return_curves: bool = False,
    train_config: TrainConfig | None = None,
    eval_dataset: Any = None,
    model_size_param: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool | None = None,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Run every planned run and return the results frame.

    Parameters
    ----------
    plan : pandas.DataFrame
        As returned by :func:`plan_sweep` (at least ``run_id, budget, size, params,
        flops_per_token, tokens``).
    model_cls : callable
        The model factory (``mode="local"``); built for real, one run at a time.
    dataset : torch Dataset of (inputs, targets)
        Training data (``mode="local"``), cycled when a run needs more than it holds.
    loss_fn : callable
        ``loss_fn(model(inputs), targets) -> scalar tensor`` (``mode="local"``).
    mode : {"mock", "local"}
        ``"mock"`` simulates each run from ``law``; ``"local"`` trains on this machine
        (cuda, then mps, then cpu).
    law : PlantedLaw, optional
        The law mock mode simulates (default ``PlantedLaw()``, Chinchilla's fit).
    seed : int, default 0
        Makes mock noise reproducible; each run's noise depends on the seed and its
        ``run_id`` only. (Local training takes its seed from ``train_config``.)
    return_curves : bool, default False
        Also return the curves frame (``run_id, step, tokens, flops, loss, lr``).
    train_config : TrainConfig, optional
        Optimiser, schedule and evaluation settings for ``mode="local"``.
    eval_dataset : torch Dataset, optional
        Held-out data; by default the last ``train_config.eval_fraction`` of ``dataset``.
    model_size_param, model_kwargs
        How to build each size; default: what :func:`plan_sweep` recorded in ``plan.attrs``.
    callbacks : sequence of callables
        Each receives every trainer event (dicts with ``type`` ``run_start``,
        ``step``, ``eval`` or ``run_end``).
    progress : bool, optional
        Show tqdm progress bars; by default when local training runs in a terminal.

    Returns
    -------
    results : pandas.DataFrame
        The plan's columns with ``status`` set (``completed``, ``diverged`` or
        ``failed``), plus ``loss, tokens_trained, epochs, steps, wall_time,
        tokens_per_second, flops_per_second, utilisation, device, error``; ``flops``
        is what was spent.
    curves : pandas.DataFrame
        Only with ``return_curves=True``.

    Examples
    --------
    >>> from flops_fit import plan_sweep
    >>> from flops_fit.examples import GPT
    >>> plan = plan_sweep(GPT, "d_model", [1e16, 1e17], model_kwargs={"vocab_size": 256})
    >>> results = run_sweep(plan, mode="mock", seed=0)
    >>> results["status"].unique().tolist()
    ['completed']
    """
    func = "run_sweep"
    mode = check_choice(mode, "mode", func, MODES)
    _check_plan(plan, func)
    law = check_law(law, func)
    seed = check_seed(seed, func)
    if mode == "mock":
        outcomes, curves = _simulate(plan, law, seed)
    else:
        outcomes, curves = _train(plan, model_cls, dataset, loss_fn, train_config, eval_dataset,
                                  model_size_param, model_kwargs, callbacks, progress)
    results = plan.copy()
    outcome = pd.DataFrame(outcomes, index=results.index, columns=["status", *RESULT_COLUMNS])
    for column in outcome.columns:
        results[column] = outcome[column]
    results["flops"] = results["flops_per_token"] * results["tokens_trained"]
    results.attrs.update(plan.attrs, mode=mode)
    if mode == "mock":
        results.attrs.update(seed=seed, law=law)
    logger.info("%s sweep: %d runs, %s", mode, len(results), results["status"].value_counts().to_dict())
    if return_curves:
        return results, pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    return results


def _check_plan(plan: object, func: str) -> None:
    if not isinstance(plan, pd.DataFrame):
        raise param_error("plan", func, "a DataFrame from plan_sweep()", type(plan).__name__)
    missing = [c for c in _PLAN_REQUIRED if c not in plan.columns]
    if missing:
        raise param_error("plan", func, f"a DataFrame with columns {_PLAN_REQUIRED}", list(plan.columns),
                          f"Missing: {missing}. Build it with plan_sweep().")
    if plan.empty:
        raise param_error("plan", func, "a plan with at least one run", "an empty DataFrame")
    if plan["run_id"].duplicated().any():
        dupes = plan.loc[plan["run_id"].duplicated(), "run_id"].tolist()
        raise param_error("plan", func, "a plan with unique run_id values", dupes[:5], "Drop the duplicated rows.")


def _simulate(plan: pd.DataFrame, law: PlantedLaw, seed: int) -> tuple[list[dict], list[pd.DataFrame]]:
    outcomes, curves = [], []
    for row in plan.itertuples(index=False):
        start = time.perf_counter()
        loss, curve = simulate_run(row.run_id, row.params, int(row.tokens), row.flops_per_token, law, seed)
        outcomes.append({"status": "completed", "loss": loss, "tokens_trained": int(row.tokens),
                         "steps": float("nan"), "epochs": float("nan"), "wall_time": time.perf_counter() - start,
                         "device": "mock"})
        curves.append(curve)
    return outcomes, curves


def _train(
    plan: pd.DataFrame, model_cls: Any, dataset: Any, loss_fn: Any, train_config: TrainConfig | None,
    eval_dataset: Any, model_size_param: str | None, model_kwargs: Mapping[str, Any] | None,
    callbacks: Sequence[Callback], progress: bool | None,
) -> tuple[list[dict], list[pd.DataFrame]]:
    import torch

    from .trainer import check_setup, split_eval, train_run

    func = "run_sweep"
    if not callable(model_cls):
        raise param_error("model_cls", func, "the model factory the plan was made for (mode='local' trains it)",
                          model_cls)
    if dataset is None or loss_fn is None:
        raise param_error("dataset" if dataset is None else "loss_fn", func, "given when mode='local'", None,
                          "Pass the training data and the loss, or use mode='mock'.")
    config = train_config if train_config is not None else TrainConfig()
    if not isinstance(config, TrainConfig):
        raise param_error("train_config", func, "a flops_fit.TrainConfig", config)
    param = model_size_param or plan.attrs.get("model_size_param")
    if not param:
        raise param_error("model_size_param", func, "the plan's size knob (plan.attrs lost it)", None)
    kwargs = dict(model_kwargs if model_kwargs is not None else plan.attrs.get("model_kwargs", {}))
    train_data, eval_data = split_eval(dataset, eval_dataset, config.eval_fraction)

    def build(size: int) -> Any:
        torch.manual_seed(config.seed)  # the same init for a size whatever ran before it
        return model_cls(**{**kwargs, param: int(size)})

    smallest = plan.loc[plan["params"].idxmin(), "size"]
    check_setup(build(smallest), train_data, eval_data, loss_fn, config)

    show = progress if progress is not None else sys.stderr.isatty()
    bars = None
    if show:
        from .progress import TqdmProgress

        bars = TqdmProgress(len(plan))
    listeners = [*callbacks, *([bars] if bars else [])]
    outcomes, curves = [], []
    try:
        for row in plan.itertuples(index=False):
            start = time.perf_counter()
            try:
                outcome, curve = train_run(
                    build(row.size), train_data, eval_data, loss_fn, tokens=int(row.tokens),
                    flops_per_token=float(row.flops_per_token), config=config, run_id=row.run_id,
                    callbacks=listeners)
            except Exception as exc:  # a failed run is recorded; the sweep goes on
                logger.warning("run %s (size %s) failed: %s", row.run_id, row.size, exc)
                outcome = {"status": "failed", "loss": float("nan"), "tokens_trained": 0,
                           "error": f"{type(exc).__name__}: {exc}", "wall_time": time.perf_counter() - start}
                curve = pd.DataFrame(columns=CURVE_COLUMNS)
                for listener in listeners:
                    listener({"type": "run_end", "run_id": row.run_id, **outcome})
            outcomes.append(outcome)
            curves.append(curve)
    finally:
        if bars is not None:
            bars.close()
    return outcomes, curves
