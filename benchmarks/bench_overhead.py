"""Per-run overhead of the sweep directory and of each executor, next to the run itself (mock mode).

A mock run costs well under a millisecond, so everything above that is flops_fit's
own bookkeeping (atomic record + curve per run) or the executor's (pickling the job,
shipping it to a worker, bringing the result back). Real runs take seconds to hours:
these overheads are what a sweep pays on top.

Run: .venv/bin/python benchmarks/bench_overhead.py [--runs 200]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import tempfile
import time

import numpy as np

import flops_fit as ff
from flops_fit.examples import GPT


def timed(plan, **kwargs) -> float:
    start = time.perf_counter()
    results = ff.run_sweep(plan, mode="mock", seed=0, **kwargs)
    elapsed = time.perf_counter() - start
    assert (results["status"] == "completed").all()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--submitit-runs", type=int, default=20, help="submitit starts a process per run")
    args = parser.parse_args()
    budgets = list(np.logspace(17, 21, 8))
    plan = ff.plan_sweep(GPT, "d_model", budgets, points_per_budget=args.runs // 8, model_kwargs={"n_layer": 4})
    n = len(plan)
    rows = []

    def add(name: str, seconds: float, runs: int, base: float | None) -> None:
        per_run = seconds / runs * 1e3
        extra = "" if base is None else f"{per_run - base:.2f}"
        rows.append((name, runs, f"{seconds:.2f}", f"{per_run:.2f}", extra))

    memory = timed(plan)
    base = memory / n * 1e3
    add("in memory, this process (the runs themselves)", memory, n, None)
    with tempfile.TemporaryDirectory() as root:
        add("sweep directory, this process", timed(plan, store=root), n, base)
    with tempfile.TemporaryDirectory() as root:
        timed(plan, store=root)
        add("resume: everything already finished (nothing runs)", timed(plan, store=root), n, None)
    with cf.ProcessPoolExecutor(max_workers=2) as pool, tempfile.TemporaryDirectory() as root:
        pool.submit(int).result()  # start the workers first: their start-up is not per-run overhead
        add("process pool (2 workers) + directory", timed(plan, store=root, executor=pool), n, base)
    try:
        import distributed

        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client, \
                tempfile.TemporaryDirectory() as root:
            add("Dask LocalCluster (2 workers) + directory", timed(plan, store=root, executor=client.get_executor()),
                n, base)
    except ImportError:
        rows.append(("Dask LocalCluster: not installed", 0, "", "", ""))
    try:
        import submitit

        with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as root:
            executor = submitit.LocalExecutor(folder=folder)
            executor.update_parameters(timeout_min=10)
            small = plan.head(args.submitit_runs)
            add("submitit LocalExecutor + directory", timed(small, store=root, executor=executor), len(small), base)
    except ImportError:
        rows.append(("submitit: not installed", 0, "", "", ""))

    print("| how the runs ran | runs | total s | ms per run | overhead ms per run |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
