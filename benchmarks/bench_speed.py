"""Speed and memory of the mock pipeline and of planning.

Each measurement runs in a fresh interpreter so imports and peak RSS are its own.

- import: `import flops_fit` must load neither torch nor plotly.
- find_optimal: mock mode, GPT(n_layer=4) over d_model, 5 budgets 1e17..1e21, 45 runs;
  "cold" includes importing torch, pandas and scipy in a new process, "warm" is a
  second call in the same process. Goal: at most 3 s.
- plan_sweep probing large models: GPT(n_layer=24) over d_model up to 8192 (about 20B
  parameters, 80 GB of fp32 weights if built on the CPU), counted on the meta device.
  Goal: peak RSS under 600 MB.

Run: .venv/bin/python benchmarks/bench_speed.py
"""

from __future__ import annotations

import json
import subprocess
import sys

IMPORT = """
import json, sys, time
t = time.perf_counter()
import flops_fit
print(json.dumps({"seconds": time.perf_counter() - t, "torch": "torch" in sys.modules,
                  "plotly": "plotly" in sys.modules}))
"""

FIND_OPTIMAL = """
import json, resource, time
t0 = time.perf_counter()
from flops_fit import find_optimal
from flops_fit.examples import GPT
kwargs = dict(dataset="unused", loss_fn="unused", compute_budgets=[1e17, 1e18, 1e19, 1e20, 1e21],
              mode="mock", seed=0, model_kwargs={"n_layer": 4})
result = find_optimal(GPT, "d_model", **kwargs)
cold = time.perf_counter() - t0
t1 = time.perf_counter()
find_optimal(GPT, "d_model", **{**kwargs, "seed": 1})
warm = time.perf_counter() - t1
print(json.dumps({"cold": cold, "warm": warm, "runs": len(result.results),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PLAN_LARGE = """
import json, resource, time
import flops_fit.planning.sizes as sizes
from flops_fit import plan_sweep
from flops_fit.examples import GPT
probed = []
count = sizes.count_params
def recording(model_cls, param, value, model_kwargs=None):
    probed.append(value)
    return count(model_cls, param, value, model_kwargs)
sizes.count_params = recording
t = time.perf_counter()
plan = plan_sweep(GPT, "d_model", [1e18, 1e19, 1e20, 1e21, 4e21], size_range=(8, 8192), model_kwargs={"n_layer": 24})
print(json.dumps({"seconds": time.perf_counter() - t, "max_probed": max(probed), "probes": len(probed),
                  "max_params": int(plan["params"].max()),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    imp = measure(IMPORT)
    fo = measure(FIND_OPTIMAL)
    plan = measure(PLAN_LARGE)
    rows = [
        ("`import flops_fit`", f"{imp['seconds']:.3f} s; torch loaded: {imp['torch']}, plotly loaded: {imp['plotly']}",
         "neither loaded", "yes" if not (imp["torch"] or imp["plotly"]) else "NO"),
        (f"find_optimal mock, 5 budgets, {fo['runs']} runs (cold process)", f"{fo['cold']:.2f} s", "≤ 3 s",
         "yes" if fo["cold"] <= 3 else "NO"),
        ("find_optimal mock, same, second call", f"{fo['warm']:.2f} s", "≤ 3 s", "yes" if fo["warm"] <= 3 else "NO"),
        (f"plan_sweep probing d_model up to {plan['max_probed']} ({plan['max_params'] / 1e9:.1f}B params, "
         f"{plan['probes']} probes)", f"{plan['rss_mb']:.0f} MB peak RSS, {plan['seconds']:.2f} s", "< 600 MB",
         "yes" if plan["rss_mb"] < 600 else "NO"),
    ]
    print("| measurement | result | goal | met |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
