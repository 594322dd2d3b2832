"""The one place each heavy dependency is imported, on first use, with an install hint when it is missing.

``import flops_fit`` stays light (no torch, plotly or scipy); a function that needs one
calls the accessor here. Widgets take ipywidgets from :mod:`flops_fit.widgets._deps`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def torch() -> ModuleType:
    """``torch``, for building models (also on the meta device) and training."""
    try:
        import torch as module
    except ImportError as exc:  # pragma: no cover - torch is a core dependency
        raise ImportError("flops_fit needs PyTorch to build and train models: pip install torch") from exc
    return module


def torch_part(name: str) -> ModuleType:
    """A torch submodule that ``import torch`` does not load, e.g. ``"utils.flop_counter"``."""
    torch()
    return importlib.import_module(f"torch.{name}")


def plotly() -> tuple[Any, Any]:
    """``(plotly.graph_objects, plotly.subplots.make_subplots)``, for the figures."""
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError as exc:  # pragma: no cover - plotly is a core dependency
        raise ImportError("flops_fit's figures need plotly: pip install plotly") from exc
    return go, make_subplots


def plotly_colors() -> ModuleType:
    """``plotly.colors``, for the per-budget colour scale."""
    plotly()
    import plotly.colors as colors

    return colors


def scipy_optimize() -> ModuleType:
    """``scipy.optimize``, for the fits."""
    from scipy import optimize

    return optimize


def scipy_special() -> ModuleType:
    """``scipy.special`` (t quantiles; far lighter to import than scipy.stats)."""
    from scipy import special

    return special


def tracker(name: str) -> ModuleType:
    """``mlflow`` or ``wandb``, the experiment trackers (optional extras), with the extra to install."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"flops_fit's {name} integration needs the {name} package: "
                          f"pip install 'flops_fit[{name}]'") from exc
