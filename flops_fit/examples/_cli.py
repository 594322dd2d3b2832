"""What the example scripts share: their command line and their report."""

from __future__ import annotations

import argparse
import time

import flops_fit as ff


def parse(doc: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--real", action="store_true", help="train for real instead of simulating")
    parser.add_argument("--budgets", type=float, nargs="+", default=None, help="compute budgets in FLOPs")
    parser.add_argument("--out", default="flops_fit_output", help="directory for the HTML figures")
    return parser.parse_args(argv)


def report(result: ff.Result, started: float, out: str) -> None:
    """Print the Chinchilla table and write the figures."""
    print(f"{len(result.results)} runs in {time.perf_counter() - started:.1f} s\n")
    print(result.chinchilla_table())
    result.plot(html_dir=out)
    print(f"\nFigures in {out}/")
