"""Number formatting shared by tables and figures."""

from __future__ import annotations


def human(value: float) -> str:
    """1234567 -> '1.23M'; the short form used in tables and hover text.

    >>> human(999_999_999), human(999_600), human(1234), human(12.5)
    ('1B', '1M', '1.23K', '12.5')
    """
    rounded = float(f"{value:.3g}")  # round first, so 999,999,999 becomes 1B rather than 1e+03M
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(rounded) >= scale:
            return f"{rounded / scale:.3g}{suffix}"
    return f"{rounded:.3g}"


def budget_label(value: float) -> str:
    """1e17 -> '1e17', 2.5e18 -> '2.5e18': how FLOP budgets are written in legends.

    >>> budget_label(1e17), budget_label(2.5e18), budget_label(3e11)
    ('1e17', '2.5e18', '3e11')
    """
    return f"{value:.3g}".replace("e+", "e").replace("e0", "e")
