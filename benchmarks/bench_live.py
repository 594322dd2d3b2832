"""How live the live monitor is, and what it costs: latency, kernel stalls, redraw cost, training slowdown.

1. Mock sweep of 45 runs, each held 50 ms by a callback (a stand-in for real runs), watched by a
   SweepMonitor, built once the imports are warm (a monitor on a small sweep is built and discarded
   first). The main thread plays the kernel: it polls the IsoFLOP figure's synced state every 5 ms
   (how long after each run's end does its point appear?) and notes how late each 5 ms sleep wakes
   (does the monitor stall the kernel?).
2. What one redraw costs (SweepMonitor.refresh with new finished runs: the refit, the IsoFLOP and
   scaling-law figures and the tables; the loss curves and the backtest, a second refit, at most
   once a second) and how big a figure's synced state is.
3. Real training of the tiny byte-level GPT sweep of notebook 06, with torch's default threads: in a
   script's main thread; in the background as the widgets run it, in a worker process (flops_fit.worker),
   first one the sweep starts, then the warm one it leaves (as after the designer's prestart), then
   with a monitor; and in a background thread of this process (the fallback for what cannot be pickled).
   While the background sweeps run, the main thread plays the kernel again (5 ms sleeps).

Run: .venv/bin/python benchmarks/bench_live.py [--skip-training]
"""

from __future__ import annotations

import argparse
import json
import threading
import time

from typing import Any

import numpy as np

import flops_fit as ff
from flops_fit.examples import GPT

# the widgets are imported where they are used: a spawned worker imports this script's top level (a notebook
# has none), and the widgets' imports would stretch its start


def run_points(live: Any) -> int:
    """Finished runs' points in an IsoFLOP figure's synced state (not the stars of minima, nor the hollow markers
    of runs not yet run)."""
    return sum(len(t["x"]) for t in live.widget._widget_data
               if t.get("mode") == "markers" and t.get("marker", {}).get("symbol") not in ("star", "circle-open"))


def warm_imports() -> None:
    """Build and discard a monitor of a small sweep that reaches every fit and figure (laws and the backtest)."""
    from flops_fit.widgets import SweepMonitor

    plan = ff.plan_sweep(GPT, "d_model", [1e17, 1e18, 1e19, 1e20], points_per_budget=5, model_kwargs={"n_layer": 4})
    SweepMonitor.start(plan, mode="mock").wait()


def mock_latency(hold: float = 0.05) -> dict[str, float]:
    from flops_fit.widgets import SweepMonitor

    plan = ff.plan_sweep(GPT, "d_model", [1e17, 1e18, 1e19, 1e20, 1e21], model_kwargs={"n_layer": 4})
    warm_imports()
    ends: list[float] = []

    def held(event):
        if event["type"] == "run_end":
            time.sleep(hold)
            ends.append(time.perf_counter())

    start = time.perf_counter()
    ff.run_sweep(plan, mode="mock", callbacks=[held])
    bare = time.perf_counter() - start
    ends.clear()

    timings: list[float] = []  # refreshes that found new finished runs (refit and redraw), not clock ticks
    fuller: list[float] = []  # those of them that also redrew the loss curves or the backtest
    original = SweepMonitor.refresh

    def timed_refresh(self, final=False):
        t, before = time.perf_counter(), (self._drawn_finished, self._curves_drawn_at, self._backtest_at)
        original(self, final)
        if self._drawn_finished != before[0]:
            timings.append(time.perf_counter() - t)
            if (self._curves_drawn_at, self._backtest_at) != before[1:]:
                fuller.append(timings[-1])

    SweepMonitor.refresh = timed_refresh
    start = time.perf_counter()
    monitor = SweepMonitor.start(plan, mode="mock", callbacks=[held], refresh_every=0.1)
    built = time.perf_counter() - start  # runs go on meanwhile: the sweep starts before the monitor is drawn
    shown: dict[int, float] = {}
    lateness: list[float] = []
    while not monitor.done:
        t = time.perf_counter()
        time.sleep(0.005)
        lateness.append(time.perf_counter() - t - 0.005)
        n = run_points(monitor.isoflops)
        for k in range(1, n + 1):
            shown.setdefault(k, time.perf_counter())
    monitor.wait()
    watched = time.perf_counter() - start
    SweepMonitor.refresh = original
    drawn = start + built
    latency = [shown[k + 1] - ends[k] for k in range(len(ends)) if k + 1 in shown and ends[k] > drawn]
    state = monitor.isoflops.widget.get_state(["_widget_data", "_widget_layout"])
    return {"runs": len(plan), "built": built, "bare": bare, "watched": watched,
            "latency_median": float(np.median(latency)),
            "latency_p95": float(np.percentile(latency, 95)), "stall_median": float(np.median(lateness)),
            "stall_max": float(np.max(lateness)), "redraws": len(timings),
            "redraw_median": float(np.median(timings)), "redraw_max": float(np.max(timings)),
            "fuller": len(fuller), "fuller_median": float(np.median(fuller)) if fuller else float("nan"),
            "state_kb": len(json.dumps(state, default=lambda a: np.asarray(a).tolist())) / 1024}


class Locked:
    """The dataset with a lock beside it: it cannot be pickled, so the sweep trains in a thread."""

    def __init__(self, data: Any) -> None:
        self.data, self.lock = data, threading.Lock()

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> Any:
        return self.data[i]


def kernel(handle: Any) -> tuple[float, list[float]]:
    """Play the kernel until ``handle`` (a SweepHandle or SweepMonitor) is done: 5 ms sleeps, noting how late
    each wakes. Returns the sweep's wall time from now and the lateness."""
    start, lateness = time.perf_counter(), []
    while not handle.done:
        t = time.perf_counter()
        time.sleep(0.005)
        lateness.append(time.perf_counter() - t - 0.005)
    handle.wait()
    return time.perf_counter() - start, lateness


def training(reps: int = 3) -> dict[str, Any]:
    """Each way of running the sweep ``reps`` times, interleaved (this machine's speed drifts by 30 % or more
    from one minute to the next): wall times, and how late the kernel's sleeps woke meanwhile."""
    import warnings

    import torch

    from flops_fit import worker
    from flops_fit.examples import lm_loss, stdlib_datasets
    from flops_fit.widgets import SweepMonitor

    train, held = stdlib_datasets(seq_len=32, max_bytes=1_000_000)
    config = ff.TrainConfig(lr=3e-3, batch_size=32)
    kw = {"vocab_size": 256, "n_layer": 1, "block_size": 32, "n_head": 2}
    plan = ff.plan_sweep(GPT, "d_model", [3e9, 1e10], points_per_budget=4, tokens_per_param=100, size_span=10,
                         multiple_of=2, model_kwargs=kw, example_input=train[0][0], tokens_per_sample=32,
                         train_config=config)
    opts = {"mode": "local", "eval_dataset": held, "train_config": config, "progress": False}

    def cold() -> Any:
        worker.close_spare()
        return ff.run_sweep(plan, GPT, train, lm_loss, background=True, **opts)

    def fallback() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ff.run_sweep(plan, GPT, Locked(train), lm_loss, background=True, **opts)

    ways = {
        "main thread of a script": lambda: ff.run_sweep(plan, GPT, train, lm_loss, **opts),
        "worker process, started by this sweep": cold,
        "worker process, warm (left by a sweep, or the designer's prestart)":
            lambda: ff.run_sweep(plan, GPT, train, lm_loss, background=True, **opts),
        "warm worker process + SweepMonitor": lambda: SweepMonitor.start(plan, GPT, train, lm_loss, **opts),
        "background thread of this process (the fallback)": fallback,
    }
    ff.run_sweep(plan.head(1), GPT, train, lm_loss, **opts)  # torch's first-use costs, paid by neither side
    walls: dict[str, list[float]] = {name: [] for name in ways}
    lateness: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(reps):
        for name, way in ways.items():
            t = time.perf_counter()
            started = way()
            if hasattr(started, "done"):  # a handle or a monitor: play the kernel meanwhile
                lateness[name] += kernel(started)[1]
            walls[name].append(time.perf_counter() - t)
    return {"torch_threads": torch.get_num_threads(), "reps": reps, "walls": walls, "lateness": lateness}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    m = mock_latency()
    ms = 1000
    print(f"Mock sweep, {m['runs']} runs held 50 ms each, SweepMonitor refreshing every 0.1 s:\n")
    print("| measurement | result | goal | met |\n|---|---|---|---|")
    rows = [
        ("building the monitor (3 figures, a bar per run), imports warm", f"{m['built']:.2f} s", "<= 0.5 s",
         m["built"] <= 0.5),
        ("a run's point reaches the IsoFLOP figure's state, after the run ends (median / p95)",
         f"{m['latency_median'] * ms:.0f} / {m['latency_p95'] * ms:.0f} ms", "p95 <= 250 ms",
         m["latency_p95"] <= 0.25),
        ("the kernel's 5 ms sleeps wake late by (median / worst)",
         f"{m['stall_median'] * ms:.1f} / {m['stall_max'] * ms:.0f} ms", "worst < 100 ms", m["stall_max"] < 0.1),
        ("sweep wall time, bare / with the monitor",
         f"{m['bare']:.2f} s / {m['watched']:.2f} s", "", None),
        (f"one redraw: refit, IsoFLOP and scaling-law figures, tables ({m['redraws']} redraws; median / worst)",
         f"{m['redraw_median'] * ms:.0f} / {m['redraw_max'] * ms:.0f} ms", "median <= 50 ms",
         m["redraw_median"] <= 0.05),
        (f"of them, those that also redrew the loss curves or the backtest (at most once a second; {m['fuller']}, "
         "median)", f"{m['fuller_median'] * ms:.0f} ms", "", None),
        ("IsoFLOP figure's synced state (what a reloaded view receives)", f"{m['state_kb']:.0f} KB", "", None),
    ]
    for name, value, goal, met in rows:
        print(f"| {name} | {value} | {goal} | {'' if met is None else ('yes' if met else 'no')} |")
    if args.skip_training:
        return
    t = training()
    walls, lateness = t["walls"], t["lateness"]
    main_s = float(np.median(walls["main thread of a script"]))
    print(f"\nReal training, notebook 06's sweep (8 runs of a byte-level GPT), torch's default {t['torch_threads']} "
          f"threads; each way {t['reps']} times, interleaved; median (fastest-slowest):\n")
    print("| where the sweep trains | wall time | x main thread | goal | met | the kernel's 5 ms sleeps wake late by "
          "(median / worst) |\n|---|---|---|---|---|---|")
    for name, seconds in walls.items():
        ratio = float(np.median(seconds)) / main_s
        goal, met = ("<= 1.1x", "yes" if ratio <= 1.1 else "no") if "worker" in name else ("", "")
        late = lateness[name]
        stall = f"{np.median(late) * ms:.1f} / {np.max(late) * ms:.0f} ms" if late else ""
        print(f"| {name} | {np.median(seconds):.1f} s ({min(seconds):.1f}-{max(seconds):.1f}) | {ratio:.2f} | {goal} "
              f"| {met} | {stall} |")


if __name__ == "__main__":
    main()
