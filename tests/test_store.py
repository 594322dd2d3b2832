"""The sweep directory: durable records, resume, failures, executors and background runs."""

import concurrent.futures as cf
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import flops_fit as ff
from flops_fit.examples import GPT
from flops_fit.store import SweepStore

from .conftest import BUDGETS


@pytest.fixture(scope="module")
def plan():
    return ff.plan_sweep(GPT, "d_model", BUDGETS, model_kwargs={"n_layer": 4})


def test_store_layout_and_loading(plan, tmp_path):
    results = ff.run_sweep(plan, mode="mock", seed=0, store=tmp_path / "sweep")
    root = tmp_path / "sweep"
    assert (root / "plan.csv").exists()
    records = sorted(p.stem for p in (root / "runs").glob("*.json"))
    assert records == sorted(plan["run_id"])
    assert sorted(p.stem for p in (root / "curves").glob("*.csv")) == records
    record = json.loads((root / "runs" / f"{records[0]}.json").read_text())
    assert record["status"] == "completed" and record["run_id"] == records[0]
    loaded = ff.load_results(root)
    assert len(loaded) == 45
    pd.testing.assert_series_equal(loaded.set_index("run_id")["loss"].sort_index(),
                                   results.set_index("run_id")["loss"].sort_index(), check_names=False)
    result = ff.load(root)
    assert isinstance(result, ff.Result) and len(result.curves["run_id"].unique()) == 45
    assert result.exponent() == pytest.approx(ff.PlantedLaw().a, abs=0.02)
    assert not list(root.rglob("*.tmp"))  # nothing half-written left behind


def test_resume_runs_only_what_is_new(plan, tmp_path):
    root = tmp_path / "sweep"
    first_plan = plan[plan["budget"] <= 1e19]
    ff.run_sweep(first_plan, mode="mock", store=root)
    stamps = {p.name: p.stat().st_mtime_ns for p in (root / "runs").glob("*.json")}
    events = []
    ff.run_sweep(plan, mode="mock", store=root, callbacks=[events.append])
    ran = {e["run_id"] for e in events if e["type"] == "run_end"}
    assert ran == set(plan.loc[plan["budget"] > 1e19, "run_id"])  # only the new budgets ran
    assert {p.name: p.stat().st_mtime_ns for p in (root / "runs").glob("*.json") if p.name in stamps} == stamps
    again = []
    ff.run_sweep(plan, mode="mock", store=root, callbacks=[again.append])
    assert [e["type"] for e in again] == ["sweep_start", "sweep_end"]  # everything finished: nothing runs twice
    assert again[0]["finished"] == sorted(plan["run_id"]) and again[0]["store"] == str(root)


def test_changed_settings_are_refused_so_a_fit_never_mixes_them(tmp_path):
    root = tmp_path / "sweep"
    old = ff.plan_sweep(GPT, "d_model", [1e17, 1e18], model_kwargs={"n_layer": 4})
    new = ff.plan_sweep(GPT, "d_model", [1e17, 1e18], model_kwargs={"n_layer": 6})
    ff.run_sweep(old, mode="mock", store=root)
    with pytest.raises(ValueError, match=r"this sweep alone.*n_layer: 4 there, 6 here"):
        ff.run_sweep(new, mode="mock", store=root)
    with pytest.raises(ValueError, match="seed: 0 there, 1 here"):
        ff.run_sweep(old, mode="mock", seed=1, store=root)
    assert set(ff.load_results(root, completed_only=False)["run_id"]) == set(old["run_id"])  # nothing added
    ff.run_sweep(new, mode="mock", store=tmp_path / "other")  # its own directory works


class Flaky(GPT):
    """Fails at one size, to exercise failure records."""

    def __init__(self, **kwargs):
        import torch

        if kwargs.get("d_model") == 24 and torch.empty(0).device.type != "meta":  # planning builds on meta
            raise RuntimeError("CUDA out of memory (pretend)")
        super().__init__(**kwargs)


def test_failures_are_recorded_left_out_and_retried(tmp_path):
    from flops_fit.examples import lm_loss, stdlib_datasets

    train, held = stdlib_datasets(seq_len=16, max_bytes=50_000)
    kwargs = {"vocab_size": 256, "n_layer": 1, "block_size": 16, "n_head": 2}
    plan = ff.plan_sweep(Flaky, "d_model", [1e10, 3e10], model_kwargs=kwargs, points_per_budget=3,
                         tokens_per_param=100, size_span=10, multiple_of=2, size_values=[8, 24, 48])
    assert 24 in set(plan["size"])
    config = ff.TrainConfig(batch_size=128)
    root = tmp_path / "sweep"
    results = ff.run_sweep(plan, Flaky, train, lm_loss, mode="local", eval_dataset=held, train_config=config,
                           store=root)
    failed = results[results["status"] == "failed"]
    assert set(failed["size"]) == {24} and failed["error"].str.contains("out of memory").all()
    assert (results.loc[results["size"] != 24, "status"] == "completed").all()
    assert len(failed) == 2  # size 24 at each budget
    with pytest.warns(ff.FitWarning, match=r"did not complete: \{'failed': 2\}"):
        usable = ff.load_results(root)  # what the fits see: the failures left out, with a warning
    assert len(usable) == len(plan) - 2
    events = []
    ff.run_sweep(plan, Flaky, train, lm_loss, mode="local", eval_dataset=held, train_config=config, store=root,
                 callbacks=[events.append])
    assert not [e for e in events if e["type"] == "run_start"]  # failures are not rerun by default
    ff.run_sweep(plan, Flaky, train, lm_loss, mode="local", eval_dataset=held, train_config=config, store=root,
                 retry_failed=True, callbacks=[events.append])
    assert {e["run_id"] for e in events if e["type"] == "run_end"} == set(failed["run_id"])


def test_process_pool(plan, tmp_path):
    with cf.ProcessPoolExecutor(max_workers=2) as pool:
        results = ff.run_sweep(plan, mode="mock", seed=0, executor=pool, store=tmp_path / "sweep")
    serial = ff.run_sweep(plan, mode="mock", seed=0)
    assert (results["status"] == "completed").all()
    assert np.allclose(results["loss"], serial["loss"])  # the same runs, whichever process ran them
    assert len(list((tmp_path / "sweep" / "runs").glob("*.json"))) == 45


def test_dask_local_cluster(plan, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                                  processes=True) as cluster, distributed.Client(cluster) as client:
        results = ff.run_sweep(plan.head(12), mode="mock", seed=0, executor=client.get_executor(),
                               store=tmp_path / "sweep")
    assert (results["status"] == "completed").all()
    assert len(list((tmp_path / "sweep" / "runs").glob("*.json"))) == 12


def test_submitit_local_executor(plan, tmp_path):
    submitit = pytest.importorskip("submitit")
    executor = submitit.LocalExecutor(folder=str(tmp_path / "submitit"))
    executor.update_parameters(timeout_min=5)
    results = ff.run_sweep(plan.head(3), mode="mock", seed=0, executor=executor, store=tmp_path / "sweep")
    assert (results["status"] == "completed").all()
    assert len(list((tmp_path / "sweep" / "runs").glob("*.json"))) == 3


def test_a_thread_pool_needs_nothing_pickled_and_other_engines_are_told_what_cannot_go(plan):
    from flops_fit.examples import lm_loss, stdlib_datasets

    train, _ = stdlib_datasets(seq_len=16, max_bytes=20_000)
    small = ff.plan_sweep(GPT, "d_model", [3e9], model_kwargs={"vocab_size": 256, "n_layer": 1, "block_size": 16,
                                                                "n_head": 2}, tokens_per_param=100, multiple_of=2)
    generator = (x for x in [])  # nothing pickles a generator, not even cloudpickle
    with cf.ThreadPoolExecutor() as pool:  # threads share the job: a lambda, a generator are fine
        loss = lambda out, y, unused=generator: lm_loss(out, y)  # noqa: E731
        assert ff.run_sweep(small.head(1), GPT, train, loss, mode="local", executor=pool)["status"].eq(
            "completed").all()

    class Engine:  # any other engine pickles what it is given: told before a run, naming what cannot go
        def submit(self, fn, *args):
            raise AssertionError("nothing may be submitted")

    with pytest.raises(ValueError, match=r"the 'loss_fn' \(function\) cannot be sent to the executor's workers "
                                         r"\(Engine\).*generator.*module level"):
        ff.run_sweep(small, GPT, train, loss, mode="local", executor=Engine())


def test_background_sweep_can_be_stopped_and_resumed(tmp_path):
    from flops_fit.examples import lm_loss, stdlib_datasets

    train, held = stdlib_datasets(seq_len=16, max_bytes=100_000)
    kwargs = {"vocab_size": 256, "n_layer": 1, "block_size": 16, "n_head": 2}
    plan = ff.plan_sweep(GPT, "d_model", [3e9, 1e10], model_kwargs=kwargs, points_per_budget=3,
                         tokens_per_param=100, size_span=10, multiple_of=2)
    root = tmp_path / "sweep"
    handle = ff.run_sweep(plan, GPT, train, lm_loss, mode="local", eval_dataset=held, store=root,
                          train_config=ff.TrainConfig(batch_size=32), background=True)
    assert isinstance(handle, ff.SweepHandle)
    deadline = __import__("time").time() + 60
    while not any(e["type"] == "run_end" for e in list(handle.events)) and __import__("time").time() < deadline:
        __import__("time").sleep(0.05)  # the caller stays free while the sweep runs
    handle.stop()
    partial = handle.wait(timeout=60)
    assert handle.done
    finished = set(partial.loc[partial["status"] == "completed", "run_id"])
    assert 1 <= len(finished) < len(plan)
    assert (partial.loc[~partial["run_id"].isin(finished), "status"] == "pending").all()
    assert {p.stem for p in (root / "runs").glob("*.json")} == finished  # an abandoned run leaves no record
    rest = ff.run_sweep(plan, GPT, train, lm_loss, mode="local", eval_dataset=held, store=root,
                        train_config=ff.TrainConfig(batch_size=32))
    assert (rest["status"] == "completed").all()


def test_store_path_that_is_a_file(tmp_path, plan):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="'store' parameter of run_sweep"):
        ff.run_sweep(plan, mode="mock", store=tmp_path / "f")
    with pytest.raises(ValueError, match="'path' parameter of load"):
        ff.load(tmp_path / "nothing")


def test_records_hold_no_pickle(plan, tmp_path):
    ff.run_sweep(plan.head(2), mode="mock", store=tmp_path / "s")
    for path in (tmp_path / "s").rglob("*"):
        if path.is_file():
            assert path.suffix in {".csv", ".json", ".lock"}
    assert SweepStore(tmp_path / "s").results()["status"].tolist() == ["completed", "completed"]


def test_gpu_pool_pins_one_gpu_per_worker():
    from .gpu_probe import visible_gpu_after_a_while  # light: the workers do not import torch to unpickle it

    pool = ff.gpu_pool([3, 5])
    try:
        futures = [pool.submit(visible_gpu_after_a_while) for _ in range(4)]
        assert sorted(f.result() for f in futures) == ["3", "3", "5", "5"]
    finally:
        pool.shutdown()
    with pytest.raises(ValueError, match="at least one GPU"):
        ff.gpu_pool([])


def test_a_corrupt_record_or_curve_is_named_set_aside_and_run_again(plan, tmp_path):
    small = plan[plan["budget"] <= 1e18]
    ff.run_sweep(small, mode="mock", store=tmp_path)
    broken, torn = sorted(small["run_id"])[:2]
    (tmp_path / "runs" / f"{broken}.json").write_text('{"run_id": "' + broken + '", "loss": 3.')  # truncated
    (tmp_path / "curves" / f"{torn}.csv").write_bytes(b"\x00\xff garbage\n\x01")
    with pytest.warns(UserWarning, match=f"{broken}.json cannot be read"):
        loaded = ff.load_results(tmp_path, completed_only=False)
    assert loaded.set_index("run_id").loc[broken, "status"] == "pending"
    assert (tmp_path / "runs" / "corrupt" / f"{broken}.json").exists()
    with pytest.warns(UserWarning, match=f"{torn}.csv cannot be read"):
        SweepStore(tmp_path).curves()
    assert (tmp_path / "curves" / "corrupt" / f"{torn}.csv").exists()
    events = []
    results = ff.run_sweep(small, mode="mock", store=tmp_path, callbacks=[events.append])
    assert sorted(e["run_id"] for e in events if e["type"] == "run_end") == sorted([broken, torn])  # only those
    assert results["status"].eq("completed").all()
    ff.load(tmp_path)  # fits again


def test_stray_curves_and_records_warn(plan, tmp_path):
    small = plan[plan["budget"] <= 1e17]
    ff.run_sweep(small, mode="mock", store=tmp_path)
    one, two = sorted(small["run_id"])[:2]
    (tmp_path / "curves" / f"{one}.csv").unlink()
    (tmp_path / "runs" / f"{two}.json").unlink()
    with pytest.warns(UserWarning) as caught:
        store = SweepStore(tmp_path)
        store.finished(), store.curves()
    text = " ".join(str(w.message) for w in caught)
    assert f"have no curve in curves/ (removed by hand?): ['{one}']" in text
    assert f"have no record in runs/ (runs stopped part-way; they run again): ['{two}']" in text


def test_only_the_stores_own_temporary_files_are_removed(plan, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / "runs").mkdir()
    (tmp_path / "notes").mkdir()
    ours = tmp_path / "runs" / f".abc.json.{pid}.k2j4h5g6.tmp"  # what write_atomic leaves when its writer dies
    theirs = [tmp_path / "notes" / f".abc.json.{pid}.k2j4h5g6.tmp", tmp_path / f".editor.{pid}.swpfile1.tmp",
              tmp_path / "runs" / f".draft.txt.{pid}.k2j4h5g6.tmp", tmp_path / "runs" / ".x.tmp"]
    for path in [ours, *theirs]:
        path.write_text("x")
    ff.run_sweep(plan[plan["budget"] <= 1e17], mode="mock", store=tmp_path)
    assert not ours.exists() and all(p.exists() for p in theirs)


def test_run_ids_cannot_write_outside_the_directory(plan, tmp_path):
    root = tmp_path / "inner" / "sweep"
    escaping = plan.iloc[:3].assign(run_id=["../../ESCAPED", "a/b", ".hidden"])
    with pytest.raises(ValueError, match=r"run_id values can name files.*\.\./\.\./ESCAPED"):
        ff.run_sweep(escaping, mode="mock", store=root)
    SweepStore(root, writer=True)
    (root / "plan.csv").write_text(escaping.to_csv(index=False))  # a shared plan.csv, read by ff-train
    with pytest.raises(ValueError, match="run_id values can name files"):
        ff.run_sweep(SweepStore(root).plan(), mode="mock", store=root)
    assert not list(tmp_path.rglob("ESCAPED*")) and not (tmp_path / "inner" / "a").exists()


def test_a_directory_that_already_mixes_sweeps_is_not_fitted(tmp_path):
    old = ff.plan_sweep(GPT, "d_model", [1e17, 1e18], model_kwargs={"n_layer": 4})
    ff.run_sweep(old, mode="mock", store=tmp_path)
    ff.run_sweep(old, mode="mock", store=tmp_path / "other", seed=3)
    for path in (tmp_path / "other" / "runs").glob("*.json"):  # as older versions let it happen
        record = json.loads(path.read_text())
        record["run_id"] = "x" + record["run_id"]
        (tmp_path / "runs" / f"x{path.name}").write_text(json.dumps(record))
    (tmp_path / "sweep.json").unlink()
    with pytest.raises(ValueError, match="holds runs made 2 different ways"):
        ff.load(tmp_path)
    with pytest.raises(ValueError, match="holds runs made 2 different ways"):
        ff.run_sweep(old, mode="mock", store=tmp_path)
