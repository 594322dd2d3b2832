"""Failures surface: a lost run is recorded with its cause, an executor that takes no work raises, a wait that
times out says so, the fit says what did not complete, and pool workers do not outlive a killed parent."""

import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import flops_fit as ff
from flops_fit.examples import GPT
from flops_fit.execution import SweepExecution
from flops_fit.mock import PlantedLaw
from flops_fit.claims import alive as _alive
from flops_fit.store import SweepStore

from ._jobs import SlowMockJob


@pytest.fixture(scope="module")
def plan():
    plan = ff.plan_sweep(GPT, "d_model", [1e15, 1e16, 1e17, 1e18], model_kwargs={"vocab_size": 256})
    return plan.assign(run_id=plan["run_id"].astype(str))


def test_a_dead_worker_is_recorded_failed_and_the_sweep_raises(plan, tmp_path):
    job = SlowMockJob(PlantedLaw(), 0, delay=0.02, die_at=int(plan["size"].iloc[5]))
    store = SweepStore(tmp_path, writer=True)
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        sweep = SweepExecution(plan, job, store, False, pool, [], False)
        with pytest.raises(ff.SweepIncomplete, match=r"stopped taking runs \(BrokenProcessPool.*run\(s\) were not "
                                                     r"run and \d+ were lost"):
            sweep.run()
    results = store.results()
    lost = results[results["status"] == "failed"]
    assert 1 <= len(lost) <= 2 and lost["error"].str.contains("worker died").all()
    assert results["status"].eq("pending").any()  # the rest waits for a new executor
    again = ff.run_sweep(plan, mode="mock", store=tmp_path, retry_failed=True)  # ... which runs them all
    assert again["status"].eq("completed").all()


def test_an_executor_that_takes_no_work_raises_at_once(plan):
    pool = cf.ThreadPoolExecutor(2)
    pool.shutdown()
    started = time.perf_counter()
    with pytest.raises(ff.SweepIncomplete, match=f"{len(plan)} run.s. were not run") as caught:
        ff.run_sweep(plan, mode="mock", executor=pool)
    assert time.perf_counter() - started < 5
    assert caught.value.results["status"].eq("pending").all()


def test_wait_with_a_timeout_raises_while_the_sweep_runs(plan):
    job = SlowMockJob(PlantedLaw(), 0, delay=0.05)
    handle = ff.SweepHandle(SweepExecution(plan, job, None, False, None, [], False))
    with pytest.raises(TimeoutError, match="still running after 0.1 s"):
        handle.wait(0.1)
    handle.stop()
    handle.wait(30)


def test_find_optimal_and_the_result_say_what_did_not_complete(plan, tmp_path):
    ff.run_sweep(plan.iloc[:30], mode="mock", store=tmp_path)
    SweepStore(tmp_path, writer=True).add_plan(plan)  # 6 more planned, never run
    with pytest.warns(ff.FitWarning, match=f"6 of {len(plan)} planned runs did not complete: 6 pending"):
        result = ff.load(tmp_path)
    assert "6 pending (not run)" in result._repr_markdown_() and "6 pending" in repr(result)
    complete = ff.find_optimal(GPT, "d_model", "data", "loss", [1e16, 1e17, 1e18], model_kwargs={"vocab_size": 256})
    assert complete.incomplete == ""


# a sweep on a fork-started process pool; each worker notes its pid, then the parent waits to be killed
PARENT = textwrap.dedent("""
    import concurrent.futures as cf, sys, time
    import flops_fit as ff
    from flops_fit.examples import GPT
    from flops_fit.execution import SweepExecution
    from flops_fit.mock import PlantedLaw
    from tests._jobs import SlowMockJob

    plan = ff.plan_sweep(GPT, "d_model", [1e16, 1e17], model_kwargs={"vocab_size": 256})
    job = SlowMockJob(PlantedLaw(), 0, delay=30, pid_dir=sys.argv[1])
    pool = cf.ProcessPoolExecutor(2)
    SweepExecution(plan, job, None, False, pool, [], False).run()
""")


def test_pool_workers_exit_when_their_parent_is_killed(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pids)], cwd=root)
    deadline = time.time() + 60
    while len(list(pids.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.1)
    workers = [int(p.name) for p in pids.iterdir()]
    assert len(workers) == 2, "the workers never started a run"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.2)
    alive = [w for w in workers if _alive(w)]
    for w in alive:  # do not leave them behind if the test fails
        os.kill(w, signal.SIGKILL)
    assert not alive, "pool workers outlived their killed parent"
