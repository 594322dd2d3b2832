"""The optional dependencies of the widgets, checked with an install hint."""

from __future__ import annotations

import importlib.util

_HINT = 'flops_fit\'s widgets need ipywidgets and anywidget: pip install "flops_fit[notebooks]"'


def require_widgets(what: str) -> None:
    """Raise an ImportError naming what to install when ipywidgets or anywidget is missing."""
    missing = [name for name in ("ipywidgets", "anywidget") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"{what}: {_HINT} (missing: {', '.join(missing)})")
