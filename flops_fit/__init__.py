"""flops_fit: compute-optimal model sizes with the IsoFLOP method (Hoffmann et al. 2022).

Stage functions take and return pandas DataFrames::

    plan = plan_sweep(GPT, "d_model", [1e17, 1e18, 1e19])
    results = run_sweep(plan, mode="mock")
    optima = fit_isoflops(results)
    laws = fit_power_laws(optima)

or all at once with :func:`find_optimal`. Importing this package is cheap: torch
and plotly load only when a function needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "find_optimal": "api",
    "plan_sweep": "sweep",
    "count_params": "sweep",
    "SizeSearchError": "sweep",
    "run_sweep": "runner",
    "fit_isoflops": "analyzer",
    "fit_power_laws": "analyzer",
    "snap_budgets": "analyzer",
    "FitWarning": "analyzer",
    "load_results": "store",
    "load": "store",
    "SweepStore": "store",
    "SweepHandle": "runner",
    "gpu_pool": "executors",
    "fit_parametric": "parametric",
    "parametric_frontier": "parametric",
    "bootstrap_parametric": "parametric",
    "fit_envelope": "envelope",
    "bootstrap_envelope": "envelope",
    "bootstrap_isoflops": "bootstrap",
    "diagnose": "diagnostics",
    "flops_per_token": "flops",
    "PlantedLaw": "mock",
    "TrainConfig": "trainer",
    "SweepPlan": "result",
    "Result": "result",
    "plot_isoflops": "visualizer",
    "plot_scaling_laws": "visualizer",
    "plot_loss_curves": "visualizer",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .analyzer import FitWarning, fit_isoflops, fit_power_laws, snap_budgets
    from .api import find_optimal
    from .flops import flops_per_token
    from .mock import PlantedLaw
    from .result import Result, SweepPlan
    from .runner import run_sweep
    from .bootstrap import bootstrap_isoflops
    from .diagnostics import diagnose
    from .envelope import bootstrap_envelope, fit_envelope
    from .executors import gpu_pool
    from .parametric import bootstrap_parametric, fit_parametric, parametric_frontier
    from .runner import SweepHandle
    from .store import SweepStore, load, load_results
    from .trainer import TrainConfig
    from .sweep import SizeSearchError, count_params, plan_sweep
    from .visualizer import plot_isoflops, plot_loss_curves, plot_scaling_laws


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flops_fit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
