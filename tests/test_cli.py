"""The four commands, tested as installed: build the wheel, install it into a fresh virtual environment,
run ff-plan, ff-train, ff-analyze and ff-visualize as subprocesses end to end in mock mode.

A config missing from the wheel or a broken entry point fails here. The fresh environment gets the
project's dependencies through a .pth file (so nothing is downloaded), but flops_fit itself only from
the wheel.
"""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import WIDE_MODEL

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-w", str(work / "dist"), "-q"], check=True)
    wheel = next((work / "dist").glob("flops_fit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for stage in ("plan", "train", "analyze", "visualize"):
        assert f"flops_fit/conf/{stage}.yaml" in names
    env_dir = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    site = Path(subprocess.run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True)
    where = subprocess.run([str(bin_dir / "python"), "-c", "import flops_fit; print(flops_fit.__file__)"],
                           check=True, capture_output=True, text=True, cwd=work).stdout
    assert str(site) in where  # the wheel's copy, not the source tree
    return bin_dir


def ff_spec(path):
    from flops_fit import SweepStore

    return SweepStore(path).spec()


def run(bin_dir, command, *args, cwd):
    return subprocess.run([str(bin_dir / command), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_four_stages_hand_off_through_the_sweep_directory(installed, tmp_path):
    done = run(installed, "ff-plan", "sweep_dir=sweep", "compute.min_flops=1e18", "compute.max_flops=1e21",
               "compute.num_budgets=4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "SweepPlan(36 runs over 4 budgets" in done.stdout
    assert (tmp_path / "sweep" / "plan.csv").exists()
    assert ff_spec(tmp_path / "sweep").points_per_budget == 9  # the PlanSpec is stored with the plan
    done = run(installed, "ff-train", "sweep_dir=sweep", "mode=mock", "seed=1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "36 runs in sweep: {'completed': 36}" in done.stdout
    assert len(list((tmp_path / "sweep" / "runs").glob("*.json"))) == 36
    done = run(installed, "ff-analyze", "sweep_dir=sweep", "extrapolate_to=[1e23]", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "| Compute (FLOPs) | N_opt | D_opt | D/N | Loss | Source |" in done.stdout
    assert "1.00e+23" in done.stdout and "N_opt ∝ C^" in done.stdout
    assert "Backtest, the largest budget held out" in done.stdout
    done = run(installed, "ff-visualize", "sweep_dir=sweep", "png=false", "out_dir=figs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "figs" / "isoflops.html").exists() and (tmp_path / "figs" / "scaling_laws.html").exists()
    assert not list(tmp_path.glob("outputs"))  # Hydra leaves no output directories behind


def test_copies_of_ff_train_share_one_sweep_directory(installed, tmp_path):
    """The way to scale out without Dask: start N copies of ff-train on one directory (a SLURM array on a
    shared filesystem, say); each run is claimed by one of them, and all end when the sweep is done."""
    done = run(installed, "ff-plan", "sweep_dir=sweep", "compute.min_flops=1e18", "compute.max_flops=1e21",
               "compute.num_budgets=4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    copies = [subprocess.Popen([str(installed / "ff-train"), "sweep_dir=sweep", "mode=mock"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for copy in copies:
        out, err = copy.communicate(timeout=300)
        assert copy.returncode == 0, err
        assert "36 runs in sweep: {'completed': 36}" in out  # each copy ends with the whole sweep
    assert len(list((tmp_path / "sweep" / "runs").glob("*.json"))) == 36
    assert not list((tmp_path / "sweep" / "claims").glob("*.claim"))


def test_help_lists_the_options(installed, tmp_path):
    done = run(installed, "ff-plan", "--help", cwd=tmp_path)
    assert done.returncode == 0
    for option in ("compute:", "min_flops", "planning:", "points_per_budget", "model:", "_target_"):
        assert option in done.stdout
    assert "ff-plan: find model sizes" in done.stdout


def test_mistakes_are_reported_plainly(installed, tmp_path):
    done = run(installed, "ff-train", "sweep_dir=nowhere", cwd=tmp_path)
    assert done.returncode == 2 and "run ff-plan sweep_dir=nowhere first" in done.stderr
    done = run(installed, "ff-plan", "compute.min_flops=1e12", "compute.max_flops=1e13", cwd=tmp_path)
    assert done.returncode == 2 and "cannot serve" in done.stderr
    # planning.* is PlanSpec as a structured config: a misspelt or mistyped option is refused by name
    done = run(installed, "ff-plan", "planning.points_per_budgt=5", cwd=tmp_path)
    assert done.returncode != 0 and "points_per_budgt" in done.stderr
    done = run(installed, "ff-plan", "planning.size_span=wide", cwd=tmp_path)
    assert done.returncode != 0 and "size_span" in done.stderr


def test_the_wrapper_example(tmp_path):
    from flops_fit.examples import example_cli_wrapper

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        example_cli_wrapper.main(["--budgets", "1e18", "3e18", "1e19", "--layers", "6", "--sweep-dir", "w"])
    finally:
        os.chdir(cwd)
    assert len(list((tmp_path / "w" / "runs").glob("*.json"))) == 27
    assert (tmp_path / "w" / "figures" / "isoflops.html").exists()


def test_your_own_model_and_real_training_from_the_command_line(installed, tmp_path):
    (tmp_path / "mymodels.py").write_text(WIDE_MODEL)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([str(installed / "ff-plan"), "sweep_dir=mine", "model._target_=mymodels.Wide",
                           "~model.n_layer", "+model.depth=3", "size_param=width", "compute.budgets=[1e12,1e13]",
                           "planning.points_per_budget=5"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "SweepPlan(10 runs over 2 budgets" in done.stdout
    # a factory flops_fit does not ship is imported only when ff-train is told it, not on the directory's word
    done = subprocess.run([str(installed / "ff-train"), "sweep_dir=mine"], cwd=tmp_path, capture_output=True,
                          text=True, env=env)
    assert done.returncode == 2 and "model._target_=mymodels.Wide" in done.stderr, done.stderr
    done = subprocess.run([str(installed / "ff-train"), "sweep_dir=mine", "model._target_=mymodels.Wide"],
                          cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "10 runs in mine: {'completed': 10}" in done.stdout, done.stderr

    gpt = ["model.n_layer=1", "+model.vocab_size=256", "+model.block_size=16", "+model.n_head=2"]
    # small runs (about 1,700 steps in all): this checks the plumbing of real training, not what it learns
    done = run(installed, "ff-plan", "sweep_dir=real", *gpt, "compute.budgets=[5e9,1e10]",
               "planning.points_per_budget=3", "planning.tokens_per_param=50", "planning.size_span=3",
               "planning.multiple_of=2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = run(installed, "ff-train", "sweep_dir=real", "mode=local", "dataset.seq_len=16",
               "+dataset.max_bytes=200000", "train.batch_size=64", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "6 runs in real: {'completed': 6}" in done.stdout


def test_an_adaptive_sweep_from_the_command_line(installed, tmp_path):
    done = run(installed, "ff-plan", "sweep_dir=sweep", "compute.budgets=[1e17,1e18,1e19]",
               "planning.strategy=adaptive", "planning.target_precision=0.3", "model.n_layer=2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "adaptive: a start design of 9 runs" in done.stdout
    done = run(installed, "ff-train", "sweep_dir=sweep", "parallel=3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    from flops_fit import SweepStore

    store = SweepStore(tmp_path / "sweep")
    assert len(store.plan()) > 9 and store.spec().parallel == 3 and "refine" in set(store.plan()["reason"])
    # a fixed plan, trained adaptively instead
    done = run(installed, "ff-plan", "sweep_dir=fixed", "compute.budgets=[1e17,1e18,1e19]", "model.n_layer=2",
               cwd=tmp_path)
    done = run(installed, "ff-train", "sweep_dir=fixed", "strategy=adaptive", "target_precision=0.3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = SweepStore(tmp_path / "fixed").finished()
    assert set(runs["reason"]) <= {"new budget", "bracket left", "bracket right", "refine"}
    done = run(installed, "ff-train", "sweep_dir=sweep", "target_precision=1.5", cwd=tmp_path)
    assert done.returncode == 2 and "target_precision" in done.stderr
