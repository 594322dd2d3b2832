"""The live figures' look in a notebook: see-through backgrounds, and JupyterLab's light or dark theme followed."""

from __future__ import annotations

import functools
from typing import Any

from .. import _deps

CLEAR = "rgba(0,0,0,0)"  # the page shows through: no white block in a dark notebook

# colours the figures use that do not read on a dark page, and what to draw instead there
_ON_DARK = {"black": "#e6e6e6", "#000000": "#e6e6e6"}


@functools.lru_cache(maxsize=2)
def _template(dark: bool) -> dict[str, Any]:
    go, _ = _deps.plotly()
    template = go.Figure(layout={"template": "plotly_dark" if dark else "plotly_white"}).layout.template
    template.layout.update(paper_bgcolor=CLEAR, plot_bgcolor=CLEAR)
    return template.to_plotly_json()


def live_template(dark: bool = False) -> dict[str, Any]:
    """``plotly_white`` (light) or ``plotly_dark`` with see-through paper and plot backgrounds, as a layout's
    ``template`` value: on a light page it looks as the static figures do, on a dark one it is not a white block."""
    return _template(bool(dark))


def theme_colours(dark: bool = False) -> dict[str, str]:
    """Trace colours to swap on a ``dark`` page (black markers become light grey); none on a light one."""
    return dict(_ON_DARK) if dark else {}
