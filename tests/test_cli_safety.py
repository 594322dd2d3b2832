"""The command line treats a sweep directory as data, and says which key a mistake is in.

The stages run in-process through Hydra's compose API (fast), and the error path through the real
entry points in a subprocess: one line on stderr and exit code 2, no traceback.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from flops_fit.cli import PLAN_CONFIG, run_analyze, run_plan, run_train

from .conftest import WIDE_MODEL


def stage(name: str, *overrides: str):
    with initialize_config_module(config_module="flops_fit.conf", version_base="1.3"):
        return compose(name, overrides=list(overrides))


def cli(command: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    main = {"ff-plan": "plan_main", "ff-train": "train_main", "ff-analyze": "analyze_main",
            "ff-visualize": "visualize_main"}[command]
    return subprocess.run([sys.executable, "-c", f"from flops_fit.cli import {main}; {main}()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=env)


def plan(path: Path, *more: str) -> Path:
    run_plan(stage("plan", f"sweep_dir={path}", "compute.budgets=[1e17,1e18]", "model.n_layer=2", *more))
    return path


def plant(path: Path, target: str, **settings) -> None:
    lines = ["model:", f"  _target_: {target}", *[f"  {k}: {v}" for k, v in settings.items()], "size_param: mode"]
    (path / PLAN_CONFIG).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("mode", ["mock", "local"])
def test_a_sweep_directory_cannot_make_ff_train_call_its_code(tmp_path, mode):
    sweep = plan(tmp_path / "sweep")
    victim = tmp_path / "made_by_the_directory"
    plant(sweep, "os.makedirs", name=victim, exist_ok="true")
    with pytest.raises(ValueError, match=r"asks ff-train to import and call 'os\.makedirs'.*model\._target_=os\.makedirs"):
        run_train(stage("train", f"sweep_dir={sweep}", f"mode={mode}", "dataset.seq_len=16",
                             "+dataset.max_bytes=20000", "train.batch_size=4"))
    assert not victim.exists()


def test_a_factory_named_on_the_command_line_is_trusted(tmp_path):
    (tmp_path / "mymodels.py").write_text(WIDE_MODEL)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = cli("ff-plan", "sweep_dir=mine", "model._target_=mymodels.Wide", "~model.n_layer", "size_param=width",
               "compute.budgets=[1e12,1e13]", "planning.points_per_budget=3", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "next: ff-train sweep_dir=mine model._target_=mymodels.Wide" in done.stdout
    done = cli("ff-train", "sweep_dir=mine", cwd=tmp_path, env=env)
    assert done.returncode == 2 and "model._target_=mymodels.Wide" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = cli("ff-train", "sweep_dir=mine", "model._target_=mymodels.Other", cwd=tmp_path, env=env)
    assert done.returncode == 2 and "planned with 'mymodels.Wide'" in done.stderr, done.stderr
    done = cli("ff-train", "sweep_dir=mine", "model._target_=mymodels.Wide", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "6 runs in mine: {'completed': 6}" in done.stdout


def test_settings_in_the_directory_are_data_not_interpolations(tmp_path, monkeypatch):
    sweep = plan(tmp_path / "sweep")
    text = (sweep / PLAN_CONFIG).read_text().replace("size_param: d_model", "size_param: ${oc.env:FF_SECRET}")
    (sweep / PLAN_CONFIG).write_text(text)
    monkeypatch.setenv("FF_SECRET", "s3cret-value")
    with pytest.raises(ValueError, match="size_param"):
        run_train(stage("train", f"sweep_dir={sweep}"))
    written = [path.read_text() for path in sweep.rglob("*") if path.is_file()]
    assert not any("s3cret-value" in text for text in written)  # the environment is not read into the records


@pytest.mark.parametrize(("command", "override", "key"), [
    ("train", "seed=abc", "seed"),
    ("train", "retry_failed=maybe", "retry_failed"),
    ("train", "mode=gpu", "mode"),
    ("plan", "compute.max_flops=lots", "compute.max_flops"),
    ("plan", "compute.num_budgets=x", "compute.num_budgets"),
    ("plan", "compute.budgets=lots", "compute.budgets"),
    ("plan", "compute.budgets=[1e18,x]", "compute.budgets"),
    ("analyze", "bootstrap=abc", "bootstrap"),
])
def test_a_bad_value_names_its_key(tmp_path, command, override, key):
    sweep = plan(tmp_path / "sweep")
    run_train(stage("train", f"sweep_dir={sweep}"))
    runner = {"train": run_train, "plan": run_plan, "analyze": run_analyze}[command]
    with pytest.raises(ValueError, match=rf"^{key} must be .*Got "):
        runner(stage(command, f"sweep_dir={sweep}", override))


def test_one_budget_to_extrapolate_to_needs_no_brackets(tmp_path, capsys):
    sweep = plan(tmp_path / "sweep")
    run_train(stage("train", f"sweep_dir={sweep}"))
    run_analyze(stage("analyze", f"sweep_dir={sweep}", "extrapolate_to=1e23"))
    assert "1.00e+23" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["plan", "train", "analyze", "visualize"])
def test_a_file_given_as_sweep_dir_is_blamed_on_sweep_dir(tmp_path, command):
    (tmp_path / "afile").write_text("not a sweep")
    done = cli(f"ff-{command}", "sweep_dir=afile", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: sweep_dir=afile is a file, not a directory"), done.stderr
    assert "store" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["analyze", "visualize"])
def test_analyzing_before_anything_finished_says_so(tmp_path, command):
    plan(tmp_path / "sweep")
    done = cli(f"ff-{command}", "sweep_dir=sweep", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "nothing in sweep has finished yet (18 runs planned)" in done.stderr
    assert "ff-train sweep_dir=sweep" in done.stderr and "Rename your columns" not in done.stderr


def test_a_missing_sweep_dir_is_blamed_on_sweep_dir(tmp_path):
    done = cli("ff-analyze", "sweep_dir=nowhere", cwd=tmp_path)
    assert done.returncode == 2 and "sweep_dir=nowhere" in done.stderr and "'path' parameter" not in done.stderr
