"""Jupyter widgets: plan a sweep, run it live, watch the IsoFLOP curves grow.

Needs the notebooks extra (``pip install "flops_fit[notebooks]"``). The widgets only
lay out controls and draw what :mod:`flops_fit.live` computes; nothing here fits.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"LiveFigure": "figure", "SweepMonitor": "monitor", "SweepDesigner": "designer"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flops_fit.widgets' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
