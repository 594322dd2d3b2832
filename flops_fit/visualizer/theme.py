"""The live figures' look in a notebook: see-through backgrounds, and JupyterLab's light or dark theme followed."""

from __future__ import annotations

import colorsys
import functools
from collections.abc import Callable
from typing import Any

from .. import _deps
from ._common import rgb_of

CLEAR = "rgba(0,0,0,0)"  # the page shows through: no white block in a dark notebook

# black, which the figures use for markers and text: light grey on a dark page (not only lifted to mid grey)
_BLACK_ON_DARK = {"black": "#e6e6e6", "#000000": "#e6e6e6"}


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


@functools.lru_cache(maxsize=1024)
def on_dark(colour: str) -> str:
    """``colour`` as drawn on a dark page: black becomes light grey, and a dark colour (lightness under 0.5, as
    the start of Viridis, the smallest budget's purple) is lifted to a lightness between 0.4 and 0.5, its hue and
    saturation kept and darker staying darker. Light colours, named ones and what is not a colour come back as
    given.

    >>> on_dark("black"), on_dark("#000000"), on_dark("rgb(68, 1, 84)"), on_dark("#ffffff"), on_dark("crimson")
    ('#e6e6e6', '#e6e6e6', 'rgb(177, 3, 218)', '#ffffff', 'crimson')
    >>> on_dark("rgba(0, 0, 0, 0.5)")
    'rgba(102, 102, 102, 0.5)'
    """
    if colour in _BLACK_ON_DARK:
        return _BLACK_ON_DARK[colour]
    parsed = rgb_of(colour)
    if parsed is None:
        return colour
    rgb, alpha = parsed
    hue, lightness, saturation = colorsys.rgb_to_hls(*(v / 255 for v in rgb))
    if lightness >= 0.5:
        return colour
    lifted = colorsys.hls_to_rgb(hue, 0.4 + 0.2 * lightness, saturation)
    r, g, b = (round(v * 255) for v in lifted)
    return f"rgb({r}, {g}, {b})" if alpha is None else f"rgba({r}, {g}, {b}, {alpha})"


def theme_colours(dark: bool = False) -> Callable[[str], str] | None:
    """How trace colours change on a ``dark`` page (:func:`on_dark`); None on a light one."""
    return on_dark if dark else None
