"""Adaptive against fixed sweeps: does every budget get bracketed, and what does a given precision cost? (mock)

The sweep is the one issues 12 and 13 measured: budgets 1e18..1e22, a 24-layer GPT over d_model
(multiple_of=16), Chinchilla's law planted in mock mode with 0.5 % noise, precision judged at 1e24
(100x the largest budget). "Precision" is what the adaptive strategy stops on: the half-width of the
95 % interval of N_opt at 1e24 over N_opt. "fixed" is strategy="fixed" (9 sizes a budget over a
100x span about the prior); "adaptive" is strategy="adaptive" with parallel=5.

Table 1 (goal: every budget bracketed in >= 98 % of seeds with the prior 10x off either way):
tokens_per_param 2 and 200 are the prior 10x off; 0.2 and 2000 put the prior's N_opt about 10x off
as well (the prior's D/N 100x off). A budget is bracketed when its lowest measured loss has a
measured size on each side and the fitted optimum lies inside its sizes; "runs" and "FLOPs" are
medians (FLOPs as a fraction of the fixed design's).

Table 2 (goal: median cost <= 1/3 of the fixed design's): per seed, the precision the fixed design
reaches, then an adaptive sweep told to reach it (target_precision = that, below 1); the FLOPs it
spent over the fixed design's. Coverage: how often each 95 % interval holds the planted N_opt.

Table 3 (goal: no budget lost): the alpha/beta = 3 law of issue 12 (alpha 0.45, beta 0.15), whose
optimum is far from 20 tokens per parameter; budgets whose minimum was not located, fixed and adaptive, on
the sweep above and on the quickstart's GPT (flops_fit.examples.GPT as it comes) at 1e15..1e17, where the
prior's N_opt is 6-17x too small and the fixed design loses budgets.

Run: .venv/bin/python benchmarks/bench_adaptive.py [--seeds 50]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import pandas as pd

from flops_fit import PlantedLaw, Result, find_optimal
from flops_fit.examples import GPT

BUDGETS = [1e18, 1e19, 1e20, 1e21, 1e22]
TARGET = 1e24
SETUP = {"model_kwargs": {"n_layer": 24}, "multiple_of": 16, "extrapolate_to": [TARGET]}
CHINCHILLA = PlantedLaw()
STEEP = PlantedLaw(A=41900, B=410.7, alpha=0.45, beta=0.15)  # alpha/beta = 3, as issue 12 measured


SMALL = [1e15, 1e16, 1e17]


def sweep(law: PlantedLaw, seed: int, strategy: str, budgets: list[float] = BUDGETS, **options: object) -> Result:
    setup = SETUP if budgets == BUDGETS else {"extrapolate_to": [100 * max(budgets)]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return find_optimal(GPT, "d_model", "mock data", "mock loss", budgets, mode="mock", law=law, seed=seed,
                            strategy=strategy, **({"parallel": 5} if strategy == "adaptive" else {}), **setup,
                            **options)


def precision(result: Result, target: float = TARGET) -> float:
    if result.laws.empty:
        return math.inf
    p = result.predict(target)
    value = (p["optimal_params_high"] - p["optimal_params_low"]) / (2 * p["optimal_params"])
    return float(value) if math.isfinite(value) else math.inf


def covered(result: Result, law: PlantedLaw) -> bool:
    if result.laws.empty:
        return False
    p = result.predict(TARGET)
    return bool(p["optimal_params_low"] <= law.optimal_params(TARGET) <= p["optimal_params_high"])


def bracketed(result: Result, budgets: list[float] = BUDGETS) -> int:
    """How many of ``budgets`` have measured sizes either side of their lowest loss and the fitted optimum inside."""
    done = result.results[result.results["status"] == "completed"]
    optima = result.optima.set_index("budget")
    count = 0
    for budget in budgets:
        means = done[done["budget"] == budget].groupby("params")["loss"].mean().sort_index()
        low = int(np.argmin(means.to_numpy())) if len(means) else 0
        if 0 < low < len(means) - 1 and budget in optima.index and bool(optima.loc[budget, "usable"]):
            count += 1
    return count


def cost(result: Result) -> float:
    return float(result.results["flops"].sum())


def table_bracketing(seeds: int, fixed_cost: float) -> pd.DataFrame:
    rows = []
    for ratio in (0.2, 2.0, 20.0, 200.0, 2000.0):
        for strategy in ("fixed", "adaptive"):
            found = []
            for seed in range(seeds):
                try:
                    result = sweep(CHINCHILLA, seed, strategy, tokens_per_param=ratio)
                except Exception as exc:  # a plan that cannot be made counts as nothing bracketed
                    found.append((0, 0, math.nan, type(exc).__name__))
                    continue
                found.append((bracketed(result), len(result.results), cost(result) / fixed_cost, ""))
            all_in = [f[0] == len(BUDGETS) for f in found]
            rows.append({"tokens_per_param": ratio, "strategy": strategy,
                         "every budget bracketed": f"{np.mean(all_in):.0%}",
                         "budgets bracketed (mean)": f"{np.mean([f[0] for f in found]):.2f}",
                         "runs": int(np.median([f[1] for f in found])),
                         "FLOPs / fixed": f"{np.nanmedian([f[2] for f in found]):.2f}",
                         "errors": ", ".join(sorted({f[3] for f in found if f[3]}))})
    return pd.DataFrame(rows)


def table_cost(seeds: int) -> pd.DataFrame:
    rows = []
    for seed in range(seeds):
        fixed = sweep(CHINCHILLA, seed, "fixed")
        goal = precision(fixed)
        adaptive = sweep(CHINCHILLA, seed, "adaptive", target_precision=min(goal, 0.99))
        reached = precision(adaptive)
        rows.append({"seed": seed, "fixed precision": goal, "adaptive precision": reached,
                     "reached": reached <= goal, "FLOPs ratio": cost(adaptive) / cost(fixed),
                     "runs fixed": len(fixed.results), "runs adaptive": len(adaptive.results),
                     "fixed covers": covered(fixed, CHINCHILLA), "adaptive covers": covered(adaptive, CHINCHILLA),
                     "fixed |error|": abs(fixed.predict(TARGET)["optimal_params"] / CHINCHILLA.optimal_params(TARGET) - 1),
                     "adaptive |error|": abs(adaptive.predict(TARGET)["optimal_params"]
                                             / CHINCHILLA.optimal_params(TARGET) - 1)})
    per_seed = pd.DataFrame(rows)
    return pd.DataFrame([{
        "seeds": seeds,
        "median FLOPs ratio": f"{per_seed['FLOPs ratio'].median():.2f}",
        "ratio <= 1/3": f"{(per_seed['FLOPs ratio'] <= 1 / 3).mean():.0%}",
        "precision reached": f"{per_seed['reached'].mean():.0%}",
        "median precision fixed / adaptive": f"{per_seed['fixed precision'].median():.3f} / "
                                             f"{per_seed['adaptive precision'].median():.3f}",
        "median runs fixed / adaptive": f"{per_seed['runs fixed'].median():.0f} / {per_seed['runs adaptive'].median():.0f}",
        "95 % coverage fixed / adaptive": f"{per_seed['fixed covers'].mean():.0%} / {per_seed['adaptive covers'].mean():.0%}",
        "median |error| fixed / adaptive": f"{per_seed['fixed |error|'].median():.1%} / "
                                           f"{per_seed['adaptive |error|'].median():.1%}",
    }])


def table_steep(seeds: int) -> pd.DataFrame:
    rows = []
    for name, budgets in (("1e18..1e22, 24 layers", BUDGETS), ("1e15..1e17, quickstart GPT", SMALL)):
        for strategy in ("fixed", "adaptive"):
            lost, spent, prec = [], [], []
            for seed in range(seeds):
                result = sweep(STEEP, seed, strategy, budgets)
                lost.append(len(budgets) - bracketed(result, budgets))
                spent.append(cost(result))
                prec.append(precision(result, 100 * max(budgets)))
            rows.append({"sweep": name, "strategy": strategy,
                         "seeds with a budget lost": f"{np.mean(np.array(lost) > 0):.0%}",
                         "budgets lost (mean)": f"{np.mean(lost):.2f}", "median FLOPs": f"{np.median(spent):.3g}",
                         "median precision": f"{np.median(prec):.3f}"})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--tables", type=int, nargs="+", default=[1, 2, 3], help="which tables to run")
    args = parser.parse_args()
    start = time.perf_counter()
    if 1 in args.tables:
        fixed_cost = cost(sweep(CHINCHILLA, 0, "fixed"))
        print(f"Table 1: bracketing with a wrong prior ({args.seeds} seeds each)\n")
        print(table_bracketing(args.seeds, fixed_cost).to_markdown(index=False))
    if 2 in args.tables:
        print(f"\nTable 2: FLOPs to reach the fixed design's precision at 1e24 ({args.seeds} seeds)\n")
        print(table_cost(args.seeds).T.to_markdown(headers=["", "value"]))
    if 3 in args.tables:
        print(f"\nTable 3: the alpha/beta = 3 law ({args.seeds} seeds)\n")
        print(table_steep(args.seeds).to_markdown(index=False))
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
