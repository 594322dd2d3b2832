"""Approach 3 on the Chinchilla data, against the published replication (Besiroglu et al. 2024).

Data: the 245 runs Epoch AI digitised from Hoffmann et al. 2022, Figure 4, in
../shared/data (not shipped with the package); the 5 highest-loss points are
dropped and D = C / (6 N), as in the replication. Prints flops_fit's fit, its time,
a 1,000-resample bootstrap interval on a, and (with --reference) the reference
procedure: scipy L-BFGS from a grid of 4,500 starts.

Run: .venv/bin/python benchmarks/bench_parametric.py [--data PATH] [--reference]
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from flops_fit import bootstrap_parametric, fit_parametric
from flops_fit.approaches.parametric import _data, _refine

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "chinchilla_epoch_svg_extracted.csv"
PUBLISHED = {  # Besiroglu et al. 2024 (Epoch's estimate) and their 4,500-start grid
    "Epoch estimate": {"E": 1.817, "A": 482.0, "B": 2085.4, "alpha": 0.3478, "beta": 0.3658, "a": 0.513},
    "4,500-start grid": {"E": 1.8172, "A": 477.8, "B": 2143.9, "alpha": 0.3473, "beta": 0.3672, "a": 0.513},
}


def load(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path).sort_values("loss").iloc[:-5]  # drop the 5 highest-loss points
    runs = pd.DataFrame({"params": raw["Model Size"].to_numpy(), "loss": raw["loss"].to_numpy()})
    runs["tokens"] = raw["Training FLOP"].to_numpy() / (6 * runs["params"])
    return runs


def reference(runs: pd.DataFrame) -> tuple[dict[str, float], float]:
    """Hoffmann et al.'s procedure as replicated: L-BFGS from every point of a 4,500-point grid."""
    data = _data(runs, "reference")
    # Hoffmann et al. 2022, App. D.2: alpha, beta in {0, .5, ..., 2}, e in {-1, -.5, ..., 1}, a, b in {0, 5, ..., 25}
    grid = itertools.product(np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5), np.arange(-1, 1.5, 0.5),
                             np.arange(0, 30, 5), np.arange(0, 30, 5))  # 5 * 5 * 5 * 6 * 6 = 4,500 starts
    start = time.perf_counter()
    best = None
    for alpha, beta, e, a, b in grid:
        fit = _refine(np.array([a, b, e, alpha, beta]), data, 1e-3)
        if best is None or fit.fun < best.fun:
            best = fit
    a, b, e, alpha, beta = best.x
    return {"E": math.exp(e), "A": math.exp(a), "B": math.exp(b), "alpha": alpha, "beta": beta,
            "a": beta / (alpha + beta)}, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--reference", action="store_true", help="also run the 4,500-start reference (minutes)")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"skipped: the Chinchilla data is not at {args.data} (it lives in the project's shared/ folder, "
              "not in the package); pass --data PATH")
        return
    runs = load(args.data)
    start = time.perf_counter()
    law = fit_parametric(runs).iloc[0]
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    draws = bootstrap_parametric(runs, n_resamples=1000, seed=0)
    boot = time.perf_counter() - start
    rows = {name: values for name, values in PUBLISHED.items()}
    rows[f"flops_fit ({elapsed:.2f} s)"] = {k: float(law[k]) for k in ("E", "A", "B", "alpha", "beta", "a")}
    if args.reference:
        fit, seconds = reference(runs)
        rows[f"reference, 4,500 L-BFGS starts here ({seconds:.0f} s)"] = fit
    print(f"{len(runs)} runs\n")
    print("| fit | E | A | B | alpha | beta | a |")
    print("|---|---|---|---|---|---|---|")
    for name, v in rows.items():
        print(f"| {name} | {v['E']:.4f} | {v['A']:.1f} | {v['B']:.1f} | {v['alpha']:.4f} | {v['beta']:.4f} "
              f"| {v['a']:.4f} |")
    lo, hi = draws["a"].quantile([0.025, 0.975])
    print(f"\n95% bootstrap interval of a: ({lo:.3f}, {hi:.3f}) from 1,000 resamples in {boot:.1f} s "
          "(published: about (0.48, 0.56))")


if __name__ == "__main__":
    main()
