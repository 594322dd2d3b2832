"""Local sweeps on process pools: a fork pool is refused before any compute (forked workers hang in torch),
a run whose worker goes silent is given up after run_timeout and the sweep (and the pool's shutdown) goes
on, the model, dataset and loss reach each worker once, and process_pool shares the cores out."""

import concurrent.futures as cf
import multiprocessing as mp
import pickle
import threading
import time

import pytest

import flops_fit as ff
from flops_fit.examples import lm_loss, stdlib_datasets
from tests._models import CountedData, LockedData, OddGPT, worker_threads

KWARGS = {"vocab_size": 256, "n_layer": 1, "block_size": 16, "n_head": 2}
CONFIG = ff.TrainConfig(batch_size=32)


@pytest.fixture(scope="module")
def data():
    train, held = stdlib_datasets(seq_len=16, max_bytes=30_000)
    plan = ff.plan_sweep(OddGPT, "d_model", [6e8], points_per_budget=3, tokens_per_param=100, size_span=6,
                         multiple_of=2, tokens_per_sample=16, train_config=CONFIG, model_kwargs=KWARGS)
    return plan, train, held


@pytest.mark.parametrize("bad, name", [({"workers": 0}, "workers"), ({"workers": 1.5}, "workers"),
                                       ({"threads_per_worker": 0}, "threads_per_worker"),
                                       ({"threads_per_worker": True}, "threads_per_worker")])
def test_process_pool_checks_its_input(bad, name):
    with pytest.raises(ValueError, match=f"'{name}' parameter of process_pool must be a whole number of at least "
                                         r"1\. .*Leave it None"):
        ff.process_pool(**bad)


@pytest.mark.parametrize("bad", [0, -5, float("nan"), "60"])
def test_run_timeout_is_checked(data, bad):
    for call in (lambda: ff.run_sweep(data[0], mode="mock", run_timeout=bad),
                 lambda: ff.find_optimal(OddGPT, "d_model", "mock", "mock", [1e16, 1e17], run_timeout=bad)):
        with pytest.raises(ValueError, match="'run_timeout' parameter of .* greater than 0, or None"):
            call()


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="no fork on this platform")
def test_a_fork_pool_is_refused_for_a_local_sweep_within_seconds(data):
    plan, train, held = data
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as pool:
        with pytest.raises(ValueError, match=r"starts its workers with fork.*hangs in torch.*process_pool\(workers\)"
                                             r".*get_context\('spawn'\)"):
            ff.run_sweep(plan, OddGPT, train, lm_loss, mode="local", eval_dataset=held, train_config=CONFIG,
                         executor=pool)
        assert not pool._processes  # refused before a single run was sent
    assert time.perf_counter() - start < 5
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as pool:  # mock mode has no torch to hang
        assert ff.run_sweep(plan, mode="mock", executor=pool)["status"].eq("completed").all()


def test_an_unpicklable_dataset_is_named_before_any_run(data):
    plan, train, held = data
    pool = ff.process_pool(1)
    try:
        with pytest.raises(ValueError, match=r"run_sweep: the 'dataset' \(LockedData\) cannot be sent to the pool's "
                                             r"worker processes.*_thread.lock.*module level.*dataset factory"):
            ff.run_sweep(plan, OddGPT, LockedData(train), lm_loss, mode="local", eval_dataset=held,
                         train_config=CONFIG, executor=pool)
        assert not pool._processes
    finally:
        pool.shutdown()


@pytest.fixture(scope="module")
def pooled(data):
    """One local sweep on process_pool(2): a counted dataset, a loss defined here as a lambda (it goes by value),
    the middle size hanging for ever in its worker, run_timeout=10."""
    plan, train, held = data
    counted, hang = CountedData(train), int(plan["size"].iloc[1])
    before = CountedData.pickles
    pool = ff.process_pool(2, threads_per_worker=1)
    threads = {pool.submit(worker_threads).result() for _ in range(4)}
    sent, submit = [], pool.submit

    def counting_submit(fn, *args):
        sent.append(len(pickle.dumps(args)))
        return submit(fn, *args)

    pool.submit = counting_submit
    events = []
    start = time.perf_counter()
    with pytest.warns(UserWarning, match=r"killed the process pool's worker pid \d+ .*stuck without progress for "
                                         r"10 s.*make a new one"):
        results = ff.run_sweep(plan, OddGPT, counted, lambda out, y: lm_loss(out, y), mode="local",
                               eval_dataset=held, train_config=CONFIG, executor=pool, callbacks=[events.append],
                               model_kwargs={**KWARGS, "hang_at": hang}, run_timeout=10)
    took = time.perf_counter() - start
    shutdown = threading.Thread(target=pool.shutdown, daemon=True)
    shutdown.start()
    shutdown.join(30)
    return {"results": results, "hang": hang, "pickles": CountedData.pickles - before, "sent": sent,
            "events": events, "threads": threads, "took": took, "shut down": not shutdown.is_alive()}


def test_a_silent_run_is_failed_after_run_timeout_and_the_sweep_goes_on(pooled):
    results = pooled["results"].set_index("size")
    assert results.loc[pooled["hang"], "status"] == "failed"
    assert results.loc[pooled["hang"], "error"].startswith("no progress for 10 s: its worker (pid ")
    assert results.drop(pooled["hang"])["status"].eq("completed").all()
    assert pooled["shut down"], "the pool's shutdown waited on the stuck worker"


def test_the_data_goes_to_each_worker_once(pooled):
    assert pooled["pickles"] == 1  # once in all, to the job's file, however many runs and workers
    assert len(pooled["sent"]) == 3 and max(pooled["sent"]) < 2_000  # a run carries its row and the file's name


def test_pool_workers_share_the_cores_and_stream_steps(pooled):
    assert pooled["threads"] == {(1, "1")}
    steps = {e["run_id"] for e in pooled["events"] if e["type"] == "step"}
    assert steps >= set(pooled["results"].query("status == 'completed'")["run_id"])
    starts = [e for e in pooled["events"] if e["type"] == "run_start"]
    assert all(e["worker"]["pid"] > 0 for e in starts) and len(starts) == 3


def test_a_silent_background_worker_is_killed_and_the_next_run_gets_a_new_one(data):
    plan, train, held = data
    hang = int(plan["size"].iloc[0])
    handle = ff.run_sweep(plan, OddGPT, train, lm_loss, mode="local", eval_dataset=held, train_config=CONFIG,
                          model_kwargs={**KWARGS, "hang_at": hang}, run_timeout=10, background=True)
    results = handle.wait(240).set_index("size")
    assert results.loc[hang, "error"].startswith("no progress for 10 s: its worker process sent no step")
    assert results.drop(hang)["status"].eq("completed").all()


def test_dask_gets_the_data_once_by_scatter(data):
    distributed = pytest.importorskip("distributed")
    plan, train, held = data
    counted, before = CountedData(train), CountedData.pickles
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                                  processes=True) as cluster, distributed.Client(cluster) as client:
        results = ff.run_sweep(plan, OddGPT, counted, lm_loss, mode="local", eval_dataset=held, train_config=CONFIG,
                               executor=client.get_executor())
        assert results["status"].eq("completed").all()
        assert CountedData.pickles - before == 1
        # the scattered job is released when the sweep ends; the scheduler hears of it a moment later (the
        # release travels on the client's event loop, and the runs' own futures let go of it as they are freed)
        deadline = time.monotonic() + 15
        while client.who_has() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not client.who_has()


def test_ff_train_workers_trains_on_a_process_pool(tmp_path, capsys):
    from hydra import compose, initialize_config_module

    from flops_fit.cli import run_plan, run_train

    def stage(name, *overrides):
        with initialize_config_module(config_module="flops_fit.conf", version_base="1.3"):
            return compose(name, overrides=list(overrides))

    gpt = ["model.n_layer=1", "+model.vocab_size=256", "+model.block_size=16", "+model.n_head=2"]
    run_plan(stage("plan", f"sweep_dir={tmp_path}", *gpt, "compute.budgets=[5e9]", "planning.points_per_budget=3",
                   "planning.tokens_per_param=50", "planning.size_span=3", "planning.multiple_of=2"))
    with pytest.raises(ValueError, match="workers must be an integer, e.g. workers=2"):
        run_train(stage("train", f"sweep_dir={tmp_path}", "mode=local", "workers=two"))
    results = run_train(stage("train", f"sweep_dir={tmp_path}", "mode=local", "workers=2", "run_timeout=600",
                              "dataset.seq_len=16", "+dataset.max_bytes=100000", "train.batch_size=64"))
    assert results["status"].eq("completed").all() and len(results) == 3
    assert "3 runs in" in capsys.readouterr().out
