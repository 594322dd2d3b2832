"""What the figures share: budget colours and turning frame columns into plain arrays and hover texts."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import _deps
from .._format import human


@functools.lru_cache(maxsize=64)
def _viridis(count: int) -> tuple[str, ...]:
    """``count`` colours from Viridis, evenly spaced from dark to 0.8 (past 0.8 is too pale on white)."""
    spots = np.linspace(0.0, 0.8, count) if count > 1 else [0.0]
    return tuple(_deps.plotly_colors().sample_colorscale("Viridis", list(spots)))


def _budget_colours(budgets: Sequence[float]) -> dict[float, str]:
    ordered = sorted(budgets)
    return dict(zip(ordered, _viridis(len(ordered))))


_RGB = re.compile(r"^\s*rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(?:,\s*([\d.]+)\s*)?\)\s*$")
_HEX = re.compile(r"^#([0-9a-fA-F]{6})$")


def rgb_of(colour: str) -> tuple[tuple[float, float, float], str | None] | None:
    """``colour``'s red, green and blue (0-255) and its alpha as written (None without one), for ``rgb(...)``,
    ``rgba(...)`` and ``#rrggbb``; None for anything else (a named colour).

    >>> rgb_of("rgba(68, 1, 84, 0.5)"), rgb_of("#ff0080"), rgb_of("black")
    (((68.0, 1.0, 84.0), '0.5'), ((255.0, 0.0, 128.0), None), None)
    """
    found = _RGB.match(colour)
    if found:
        r, g, b = (float(v) for v in found.groups()[:3])
        return (r, g, b), found.group(4)
    if _HEX.match(colour):
        r, g, b = (float(int(colour[i:i + 2], 16)) for i in (1, 3, 5))
        return (r, g, b), None
    return None


def headed(title: str, detail: str) -> str:
    """A figure title in two lines: ``title``, and ``detail`` under it in smaller type. One long line was cut
    off in a half-width cell; plotly does not wrap titles itself.

    >>> headed("IsoFLOP curves", "stars mark each budget's located minimum")
    "IsoFLOP curves<br><sup>stars mark each budget's located minimum</sup>"
    """
    return f"{title}<br><sup>{detail}</sup>"


def _floats(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=float)


def _by_budget(frame: pd.DataFrame, *columns: str) -> Callable[[float], dict[str, np.ndarray]]:
    """A function of a budget that gives ``frame``'s ``columns`` (as arrays) on that budget's rows."""
    budgets = frame["budget"].to_numpy(dtype=float)
    arrays = {c: frame[c].to_numpy() for c in columns}
    return lambda budget: {c: a[budgets == budget] for c, a in arrays.items()}


def _hover(*columns: Sequence[str]) -> np.ndarray:
    """Hover texts as ``customdata``: a row per point, a column per text (``%{customdata[i]}``)."""
    return np.stack([np.asarray(c, dtype=object) for c in columns], axis=-1)


def _human(values: Sequence[float]) -> list[str]:
    return [human(v) for v in values]
