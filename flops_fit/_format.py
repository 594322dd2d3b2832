"""How numbers are written, in one place: counts, FLOPs, losses, ratios, intervals, and the tables built from them.

Every repr and table formats through these, so a number reads the same wherever it appears:
counts (N, D) with SI suffixes (``2.98M``, ``306B``), FLOP counts in scientific notation
(``1.00e+17``, in tables, notes and legends alike), losses to 3 decimals, exponents to 3,
ratios such as D/N to 1. :class:`ReadableFrame` is a DataFrame that a notebook shows with these
formats and a legend of its columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Any, ClassVar

import pandas as pd

DASH = "–"  # between an interval's bounds


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def human(value: float) -> str:
    """1234567 -> '1.23M'; a count (parameters, tokens) with an SI suffix, as tables and hover text write it.

    >>> human(999_999_999), human(999_600), human(1234), human(12.5), human(306e9)
    ('1B', '1M', '1.23K', '12.5', '306B')
    """
    rounded = float(f"{value:.3g}")  # round first, so 999,999,999 becomes 1B rather than 1e+03M
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(rounded) >= scale:
            return f"{rounded / scale:.3g}{suffix}"
    return f"{rounded:.3g}"


count = human  # the name the formatters below go by


def flops(value: float) -> str:
    """1e17 -> '1.00e+17': a FLOP count (a budget, a total) in tables and reprs.

    >>> flops(1e17), flops(5.76e23)
    ('1.00e+17', '5.76e+23')
    """
    return f"{float(value):.2e}"


def loss(value: float) -> str:
    """2.23751 -> '2.238': a loss, to 3 decimals."""
    return f"{float(value):.3f}"


def exponent(value: float) -> str:
    """0.49876 -> '0.499': a scaling exponent, to 3 decimals."""
    return f"{float(value):.3f}"


def ratio(value: float) -> str:
    """20.04 -> '20.0': a ratio such as tokens per parameter, to 1 decimal (2 significant digits below 1).

    >>> ratio(20.04), ratio(1877.09), ratio(0.2345)
    ('20.0', '1877.1', '0.23')
    """
    value = float(value)
    return f"{value:.1f}" if abs(value) >= 1 or value == 0 else f"{value:.2g}"


def number(value: Any) -> str:
    """Any other cell: floats to 4 significant digits, missing values blank, the rest as ``str``.

    >>> number(1.234567), number(float("nan")), number(7), number("x")
    ('1.235', '', '7', 'x')
    """
    if _missing(value):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def interval(value: float, low: float, high: float, fmt: Callable[[float], str] = number) -> str:
    """'v (low–high)', or 'v' alone when the bounds are missing.

    >>> interval(2.5e9, 2e9, 3e9, human), interval(0.5, float("nan"), float("nan"), exponent)
    ('2.5B (2B–3B)', '0.500')
    """
    if _missing(value):
        return ""
    if _missing(low) or _missing(high):
        return fmt(value)
    return f"{fmt(value)} ({fmt(low)}{DASH}{fmt(high)})"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to line up, as plain text."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, caption: str = "",
               legend: dict[str, str] | None = None) -> str:
    """A small HTML table with a caption above and a legend of its columns below (text is escaped)."""
    head = "".join(f"<th style='text-align:right'>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='text-align:right'>{escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    cap = f"<caption style='text-align:left'>{escape(caption)}</caption>" if caption else ""
    notes = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in (legend or {}).items())
    notes = f"<ul style='font-size:smaller;margin-top:0.3em'>{notes}</ul>" if notes else ""
    return f"<div><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}</div>"


class ReadableFrame(pd.DataFrame):
    """A DataFrame that displays readably: formatted numbers, a caption, a legend of its columns.

    Its data and columns are the DataFrame's (use it as one); only the display differs. Anything
    derived from it (a slice, a copy, ``set_index``) is a plain DataFrame. Subclasses say how: ``_title``,
    ``_legend`` (column -> meaning), ``_empty`` (what an empty table means), and :meth:`_cells`.
    """

    _title: ClassVar[str] = ""
    _legend: ClassVar[dict[str, str]] = {}
    _empty: ClassVar[str] = "no rows"

    @property
    def _constructor(self) -> type[pd.DataFrame]:  # type: ignore[override]
        return pd.DataFrame

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        """The header and rows to display, formatted."""
        header = [str(c) for c in self.columns]
        return header, [[number(v) for v in row] for row in self.itertuples(index=False)]

    def _caption(self) -> str:
        return self._title

    def __repr__(self) -> str:
        if self.empty:
            return f"{self._caption()}: {self._empty}"
        header, rows = self._cells()
        legend = "\n".join(f"  {k}: {v}" for k, v in self._shown_legend(header).items())
        return f"{self._caption()}\n{text_table(header, rows)}" + (f"\n{legend}" if legend else "")

    def _repr_html_(self) -> str:  # type: ignore[override]
        if self.empty:
            return f"<div><b>{escape(self._caption())}</b>: {escape(self._empty)}</div>"
        header, rows = self._cells()
        return html_table(header, rows, caption=self._caption(),
                          legend=self._shown_legend(header))

    def _shown_legend(self, header: Sequence[str]) -> dict[str, str]:
        """The legend's entries for the columns shown (a key may name several: ``"A, alpha"``)."""
        return {k: v for k, v in self._legend.items() if any(part in header for part in k.split(", "))}
