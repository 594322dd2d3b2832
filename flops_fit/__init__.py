"""flops_fit: compute-optimal model sizes with the IsoFLOP method (Hoffmann et al. 2022).

Stage functions take and return pandas DataFrames::

    plan = plan_sweep(GPT, "d_model", [1e17, 1e18, 1e19])
    results = run_sweep(plan, mode="mock")
    fit = fit_vpnls(results)              # the curves' shape: the loss law fitted to every run
    optima = vpnls_optima(fit, results)   # each budget's minimum, in that shape
    laws = vpnls_laws(optima)             # power laws across budgets, with intervals

(the default estimator; Approach 2's parabolas are ``fit_power_laws(fit_isoflops(results))``),

or all at once with :func:`find_optimal`. Importing this package is cheap: torch
and plotly load only when a function needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "find_optimal": "api",
    "SweepPlan": "api",
    "PlanSpec": "spec",
    "plan_sweep": "planning.planner",
    "count_params": "planning.sizes",
    "SizeSearchError": "errors",
    "FitWarning": "errors",
    "CannotFitError": "errors",
    "SweepIncomplete": "errors",
    "run_sweep": "runner",
    "SweepHandle": "handle",
    "fit_isoflops": "approaches.isoflop",
    "bootstrap_isoflops": "approaches.isoflop",
    "fit_power_laws": "approaches.laws",
    "fit_vpnls": "approaches.vpnls",
    "vpnls_laws": "approaches.isoflop_shape",
    "vpnls_optima": "approaches.isoflop_shape",
    "bootstrap_vpnls": "approaches.isoflop_shape",
    "fit_parametric": "approaches.parametric",
    "parametric_frontier": "approaches.frontier",
    "bootstrap_parametric": "approaches.parametric",
    "fit_envelope": "approaches.envelope",
    "bootstrap_envelope": "approaches.envelope",
    "diagnose": "approaches.diagnostics",
    "snap_budgets": "frames",
    "load_results": "frames",
    "load": "result",
    "Result": "result",
    "SweepStore": "store",
    "gpu_pool": "executors",
    "process_pool": "executors",
    "flops_per_token": "flops",
    "PlantedLaw": "mock",
    "TrainConfig": "training.config",
    "plot_isoflops": "visualizer",
    "plot_scaling_laws": "visualizer",
    "plot_loss_curves": "visualizer",
    "plot_backtest": "visualizer",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .api import SweepPlan, find_optimal
    from .approaches.diagnostics import diagnose
    from .approaches.envelope import bootstrap_envelope, fit_envelope
    from .approaches.isoflop import bootstrap_isoflops, fit_isoflops
    from .approaches.laws import fit_power_laws
    from .approaches.frontier import parametric_frontier
    from .approaches.parametric import bootstrap_parametric, fit_parametric
    from .approaches.isoflop_shape import bootstrap_vpnls, vpnls_laws, vpnls_optima
    from .approaches.vpnls import fit_vpnls
    from .errors import CannotFitError, FitWarning, SizeSearchError, SweepIncomplete
    from .executors import gpu_pool
    from .flops import flops_per_token
    from .frames import load_results, snap_budgets
    from .handle import SweepHandle
    from .mock import PlantedLaw
    from .planning.planner import plan_sweep
    from .planning.sizes import count_params
    from .result import Result, load
    from .runner import run_sweep
    from .spec import PlanSpec
    from .store import SweepStore
    from .training.config import TrainConfig
    from .visualizer import plot_backtest, plot_isoflops, plot_loss_curves, plot_scaling_laws


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flops_fit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
