"""How long the first Run sweep takes to show its monitor in a fresh kernel, with and without the designer
loading plotly's widget code in the background while the user plans (flops_fit.widgets.plotly_widget.preload).

Each measurement is a fresh Python process (a fresh kernel): import flops_fit's widgets, build notebook 06's
SweepDesigner (mock mode, 45 runs), wait ``--think`` seconds (a person reading the plan and moving sliders),
then time ``designer.run()``, the Run button's work, until the monitor is built. "off" replaces preload with a
no-op, as before it existed. Runs alternate between on and off.

Run: .venv/bin/python benchmarks/bench_first_run.py [--reps 3] [--think 0 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = """
import json, sys, time
started = time.perf_counter()
from flops_fit.examples import GPT
from flops_fit.widgets import SweepDesigner, designer
if sys.argv[1] == "off":
    designer.preload = lambda: None
imported = time.perf_counter()
app = SweepDesigner(GPT, "d_model", model_kwargs={"n_layer": 4})
built = time.perf_counter()
time.sleep(float(sys.argv[2]))
clicked = time.perf_counter()
monitor = app.run()
shown = time.perf_counter()
monitor.wait()
print(json.dumps({"import": imported - started, "designer": built - imported, "run": shown - clicked}))
"""


def measure(preload: str, think: float) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", CHILD, preload, str(think)], capture_output=True, text=True,
                          timeout=600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--think", type=float, nargs="+", default=[0.0, 5.0])
    args = parser.parse_args()
    print("| preload | seconds between designer and Run | import (s) | designer built (s) | Run to monitor (s), "
          "median (range) |\n|---|---|---|---|---|")
    for think in args.think:
        times: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
        for _ in range(args.reps):
            for preload in ("on", "off"):
                times[preload].append(measure(preload, think))
        for preload, rows in times.items():
            runs = [r["run"] for r in rows]
            print(f"| {preload} | {think:g} | {statistics.median(r['import'] for r in rows):.2f} | "
                  f"{statistics.median(r['designer'] for r in rows):.2f} | {statistics.median(runs):.2f} "
                  f"({min(runs):.2f}-{max(runs):.2f}) |")


if __name__ == "__main__":
    main()
