"""The widgets' optional dependencies, imported here only, with an install hint when missing."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

from .. import _deps

_HINT = 'flops_fit\'s widgets need ipywidgets and anywidget: pip install "flops_fit[notebooks]"'


def require_widgets(what: str) -> None:
    """Raise an ImportError naming what to install when ipywidgets or anywidget is missing."""
    missing = [name for name in ("ipywidgets", "anywidget") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"{what}: {_HINT} (missing: {', '.join(missing)})")


def widgets(what: str) -> ModuleType:
    """``ipywidgets``, for ``what`` (named in the error when it is missing)."""
    require_widgets(what)
    import ipywidgets

    return ipywidgets


def figure_widget(what: str) -> Any:
    """plotly's ``FigureWidget`` class (an anywidget in plotly 6+)."""
    require_widgets(what)
    go, _ = _deps.plotly()
    return go.FigureWidget


def any_widget(what: str) -> type:
    """``anywidget.AnyWidget``, the base of widgets drawn by their own JavaScript."""
    require_widgets(what)
    import anywidget

    return anywidget.AnyWidget
