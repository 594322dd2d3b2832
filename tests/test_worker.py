"""A background local sweep trains in a spawned worker process: same results as in the main thread, events
while runs train, Stop after a step (or a kill after the grace period), a worker that dies costs only its run,
and what cannot be sent to another process trains in the thread with a warning."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import flops_fit as ff
from flops_fit import shipping, worker
from flops_fit.claims import alive as _alive
from flops_fit.examples import GPT, lm_loss, stdlib_datasets
from flops_fit.store import SweepStore
from tests._models import LockedData, OddGPT

SETTINGS = {"vocab_size": 256, "n_layer": 1, "block_size": 16, "n_head": 2}


@pytest.fixture(scope="module")
def data():
    train, held = stdlib_datasets(seq_len=16, max_bytes=30_000)
    return train, held, ff.TrainConfig(batch_size=64, log_points=8)


def odd_plan(data, **knobs):
    train, held, config = data
    return ff.plan_sweep(OddGPT, "d_model", [6e8], points_per_budget=3, tokens_per_param=100, size_span=6,
                         multiple_of=2, model_kwargs={**SETTINGS, **knobs}, tokens_per_sample=16,
                         train_config=config)


def start(plan, data, **options):
    train, held, config = data
    return ff.run_sweep(plan, OddGPT, train, lm_loss, mode="local", eval_dataset=held, train_config=config,
                        background=True, **options)


def test_a_background_sweep_trains_in_a_worker_process_like_the_main_thread(data, tmp_path):
    train, held, config = data
    plan = odd_plan(data, pid_dir=str(tmp_path))
    here = ff.run_sweep(plan, OddGPT, train, lm_loss, mode="local", eval_dataset=held, train_config=config)
    handle = start(plan, data)
    away = handle.wait(120)
    assert handle._sweep.worker.fallback is None
    assert away["loss"].tolist() == here["loss"].tolist()  # the same runs, bit for bit
    trainers = {int(p.name) for p in tmp_path.iterdir()} - {os.getpid()}
    assert len(trainers) == 1, "the runs were not trained in one other process"
    for run_id in plan["run_id"]:  # steps streamed while each run trained, before its run_end
        kinds = [e["type"] for e in handle.events if e.get("run_id") == run_id]
        assert kinds[0] == "run_start" and kinds[-1] == "run_end" and kinds.count("step") >= 2, kinds
    again = start(plan, data)  # the next sweep starts on the same, already warm, worker
    again.wait(120)
    assert {int(p.name) for p in tmp_path.iterdir()} - {os.getpid()} == trainers


def test_stop_ends_the_run_after_its_step_and_records_nothing_of_it(data, tmp_path):
    plan = odd_plan(data, step_s=0.01)
    handle = start(plan, data, store=tmp_path)
    while not any(e["type"] == "step" for e in handle.events):
        assert not handle.done
        time.sleep(0.02)
    stopped = time.perf_counter()
    handle.stop()
    results = handle.wait(30)
    assert time.perf_counter() - stopped < 3
    assert results["status"].tolist() == ["pending"] * 3
    store = SweepStore(tmp_path)
    assert store.finished().empty and store.curves().empty  # no half record, no half curve
    resumed = start(plan, data, store=tmp_path).wait(120)
    assert resumed["status"].eq("completed").all()


def test_stop_while_the_worker_starts_runs_nothing(data):
    worker.close_spare()
    handle = start(odd_plan(data), data)
    handle.stop()  # the new worker is still importing torch
    assert handle.wait(30)["status"].eq("pending").all()


def test_a_worker_that_does_not_stop_is_killed_after_the_grace_period(data, tmp_path):
    plan = odd_plan(data, step_s=60, pid_dir=str(tmp_path))
    handle = start(plan, data)
    while not [p for p in tmp_path.iterdir() if int(p.name) != os.getpid()]:
        time.sleep(0.02)  # until the worker is inside its first, minute-long step
    pid = handle._sweep.worker.pid
    stopped = time.perf_counter()
    handle.stop(grace=1)
    results = handle.wait(30)
    assert 1 <= time.perf_counter() - stopped < 5
    assert results["status"].eq("pending").all()
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_worker_that_dies_costs_only_its_run(data):
    sizes = odd_plan(data)["size"].tolist()
    plan = odd_plan(data, kill_at=int(sizes[1]), abort_at=int(sizes[2]))
    results = start(plan, data).wait(120).set_index("size")
    assert results.loc[sizes[0], "status"] == "completed"
    for size, signal_name in ((sizes[1], "SIGKILL"), (sizes[2], "SIGABRT")):  # the sweep went on after each
        assert results.loc[size, "status"] == "failed"
        assert f"worker process died (killed by {signal_name}" in results.loc[size, "error"]


def test_what_cannot_be_sent_trains_in_the_thread_with_a_warning(data):
    train, held, config = data
    plan = odd_plan(data)
    with pytest.warns(UserWarning, match="cannot be sent to a worker process .*TypeError.*lock.* background thread"):
        handle = ff.run_sweep(plan, OddGPT, LockedData(train), lm_loss, mode="local", eval_dataset=held,
                              train_config=config, background=True)
    assert handle.wait(120)["status"].eq("completed").all()
    assert handle._sweep.worker.fallback is not None


def test_a_dataset_too_big_to_send_is_not_pickled_whole(data, monkeypatch):
    train, held, config = data
    views = [train[i] for i in range(len(train))]  # views of one tensor: each pickles the whole of it
    monkeypatch.setattr(shipping, "payload_limit", lambda: 2**20)
    with pytest.warns(UserWarning, match="more than 1 MiB .*tensor views"):
        handle = ff.run_sweep(odd_plan(data).head(1), OddGPT, views, lm_loss, mode="local", eval_dataset=held,
                              train_config=config, background=True)
    assert handle.wait(120)["status"].eq("completed").all()


def test_a_model_defined_in_a_notebook_cell_is_sent_by_value(data):
    class Cell(GPT):  # like a class defined in a notebook: pickle cannot find it by name, cloudpickle sends it
        pass

    train, held, config = data
    plan = ff.plan_sweep(Cell, "d_model", [6e8], points_per_budget=3, tokens_per_param=100, size_span=6,
                         multiple_of=2, model_kwargs=SETTINGS, tokens_per_sample=16, train_config=config)
    handle = ff.run_sweep(plan, Cell, train, lambda logits, y: lm_loss(logits, y), mode="local",
                          eval_dataset=held, train_config=config, background=True)
    assert handle.wait(120)["status"].eq("completed").all()
    assert handle._sweep.worker.fallback is None


KERNEL = textwrap.dedent("""
    import sys, time
    import flops_fit as ff
    from flops_fit.examples import lm_loss, stdlib_datasets
    from tests._models import LockedData, OddGPT

    train, held = stdlib_datasets(seq_len=16, max_bytes=30_000)
    config = ff.TrainConfig(batch_size=16)
    plan = ff.plan_sweep(OddGPT, "d_model", [6e8], points_per_budget=3, tokens_per_param=100, size_span=6,
                         multiple_of=2, model_kwargs={"vocab_size": 256, "n_layer": 1, "block_size": 16, "n_head": 2,
                                                      "step_s": 60, "pid_dir": sys.argv[1]},
                         tokens_per_sample=16, train_config=config)
    handle = ff.run_sweep(plan, OddGPT, train, lm_loss, mode="local", eval_dataset=held, train_config=config,
                          background=True)
    handle.wait()
""")


def test_the_worker_ends_when_its_kernel_is_killed(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kernel = subprocess.Popen([sys.executable, "-c", KERNEL, str(tmp_path)], cwd=root)
    deadline = time.time() + 60
    while not [p for p in tmp_path.iterdir() if int(p.name) != kernel.pid] and time.time() < deadline:
        time.sleep(0.1)
    workers = [int(p.name) for p in tmp_path.iterdir() if int(p.name) != kernel.pid]
    assert workers, "the worker never trained"
    kernel.send_signal(signal.SIGKILL)
    kernel.wait()
    deadline = time.time() + 10
    while _alive(workers[0]) and time.time() < deadline:
        time.sleep(0.2)
    alive = _alive(workers[0])
    if alive:
        os.kill(workers[0], signal.SIGKILL)
    assert not alive, "the worker outlived its killed kernel"


def test_prestart_and_close_spare():
    worker.close_spare()
    worker.prestart()
    spare = worker._spare[0]
    assert spare.alive
    worker.close_spare()
    deadline = time.time() + 15  # a reaper thread joins it: poll rather than join beside it
    while spare.alive and time.time() < deadline:
        time.sleep(0.1)
    assert not spare.alive and not worker._spare


def test_the_designer_starts_a_worker_while_a_local_sweep_is_planned(data):
    pytest.importorskip("ipywidgets")
    from flops_fit.widgets import SweepDesigner

    train, held, config = data
    worker.close_spare()
    designer = SweepDesigner(GPT, "d_model", train, lm_loss, mode="mock", model_kwargs=SETTINGS,
                             train_config=config, eval_dataset=held, budgets=(1e9, 3e9),
                             n_budgets=2)
    assert not worker._spare  # mock mode trains nothing
    designer.mode.value = "local"
    assert worker._spare and worker._spare[0].alive
    spare = worker._spare[0].process.pid
    monitor = designer.run()
    while not any(e["type"] == "step" for e in monitor.handle.events):
        assert not monitor.done
        time.sleep(0.02)
    assert monitor.handle._sweep.worker.pid == spare  # the sweep trains on it
    monitor.stop()
    monitor.wait(60)
    assert worker._spare[0].process.pid == spare  # and it waits for the next


UNGUARDED = textwrap.dedent("""
    import flops_fit as ff
    from flops_fit.examples import GPT, lm_loss, stdlib_datasets

    train, held = stdlib_datasets(seq_len=16, max_bytes=30_000)
    config = ff.TrainConfig(batch_size=64)
    plan = ff.plan_sweep(GPT, "d_model", [6e8], points_per_budget=3, tokens_per_param=100, size_span=6,
                         multiple_of=2, model_kwargs={"vocab_size": 256, "n_layer": 1, "block_size": 16, "n_head": 2},
                         tokens_per_sample=16, train_config=config)
    handle = ff.run_sweep(plan, GPT, train, lm_loss, mode="local", eval_dataset=held, train_config=config,
                          background=True)
    print(handle.wait()["status"].tolist())
""")


def test_a_script_without_a_main_guard_is_told_how_to_fix_it(tmp_path):
    script = tmp_path / "unguarded.py"  # no `if __name__ == "__main__":`, so the spawned worker cannot start
    script.write_text(UNGUARDED)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "['completed', 'completed', 'completed']" in done.stdout
    assert "worker process ended while starting (exit code 1" in done.stderr
    assert 'if __name__ == "__main__":' in done.stderr
