"""Live from every engine: runs trained by a background sweep's worker process, a process pool or a Dask
cluster stream their run_start, step and eval events to the sweep's callbacks while they train, and the
monitor looks the same whichever engine trained them: bars fill step by step and end full, every logged
point of every run is drawn, the IsoFLOP figure holds every run."""

import concurrent.futures as cf
import multiprocessing as mp
import time

import pytest

pytest.importorskip("ipywidgets")

import flops_fit as ff  # noqa: E402
from flops_fit.examples import lm_loss, stdlib_datasets  # noqa: E402
from flops_fit.widgets import SweepMonitor  # noqa: E402
from tests._models import OddGPT  # noqa: E402


@pytest.fixture(scope="module")
def sweep():
    train, held = stdlib_datasets(seq_len=16, max_bytes=30_000)
    config = ff.TrainConfig(batch_size=64, log_points=8)
    plan = ff.plan_sweep(OddGPT, "d_model", [6e8], points_per_budget=3, tokens_per_param=100, size_span=6,
                         multiple_of=2, tokens_per_sample=16, train_config=config,
                         model_kwargs={"vocab_size": 256, "n_layer": 1, "block_size": 16, "n_head": 2,
                                       "step_s": 0.005})  # in worker processes: runs last long enough to watch
    return plan, train, held, config


@pytest.fixture(scope="module")
def seen(sweep):
    """Each engine's sweep under a monitor: its events, and what the monitor showed during and after."""
    distributed = pytest.importorskip("distributed")
    seen = {"worker process": watch(sweep)}
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:  # one: 2 would share 2 cores
        seen["process pool"] = watch(sweep, executor=pool)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                                  processes=True) as cluster, distributed.Client(cluster) as client:
        seen["dask"] = watch(sweep, executor=client.get_executor())
    return seen


def watch(sweep, **engine):
    plan, train, held, config = sweep
    events = []
    monitor = SweepMonitor.start(plan, OddGPT, train, lm_loss, mode="local", eval_dataset=held,
                                 train_config=config, refresh_every=0.05, callbacks=[events.append], **engine)
    partial = set()  # runs whose bar was seen part-filled
    while not monitor.done:
        partial |= {run_id for run_id, bar in monitor.bars.items() if 0 < bar.value < bar.max}
        time.sleep(0.01)
    results = monitor.wait()
    assert results["status"].eq("completed").all()
    return {"events": events, "partial": partial,
            "bars": {run_id: (bar.value, bar.max, bar.bar_style) for run_id, bar in monitor.bars.items()},
            "curve_points": monitor.curves.state_points(), "logged": len(monitor.handle.curves()),
            "isoflops_points": monitor.isoflops.state_points()}


@pytest.mark.parametrize("engine", ["worker process", "process pool", "dask"])
def test_steps_stream_while_runs_train(seen, sweep, engine):
    plan, events = sweep[0], seen[engine]["events"]
    for run_id in plan["run_id"]:
        kinds = [e["type"] for e in events if e.get("run_id") == run_id]
        assert kinds[0] == "run_start" and kinds[-1] == "run_end", kinds
        assert "step" in kinds and kinds.index("step") < kinds.index("run_end")
        steps = [e["step"] for e in events if e.get("run_id") == run_id and e["type"] == "step"]
        assert steps == sorted(steps) and len(steps) >= 2
    ends = [i for i, e in enumerate(events) if e["type"] == "run_end"]
    firsts = {e["run_id"]: i for i, e in reversed(list(enumerate(events))) if e["type"] == "step"}
    assert min(firsts.values()) < min(ends)  # steps arrived while runs trained, not only at their end


@pytest.mark.parametrize("engine", ["worker process", "process pool", "dask"])
def test_the_monitor_looks_the_same_on_every_engine(seen, engine):
    state, reference = seen[engine], seen["worker process"]
    assert state["partial"], "no bar moved while its run trained"
    assert all(value == top > 1 and style == "success" for value, top, style in state["bars"].values())
    assert state["bars"] == reference["bars"]  # the same steps, whoever trained them
    assert state["curve_points"] == state["logged"] == reference["logged"]  # every logged point drawn
    assert state["isoflops_points"] == reference["isoflops_points"]
