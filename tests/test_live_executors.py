"""Live events from executor workers: runs on a process pool or a Dask cluster stream their run_start, step
and eval events to the sweep's callbacks while they train, as runs trained in this process do."""

import concurrent.futures as cf
import multiprocessing as mp

import pytest

import flops_fit as ff
from flops_fit.examples import GPT, lm_loss, stdlib_datasets


@pytest.fixture(scope="module")
def tiny():
    train, held = stdlib_datasets(seq_len=16, max_bytes=30_000)
    config = ff.TrainConfig(batch_size=16, log_points=8)
    plan = ff.plan_sweep(GPT, "d_model", [6e8], points_per_budget=3, tokens_per_param=100, size_span=6,
                         multiple_of=2, model_kwargs={"vocab_size": 256, "n_layer": 1, "block_size": 16, "n_head": 2},
                         tokens_per_sample=16, train_config=config)
    return plan, train, held, config


def _check_stream(events, plan):
    for run_id in plan["run_id"]:
        kinds = [e["type"] for e in events if e.get("run_id") == run_id]
        assert kinds[0] == "run_start" and kinds[-1] == "run_end", kinds
        assert "step" in kinds and kinds.index("step") < kinds.index("run_end")
        steps = [e["step"] for e in events if e.get("run_id") == run_id and e["type"] == "step"]
        assert steps == sorted(steps) and len(steps) >= 2
    ends = [i for i, e in enumerate(events) if e["type"] == "run_end"]
    firsts = {e["run_id"]: i for i, e in reversed(list(enumerate(events))) if e["type"] == "step"}
    assert min(firsts.values()) < min(ends)  # steps arrived while runs trained, not only at their end


def test_a_process_pool_streams_steps_while_runs_train(tiny):
    plan, train, held, config = tiny
    events = []
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        results = ff.run_sweep(plan, GPT, train, lm_loss, mode="local", eval_dataset=held, train_config=config,
                               executor=pool, callbacks=[events.append])
    assert results["status"].eq("completed").all()
    _check_stream(events, plan)


def test_a_dask_cluster_streams_steps_while_runs_train(tiny):
    distributed = pytest.importorskip("distributed")
    plan, train, held, config = tiny
    events = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                                  processes=True) as cluster, distributed.Client(cluster) as client:
        results = ff.run_sweep(plan, GPT, train, lm_loss, mode="local", eval_dataset=held, train_config=config,
                               executor=client.get_executor(), callbacks=[events.append])
    assert results["status"].eq("completed").all()
    _check_stream(events, plan)
