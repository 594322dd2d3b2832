"""How close does the fitted exponent come to the planted one? (mock mode, 20 seeds)

The planted law is Chinchilla's (E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
with 0.5 % multiplicative noise, so N_opt ∝ C^a with a = beta/(alpha+beta) = 0.4516.
Each seed plans a sweep, simulates it and fits Approach 2 + power laws.

- "planned": flops_fit's default plan (9 sizes per budget straddling each budget's
  expected optimum, found by size search).
- "fixed grid": the naive alternative, the same 9 sizes at every budget, log-spaced
  over the whole range the planned sweep touches (same number of runs).

Run: .venv/bin/python benchmarks/bench_accuracy.py
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

from flops_fit import FitWarning, PlantedLaw, fit_isoflops, fit_power_laws, plan_sweep, run_sweep
from flops_fit.approaches.laws import predict_from_laws
from flops_fit.examples import GPT

BUDGET_SETS = {
    "1e17..1e21": np.logspace(17, 21, 5),
    "1e18..1e22": np.logspace(18, 22, 5),
}


def fixed_grid(plan: pd.DataFrame) -> pd.DataFrame:
    """Every budget gets the same sizes: 9 planned sizes spread over the sweep's whole range."""
    sizes = np.sort(plan["size"].unique())
    picks = sizes[np.unique(np.round(np.linspace(0, len(sizes) - 1, 9)).astype(int))]
    rows = plan.drop_duplicates("size").set_index("size").loc[picks]
    out = []
    for budget in plan["budget"].unique():
        grid = rows.reset_index().copy()
        grid["budget"] = budget
        grid["tokens"] = np.maximum(np.round(budget / grid["flops_per_token"]), 1).astype(np.int64)
        grid["flops"] = grid["tokens"] * grid["flops_per_token"]
        grid["run_id"] = [f"grid-{budget:.3g}-{s}" for s in grid["size"]]
        out.append(grid)
    return pd.concat(out, ignore_index=True)


def score(plan: pd.DataFrame, law: PlantedLaw, seed: int) -> dict[str, float]:
    """Error of a, dropped budgets, and whether the 95 % intervals (of a, of N_opt at 100x) hold the truth."""
    results = run_sweep(plan, mode="mock", law=law, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        optima = fit_isoflops(results)
        laws = fit_power_laws(optima)
    row = laws.set_index("quantity").loc["params"]
    target = 100 * plan["budget"].max()
    p = predict_from_laws(laws, target)
    return {"error": abs(row["exponent"] - law.a), "dropped": int((~optima["usable"]).sum()),
            "a_covered": row["exponent_lo"] <= law.a <= row["exponent_hi"],
            "n_covered": p["optimal_params_low"] <= law.optimal_params(target) <= p["optimal_params_high"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    law = PlantedLaw(noise=0.005)
    rows = []
    for label, budgets in BUDGET_SETS.items():
        plan = plan_sweep(GPT, "d_model", list(budgets), model_kwargs={"n_layer": 4})
        for design, frame in (("planned", plan), ("fixed grid", fixed_grid(plan))):
            scores = pd.DataFrame([score(frame, law, seed) for seed in range(args.seeds)])
            rows.append({"budgets": label, "design": design, "runs": len(frame),
                         "median error of a": f"{scores['error'].median():.4f}",
                         "worst error of a": f"{scores['error'].max():.4f}",
                         "95% CI of a holds a*": f"{int(scores['a_covered'].sum())}/{args.seeds}",
                         "95% CI of N_opt(100x) holds truth": f"{int(scores['n_covered'].sum())}/{args.seeds}",
                         "budgets dropped": int(scores["dropped"].sum())})
    print(f"planted a* = {law.a:.4f}, noise {law.noise:.1%}, {args.seeds} seeds, GPT(n_layer=4) over d_model; "
          "error = absolute difference between fitted and planted a\n")
    print(pd.DataFrame(rows).to_markdown(index=False) if _has_tabulate() else pd.DataFrame(rows).to_string(index=False))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
