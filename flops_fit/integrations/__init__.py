"""Experiment trackers, both ways: callbacks that log a sweep's runs, readers that bring them back.

``MLflowCallback`` and ``WandbCallback`` go in ``callbacks=`` of :func:`~flops_fit.run_sweep`,
:func:`~flops_fit.find_optimal` or the sweep designer; ``load_results(mlflow=...)`` and
``load_results(wandb=...)`` read the runs back. Each needs its optional extra
(``pip install 'flops_fit[mlflow]'`` or ``'flops_fit[wandb]'``); importing this package
imports neither.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"MLflowCallback": "mlflow", "WandbCallback": "wandb", "read_mlflow": "mlflow", "read_wandb": "wandb"}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .mlflow import MLflowCallback, read_mlflow
    from .wandb import WandbCallback, read_wandb


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flops_fit.integrations' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
