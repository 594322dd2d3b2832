"""A real IsoFLOP sweep on this machine's CPU: does the method find a minimum inside the sampled sizes?

A byte-level GPT (vocabulary 256, 2 layers, context 64, batch 32, AdamW lr 3e-3 with
warm-up and cosine decay to 10 %, weight decay 0.1), the DESIGN's setting, trained on
the Python standard library's own source files (offline, ~4.7 MB) with the last 2 %
held out. Five budgets, six sizes each, straddling a prior of 200 tokens per
parameter. Prints a table (loss per size and budget, fitted optimum, whether it lies
inside the sampled sizes) and a backtest (the largest budget predicted from the others),
and writes the IsoFLOP and backtest figures.

``--strategy adaptive`` runs the same model, data and budgets with strategy="adaptive" instead, told to reach
the precision of N_opt at 100x the largest budget that the committed fixed sweep (``real_sweep/results.csv``)
reached, and prints N_opt per budget beside the fixed sweep's, each with its 95 % interval, the FLOPs both
spent and the wall time (its runs go to ``real_sweep/adaptive.csv``).

Run: .venv/bin/python benchmarks/bench_real_sweep.py [--out benchmarks/real_sweep] [--strategy adaptive]
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings

import flops_fit as ff
from flops_fit._format import budget_label, human
from flops_fit.examples import GPT, lm_loss, stdlib_datasets
from flops_fit.live import readable_backtest

BUDGETS = [1e10, 3e10, 1e11, 3e11, 1e12]


def run(points: int, **adaptive: object) -> tuple[ff.Result, float, int, list[str]]:
    train, held = stdlib_datasets(seq_len=64)
    config = ff.TrainConfig(batch_size=32, lr=3e-3, warmup=0.05, min_lr_ratio=0.1, weight_decay=0.1,
                            eval_batches=20)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ff.find_optimal(
            GPT, "d_model", train, lm_loss, compute_budgets=BUDGETS, mode="local", eval_dataset=held,
            train_config=config, model_kwargs={"vocab_size": 256, "n_layer": 2, "block_size": 64, "n_head": 2},
            points_per_budget=points, tokens_per_param=200, size_span=30, multiple_of=2, progress=False, **adaptive)
    return result, time.perf_counter() - start, len(train) * 64, [str(w.message) for w in caught]


def report(result: ff.Result) -> None:
    """The table: each size's held-out loss per budget (best in bold), the fitted optimum, bracketed or not."""
    runs, optima = result.results, result.optima.set_index("budget")
    print("| budget | d_model: held-out loss (N) | fitted N_opt | D/N at N_opt | minimum inside | wall time |")
    print("|---|---|---|---|---|---|")
    for budget, group in runs.groupby("budget"):
        best = group["loss"].idxmin()
        cells = ", ".join(
            (f"**{r['size']}: {r['loss']:.3f}**" if i == best else f"{r['size']}: {r['loss']:.3f}")
            + f" ({human(r['params'])})"
            for i, r in group.iterrows())
        row = optima.loc[budget]
        print(f"| {budget_label(budget)} | {cells} | {human(row['params_opt'])} "
              f"| {row['tokens_opt'] / row['params_opt']:.0f} | {'yes' if row['inside'] else 'no'} "
              f"| {group['wall_time'].sum():.0f} s |")
    inside = int(optima["inside"].sum())
    print(f"\nminimum inside the sampled sizes for {inside} of {len(optima)} budgets "
          f"(goal: at least 2 of 3); throughput {runs['flops_per_second'].min() / 1e9:.0f}–"
          f"{runs['flops_per_second'].max() / 1e9:.0f} GFLOP/s (6N basis), utilisation "
          f"{runs['utilisation'].min():.0%}–{runs['utilisation'].max():.0%} of a measured matmul peak")
    if len(result.laws):
        print(f"fitted N_opt ∝ C^{result.exponent('params'):.3f} across these budgets")
    if len(result.located_budgets) >= 3:
        print("\nBacktest: the largest budget predicted by a fit of the others (95 % interval) against its own runs\n")
        print(readable_backtest(result.backtest()).to_markdown(index=False, disable_numparse=True))


def precision(result: ff.Result, target: float) -> float:
    """Half the 95 % interval of N_opt at ``target`` over N_opt: what strategy="adaptive" stops on."""
    p = result.predict(target)
    return (p["optimal_params_high"] - p["optimal_params_low"]) / (2 * p["optimal_params"])


def budget_intervals(result: ff.Result) -> dict[float, str]:
    """Each budget's N_opt with its 95 % interval (from the default estimator's standard error of ln N_opt)."""
    from flops_fit.approaches.laws import t_quantile

    shown = {}
    for row in result.optima.itertuples():
        se, dof = getattr(row, "log_params_se", float("nan")), int(getattr(row, "se_dof", 0))
        if dof > 0 and se == se:
            half = t_quantile(0.95, dof) * se
            shown[row.budget] = (f"{human(row.params_opt)} ({human(row.params_opt * math.exp(-half))}–"
                                 f"{human(row.params_opt * math.exp(half))})")
        else:
            shown[row.budget] = f"{human(row.params_opt)} (no interval)"
    return shown


def compare(out: str) -> None:
    """An adaptive sweep told to reach the committed fixed sweep's precision, beside it."""
    fixed = ff.Result.from_results(ff.load_results(os.path.join(out, "results.csv")))
    target = 100 * max(BUDGETS)
    goal = precision(fixed, target)
    result, elapsed, _, caught = run(6, strategy="adaptive", target_precision=min(goal, 0.99))
    result.results.drop(columns=["error"]).to_csv(os.path.join(out, "adaptive.csv"), index=False)
    for message in sorted(set(caught)):
        print(f"warning: {message}")
    runs = result.results
    print(f"adaptive: {len(runs)} runs, {elapsed:.0f} s wall time; fixed: {len(fixed.results)} runs, "
          f"{fixed.results['wall_time'].sum():.0f} s of training\n")
    print("| budget | fixed: runs | fixed: N_opt (95 %) | adaptive: runs (why) | adaptive: N_opt (95 %) |")
    print("|---|---|---|---|---|")
    left, right = budget_intervals(fixed), budget_intervals(result)
    for budget in sorted(set(left) | set(right)):
        group = runs[runs["budget"] == budget]
        why = ", ".join(f"{n} {r}" for r, n in group["reason"].value_counts().items())
        print(f"| {budget_label(budget)} | {int((fixed.results['budget'] == budget).sum())} | {left.get(budget, '')} "
              f"| {len(group)} ({why}) | {right.get(budget, '')} |")
    spent, fixed_spent = runs["flops"].sum(), fixed.results["flops"].sum()
    print(f"\nFLOPs: adaptive {spent:.3g}, fixed {fixed_spent:.3g}: ratio {spent / fixed_spent:.2f}")
    print(f"precision of N_opt at {target:.3g}: fixed {goal:.3f}, adaptive {precision(result, target):.3f}")
    for name, res in (("fixed", fixed), ("adaptive", result)):
        p = res.predict(target)
        print(f"N_opt at {target:.3g} ({name}): {human(p['optimal_params'])} "
              f"({human(p['optimal_params_low'])}–{human(p['optimal_params_high'])})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/real_sweep", help="where the figure and CSV go")
    parser.add_argument("--points", type=int, default=6)
    parser.add_argument("--from-csv", help="re-report a finished sweep's results.csv instead of training")
    parser.add_argument("--strategy", choices=["fixed", "adaptive"], default="fixed",
                        help="adaptive: run adaptively to the committed fixed sweep's precision, and compare")
    args = parser.parse_args()
    if args.strategy == "adaptive":
        compare(args.out)
        return

    if args.from_csv:
        result = ff.Result.from_results(ff.load_results(args.from_csv))
        print(f"{len(result.results)} runs from {args.from_csv}\n")
    else:
        result, elapsed, tokens, caught = run(args.points)
        print(f"{len(result.results)} runs, {elapsed:.0f} s wall time, {tokens / 1e6:.2f}M training tokens\n")
        for message in caught:
            print(f"warning: {message}")
    report(result)

    os.makedirs(args.out, exist_ok=True)
    if not args.from_csv:
        result.results.drop(columns=["error"]).to_csv(os.path.join(args.out, "results.csv"), index=False)
    figures = result.plot(html_dir=args.out)
    try:
        for name in ("isoflops", "backtest"):
            if name in figures:
                figures[name].write_image(os.path.join(args.out, f"{name}.png"), width=900, height=500)
                print(f"figure: {args.out}/{name}.png")
    except Exception as exc:  # kaleido and a Chromium are optional
        print(f"figure: {args.out}/isoflops.html (no PNG: {type(exc).__name__}: {exc})")


if __name__ == "__main__":
    main()
