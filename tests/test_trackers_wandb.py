"""Weights & Biases both ways, offline (WANDB_MODE=offline): what the run directories hold, read back with the
wandb package's own reader, the export-CSV layout, and the errors of reading a project without login or network."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

wandb = pytest.importorskip("wandb")

import flops_fit as ff  # noqa: E402
from flops_fit import PlantedLaw, load_results, plan_sweep, run_sweep  # noqa: E402
from flops_fit.examples import GPT  # noqa: E402
from flops_fit.integrations import WandbCallback  # noqa: E402


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No login, no network: W&B writes runs locally, and nothing reads the user's own netrc."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture(scope="module")
def plan():
    return plan_sweep(GPT, "d_model", [1e17, 1e18], model_kwargs={"n_layer": 4})


@pytest.fixture(scope="module")
def logged(plan, tmp_path_factory):
    """A mock sweep logged offline: (results, curves, the wandb directory)."""
    root = tmp_path_factory.mktemp("wandb")
    os.environ["WANDB_MODE"] = "offline"
    try:
        results, curves = run_sweep(plan, mode="mock", law=PlantedLaw(), seed=2, return_curves=True,
                                    callbacks=[WandbCallback("scaling", dir=root, mode="offline")])
    finally:
        os.environ.pop("WANDB_MODE", None)
    return results, curves, root / "wandb"


def _inspect(run_dir):
    """Every record of a run's .wandb log, read by wandb's own reader (`wandb leet inspect --json`)."""
    cli = os.path.join(os.path.dirname(sys.executable), "wandb")
    out = subprocess.run([cli, "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_each_run_directory_holds_config_summary_and_history(logged):
    results, curves, root = logged
    run_dirs = sorted(p for p in root.iterdir() if p.name.startswith("offline-run-"))
    assert len(run_dirs) == len(results)
    records = _inspect(run_dirs[0])
    config = next(r["run"]["config"]["update"] for r in records if r["type"] == "run")
    row = results.set_index("run_id").loc[config["flops_fit.run_id"]]
    assert config["budget"] == row["budget"] and config["params"] == row["params"]
    assert config["d_model"] == row["size"] and config["mode"] == "mock" and config["law.E"] == PlantedLaw().E
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    curve = curves[curves["run_id"] == config["flops_fit.run_id"]]
    assert [h["step"] for h in history] == curve["step"].tolist()
    assert [h["train_loss"] for h in history] == curve["loss"].tolist()
    assert [h["tokens_so_far"] for h in history] == curve["tokens"].tolist()
    summary = {}
    for record in records:
        if record["type"] == "summary":
            summary.update(record["summary"].get("update", {}))
    assert summary["loss"] == row["loss"] and summary["status"] == "completed"
    assert next(r["exit"] for r in records if r["type"] == "exit").get("exit_code", 0) == 0


def test_offline_runs_round_trip_to_the_same_fit(logged):
    results, _, root = logged
    back = load_results(wandb=root)
    assert sorted(back["run_id"]) == sorted(results["run_id"])
    joined = results.merge(back, on="run_id", suffixes=("", "_back"))
    for column in ("budget", "params", "tokens", "loss", "flops"):
        np.testing.assert_array_equal(joined[column].to_numpy(float), joined[f"{column}_back"].to_numpy(float))
    assert ff.Result.from_results(back).law == PlantedLaw()
    np.testing.assert_array_equal(_constants(load_results(results)), _constants(back))


def _constants(frame):
    laws = ff.vpnls_laws(ff.vpnls_optima(ff.fit_vpnls(frame), frame)).set_index("quantity")
    return laws[["coefficient", "exponent"]].to_numpy()


def test_a_resumed_sweep_reads_back_each_run_once(plan, tmp_path):
    store = tmp_path / "sweep"
    for part in (plan.iloc[:4], plan):
        run_sweep(part, mode="mock", store=store, callbacks=[WandbCallback("p", dir=tmp_path, mode="offline")])
    back = load_results(wandb=tmp_path / "wandb")
    assert sorted(back["run_id"]) == sorted(plan["run_id"]) and set(back["sweep"]) == {"sweep"}


def test_an_export_csv_in_wandbs_layout_reads_like_the_runs(logged, tmp_path):
    """W&B's "Export CSV" of a runs table: Name, State, Notes, User, Tags, Created, Runtime, Sweep, then the config
    and summary keys as columns."""
    results, _, _ = logged
    export = pd.DataFrame({
        "Name": [f"d_model={s} @ {b:.3g}" for s, b in zip(results["size"], results["budget"])],
        "State": "finished", "Notes": "-", "User": "someone", "Tags": "", "Created": "2026-11-02T10:00:00.000Z",
        "Runtime": 3, "Sweep": "",
        "budget": results["budget"], "d_model": results["size"], "params": results["params"],
        "tokens": results["tokens"], "flops_fit.run_id": results["run_id"], "loss": results["loss"],
        "flops": results["flops"],
    })
    export.loc[0, "State"] = "crashed"
    path = tmp_path / "wandb_export_2026-11-02.csv"
    export.to_csv(path, index=False)
    everything = load_results(wandb=path, completed_only=False)
    assert everything.set_index("run_id").loc[results["run_id"][0], "status"] == "failed"
    with pytest.warns(ff.FitWarning, match="1 run"):
        back = load_results(wandb=str(path))
    assert len(back) == len(results) - 1 and set(back["status"]) == {"completed"}


def test_reading_a_project_says_what_it_needs():
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"'wandb' parameter of load_results.*W&B login.*wandb login.*"
                                         r"load_results\(wandb='./wandb'\)"):
        load_results(wandb="someone/scaling")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ["WANDB_API_KEY"], os.environ["WANDB_BASE_URL"] = "x" * 40, f"http://127.0.0.1:{port}"
    try:
        with pytest.raises(ConnectionError, match="needs the network"):
            load_results(wandb="someone/scaling")
    finally:
        os.environ.pop("WANDB_API_KEY"), os.environ.pop("WANDB_BASE_URL")
    assert time.monotonic() - start < 15


def test_logging_online_without_a_login_is_refused_before_any_run():
    with pytest.raises(ValueError, match=r"'mode' parameter of WandbCallback.*wandb login.*mode='offline'"):
        WandbCallback("p", mode="online")


def test_bad_sources_and_missing_package_are_named(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="'wandb' parameter of load_results.*existing W&B runs export"):
        load_results(wandb=tmp_path / "missing.csv")
    with pytest.raises(ValueError, match=r"'wandb' parameter of load_results.*run-\*.wandb"):
        load_results(wandb=tmp_path)
    with pytest.raises(ValueError, match="'mode' parameter of WandbCallback"):
        WandbCallback(mode="sometimes")
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"pip install 'flops_fit\[wandb\]'"):
        WandbCallback(mode="offline")


def test_importing_the_package_and_its_integrations_loads_no_tracker():
    code = ("import sys, flops_fit, flops_fit.integrations; flops_fit.load_results; "
            "print('mlflow' in sys.modules, 'wandb' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_ff_analyze_reads_offline_runs_and_parses_every_source_form(logged, capsys):
    from hydra import compose, initialize_config_module

    from flops_fit.cli import _tracker_source, run_analyze

    results, _, root = logged
    assert _tracker_source("mlflow://127.0.0.1:5000/my%20exp") == {"mlflow": "my exp",
                                                                   "tracking_uri": "http://127.0.0.1:5000"}
    assert _tracker_source("mlflow+https://mlflow.example.org/e") == {"mlflow": "e",
                                                                      "tracking_uri": "https://mlflow.example.org"}
    assert _tracker_source("mlflow:e") == {"mlflow": "e"}
    assert _tracker_source("wandb://team/project") == {"wandb": "team/project"}
    assert _tracker_source("wandb:runs.csv") == {"wandb": "runs.csv"}
    for bad in ("mlflow://127.0.0.1:5000", "s3://bucket/runs", "wandb:"):
        with pytest.raises(ValueError, match=f"source={bad}"):
            _tracker_source(bad)
    with initialize_config_module(config_module="flops_fit.conf", version_base="1.3"):
        result = run_analyze(compose("analyze", overrides=[f"source=wandb:{root}"]))
    assert sorted(result.results["run_id"]) == sorted(results["run_id"])
    assert "| Compute (FLOPs) |" in capsys.readouterr().out
