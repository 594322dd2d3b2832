"""MLflow both ways, against a real tracking server (SQLite backend, local artifact store, 127.0.0.1)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest

mlflow = pytest.importorskip("mlflow")

import flops_fit as ff  # noqa: E402
from flops_fit import PlantedLaw, load_results, plan_sweep, run_sweep  # noqa: E402
from flops_fit.examples import GPT  # noqa: E402
from flops_fit.integrations import MLflowCallback  # noqa: E402

BUDGETS = [1e17, 1e18, 1e19]
GPT4 = {"n_layer": 4}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``mlflow server`` on a free port, started for these tests and stopped after them."""
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--default-artifact-root", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no job workers: 2-3x faster here
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(uri + "/health", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def plan():
    return plan_sweep(GPT, "d_model", BUDGETS, model_kwargs=GPT4)


def _runs(uri, experiment):
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def _constants(frame):
    fit = ff.fit_vpnls(frame)
    laws = ff.vpnls_laws(ff.vpnls_optima(fit, frame)).set_index("quantity")
    return laws[["coefficient", "exponent"]].to_numpy()


def test_a_mock_sweep_round_trips_to_the_same_fit(server, plan):
    results, curves = run_sweep(plan, mode="mock", law=PlantedLaw(), seed=1, return_curves=True,
                                callbacks=[MLflowCallback("round-trip", tracking_uri=server)])
    back = load_results(mlflow="round-trip", tracking_uri=server)
    assert sorted(back["run_id"]) == sorted(results["run_id"])
    joined = results.merge(back, on="run_id", suffixes=("", "_back"))
    for column in ("budget", "params", "tokens", "loss", "flops", "size"):
        np.testing.assert_array_equal(joined[column].to_numpy(float), joined[f"{column}_back"].to_numpy(float))
    np.testing.assert_array_equal(_constants(load_results(results)), _constants(back))
    # what one tracker run holds: the knob and the plan as params, the curve by step and by tokens, tags
    client, runs = _runs(server, "round-trip")
    assert len(runs) == len(plan)
    run = next(r for r in runs if r.data.tags["flops_fit.run_id"] == results["run_id"][0])
    row = results.iloc[0]
    assert run.info.status == "FINISHED" and run.info.run_name == f"d_model={row['size']} @ {row['budget']:.3g}"
    assert run.data.params["d_model"] == str(row["size"]) and float(run.data.params["budget"]) == row["budget"]
    assert run.data.params["mode"] == "mock" and run.data.params["flop_convention"] == "6N"
    assert run.data.tags["flops_fit.status"] == "completed" and run.data.tags["flops_fit.sweep"].startswith("sweep-")
    curve = curves[curves["run_id"] == row["run_id"]]
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == curve["step"].tolist()
    assert [m.value for m in history] == curve["loss"].tolist()
    by_tokens = client.get_metric_history(run.info.run_id, "loss_by_tokens")
    assert [m.step for m in by_tokens] == curve["tokens"].tolist()
    assert run.data.metrics["loss"] == row["loss"]
    # Result.from_results takes it as it takes a CSV, and finds the planted law in the identity
    assert ff.Result.from_results(back).law == PlantedLaw()


def test_a_resumed_sweep_logs_each_run_once(server, plan, tmp_path):
    """Resumed from its directory, a sweep finds its tracker runs by run_id: it adds the runs it trains now and
    the finished ones the tracker lacks (here: the first part ran without the callback), and nothing twice."""
    store = tmp_path / "sweep"
    run_sweep(plan.iloc[:4], mode="mock", store=store)
    run_sweep(plan.iloc[:9], mode="mock", store=store, callbacks=[MLflowCallback("resume", tracking_uri=server)])
    for _ in range(2):
        run_sweep(plan, mode="mock", store=store, callbacks=[MLflowCallback("resume", tracking_uri=server)])
    client, runs = _runs(server, "resume")
    ids = [r.data.tags["flops_fit.run_id"] for r in runs]
    assert sorted(ids) == sorted(plan["run_id"]) and {r.data.tags["flops_fit.sweep"] for r in runs} == {"sweep"}
    early = next(r for r in runs if r.data.tags["flops_fit.run_id"] == plan["run_id"][0])  # logged from the store
    assert len(client.get_metric_history(early.info.run_id, "train_loss")) > 10
    assert early.data.metrics["loss"] == load_results(store).set_index("run_id").loc[plan["run_id"][0], "loss"]


def test_a_run_stopped_part_way_is_killed_and_replaced_when_trained_again(server, plan):
    """A sweep stopped mid-run leaves no tracker run 'RUNNING': it is ended KILLED, and the rerun that trains
    the run again replaces it (the old one goes to MLflow's trash) instead of adding a second."""
    row = plan.iloc[0].to_dict()
    stopped = MLflowCallback("stopped", tracking_uri=server, sweep="s")
    identity = {"mode": "mock", "seed": 0, "law": vars(PlantedLaw())}
    stopped({"type": "sweep_start", "store": None, "runs": 1, "identity": identity, "model": None, "spec": None})
    stopped({"type": "run_start", "run_id": row["run_id"], "steps": 10, "tokens": 1, "device": "cpu", "row": row})
    stopped({"type": "step", "run_id": row["run_id"], "step": 1, "steps": 10, "tokens": 100, "loss": 5.0, "lr": 1e-3})
    stopped({"type": "sweep_end", "stopped": True, "counts": {}})
    client, runs = _runs(server, "stopped")
    assert [r.info.status for r in runs] == ["KILLED"]
    old = runs[0].info.run_id
    run_sweep(plan.iloc[:1], mode="mock", seed=0, callbacks=[MLflowCallback("stopped", tracking_uri=server, sweep="s")])
    _, runs = _runs(server, "stopped")
    assert [r.info.status for r in runs] == ["FINISHED"] and runs[0].data.tags["flops_fit.replaces"] == old
    assert client.get_run(old).info.lifecycle_stage == "deleted"


def test_runs_from_executor_workers_are_logged(server, plan):
    with ProcessPoolExecutor(2) as pool:
        results = run_sweep(plan, mode="mock", executor=pool, callbacks=[MLflowCallback("pool", tracking_uri=server)])
    back = load_results(mlflow="pool", tracking_uri=server)
    assert sorted(back["run_id"]) == sorted(results["run_id"])
    client, runs = _runs(server, "pool")
    assert all(len(client.get_metric_history(r.info.run_id, "train_loss")) > 10 for r in runs[:3])


def test_the_designer_logs_its_sweep(server):
    pytest.importorskip("ipywidgets")
    from flops_fit.widgets import SweepDesigner

    designer = SweepDesigner(GPT, "d_model", model_kwargs=GPT4, budgets=(1e17, 1e18), law=PlantedLaw(),
                             callbacks=[MLflowCallback("designer", tracking_uri=server)])
    designer.run_button.click()
    results = designer.monitor.wait(120)
    assert sorted(load_results(mlflow="designer", tracking_uri=server)["run_id"]) == sorted(results["run_id"])


def test_failed_runs_keep_their_status_and_error(server, plan):
    rows = plan.iloc[:2].to_dict("records")
    callback = MLflowCallback("failures", tracking_uri=server, sweep="f")
    callback({"type": "sweep_start", "store": None, "runs": 2, "identity": {"mode": "local"}, "model": None,
              "spec": None})
    for row, status in zip(rows, ("completed", "failed")):
        outcome = {"status": status, "loss": 3.0 if status == "completed" else float("nan"),
                   "error": None if status == "completed" else "RuntimeError: CUDA out of memory"}
        callback({"type": "run_end", "run_id": row["run_id"], **outcome, "record": {**row, **outcome},
                  "curve": pd.DataFrame(columns=["run_id", "step", "tokens", "flops", "loss", "lr"])})
    callback({"type": "sweep_end", "stopped": False, "counts": {}})
    everything = load_results(mlflow="failures", tracking_uri=server, completed_only=False)
    failed = everything.set_index("status").loc["failed"]
    assert failed["error"] == "RuntimeError: CUDA out of memory"
    with pytest.warns(ff.FitWarning, match="did not complete"):
        assert len(load_results(mlflow="failures", tracking_uri=server)) == 1


def test_runs_logged_by_other_code_are_read_with_the_csv_aliases(server):
    """A user's own MLflow runs (their names: n_params, tokens_seen, compute, val_loss) read as any CSV would."""
    client = mlflow.MlflowClient(tracking_uri=server)
    experiment = client.create_experiment("their-runs")
    for n, d, loss in ((1e6, 1.7e11, 3.1), (2e6, 8.3e10, 3.0), (4e6, 4.2e10, 3.05)):
        run = client.create_run(experiment)
        client.log_param(run.info.run_id, "n_params", n)
        client.log_param(run.info.run_id, "tokens_seen", d)
        client.log_metric(run.info.run_id, "compute", 6 * n * d)
        client.log_metric(run.info.run_id, "val_loss", loss)
        client.set_terminated(run.info.run_id)
    frame = load_results(mlflow="their-runs", tracking_uri=server)
    assert sorted(frame["params"]) == [1e6, 2e6, 4e6] and set(frame["budget"]) == {1e18}
    assert set(frame["status"]) == {"completed"}


def test_runs_without_the_needed_metrics_name_what_is_missing(server):
    client = mlflow.MlflowClient(tracking_uri=server)
    experiment = client.create_experiment("no-loss")
    run = client.create_run(experiment)
    client.log_param(run.info.run_id, "lr", 3e-3)
    client.log_metric(run.info.run_id, "accuracy", 0.5)
    with pytest.raises(ValueError, match=r"'mlflow' parameter of load_results.*without \['params', 'tokens', "
                                         r"'loss', 'budget \(or flops\)'\].*accuracy"):
        load_results(mlflow="no-loss", tracking_uri=server)


def test_an_experiment_with_two_sweeps_asks_which(server, plan):
    for seed in (0, 1):
        run_sweep(plan.iloc[:3], mode="mock", seed=seed, callbacks=[MLflowCallback("mixed", tracking_uri=server)])
    with pytest.raises(ValueError, match=r"'mlflow' parameter of load_results.*mixes 2 sweeps.*'sweep-\w+' "
                                         r"\(3 runs, seed [01]\)"):
        load_results(mlflow="mixed", tracking_uri=server)
    _, runs = _runs(server, "mixed")
    first = sorted({r.data.tags["flops_fit.sweep"] for r in runs})[0]
    assert set(load_results(mlflow="mixed", tracking_uri=server, sweep=first)["sweep"]) == {first}
    with pytest.raises(ValueError, match="'sweep' parameter of load_results.*There:"):
        load_results(mlflow="mixed", tracking_uri=server, sweep="no-such-sweep")


def test_an_experiment_that_does_not_exist_is_named(server):
    with pytest.raises(ValueError, match=r"'mlflow' parameter of load_results must be the name or id of an existing "
                                         r"MLflow experiment. Got 'nope'.*has: \["):
        load_results(mlflow="nope", tracking_uri=server)


def test_an_address_that_answers_but_not_as_mlflow_is_named(server):
    with pytest.raises(ConnectionError, match="'tracking_uri' parameter of load_results.*not as MLflow does"):
        load_results(mlflow="x", tracking_uri=server + "/not-mlflow")


def test_an_unreachable_server_fails_within_seconds():
    dead = f"http://127.0.0.1:{_free_port()}"
    for attempt in (lambda: MLflowCallback("x", tracking_uri=dead),
                    lambda: load_results(mlflow="x", tracking_uri=dead)):
        start = time.monotonic()
        with pytest.raises(ConnectionError, match=r"'tracking_uri' parameter of .* running MLflow tracking server"
                                                  r".*mlflow server"):
            attempt()
        assert time.monotonic() - start < 10


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="'source' parameter of load_results.*one of mlflow= or wandb="):
        load_results("results.csv", mlflow="x")
    with pytest.raises(ValueError, match="'source' parameter of load_results"):
        load_results()
    with pytest.raises(ValueError, match="'tracking_uri' parameter of load_results must be given only with mlflow="):
        load_results(pd.DataFrame(), tracking_uri="http://x")
    with pytest.raises(ValueError, match="'sweep' parameter of MLflowCallback"):
        MLflowCallback(sweep="")


def test_a_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ImportError, match=r"pip install 'flops_fit\[mlflow\]'"):
        MLflowCallback("x", tracking_uri="sqlite:///unused.db")


def test_the_command_line_logs_and_reads_a_sweep(server, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    sweep = tmp_path / "cli"
    bin_dir = os.path.dirname(sys.executable)

    def stage(name, *args):
        return subprocess.run([os.path.join(bin_dir, name), f"sweep_dir={sweep}", *args], capture_output=True,
                              text=True, env=env, timeout=300)

    assert stage("ff-plan", "compute.budgets=[1e17,1e18,1e19]").returncode == 0
    trained = stage("ff-train", "callbacks=[mlflow]", f"callbacks.mlflow.tracking_uri={server}",
                    "callbacks.mlflow.experiment=cli")
    assert trained.returncode == 0, trained.stderr
    analysed = stage("ff-analyze", f"source=mlflow://{server.removeprefix('http://')}/cli")
    assert analysed.returncode == 0, analysed.stderr
    assert ff.load(sweep).chinchilla_table() in analysed.stdout  # the same fit as from the sweep directory
    dead = stage("ff-analyze", f"source=mlflow://127.0.0.1:{_free_port()}/cli")
    assert dead.returncode == 2 and "error: The 'tracking_uri' parameter" in dead.stderr
