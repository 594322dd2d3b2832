"""run_sweep(): execute a plan and return the results frame (plan + outcome)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from ._checks import check_choice, check_seed, param_error
from .mock import CURVE_COLUMNS, PlantedLaw, check_law, simulate_run

logger = logging.getLogger(__name__)

MODES = ("mock",)
RESULT_COLUMNS = ["loss", "tokens_trained", "epochs", "wall_time", "error"]
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
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Run every planned run and return the results frame.

    Parameters
    ----------
    plan : pandas.DataFrame
        As returned by :func:`plan_sweep` (at least ``run_id, budget, size, params,
        flops_per_token, tokens``).
    model_cls, dataset, loss_fn
        The model factory, data and loss; not used in mock mode.
    mode : {"mock"}
        ``"mock"`` simulates each run from ``law``; nothing is trained.
    law : PlantedLaw, optional
        The law mock mode simulates (default ``PlantedLaw()``, Chinchilla's fit).
    seed : int, default 0
        Makes mock noise reproducible; each run's noise depends on the seed and
        its ``run_id`` only, so it does not change when runs are reordered.
    return_curves : bool, default False
        Also return the curves frame (``run_id, step, tokens, flops, loss, lr``).

    Returns
    -------
    results : pandas.DataFrame
        The plan's columns with ``status`` set, plus ``loss, tokens_trained,
        epochs, wall_time, error``; ``flops`` is what was actually spent.
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
    law = check_law(law, func)
    seed = check_seed(seed, func)

    results = plan.copy()
    outcomes, curves = [], []
    for row in plan.itertuples(index=False):
        start = time.perf_counter()
        loss, curve = simulate_run(row.run_id, row.params, int(row.tokens), row.flops_per_token, law, seed)
        outcomes.append({"loss": loss, "tokens_trained": int(row.tokens), "epochs": float("nan"),
                         "wall_time": time.perf_counter() - start, "error": None})
        curves.append(curve)
    outcome = pd.DataFrame(outcomes, index=results.index)
    for column in RESULT_COLUMNS:
        results[column] = outcome[column]
    results["flops"] = results["flops_per_token"] * results["tokens_trained"]
    results["status"] = "completed"
    results.attrs.update(plan.attrs, mode=mode, seed=seed, law=law)
    logger.info("mock sweep: %d runs simulated", len(results))
    if return_curves:
        return results, pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    return results
