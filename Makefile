# Two commands set everything up on a fresh clone:
#   make demo   create .venv, install flops_fit, run the quickstart in mock mode
#   make test   create .venv if missing, install the dev extras, run every test (notebooks too)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned: an open range would pull a multi-GB CUDA build; 2.13.0 is a CPU build here
TORCH := torch==2.13.0

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/python -m flops_fit.examples.example_quickstart --out flops_fit_output

# the layering contracts first (pyproject.toml); tests never reach a model or dataset hub: loaders fail
# fast offline and fall back to local data. One torch/BLAS thread per process: the tests' models are tiny and
# several processes (pytest, sweep workers, kernels, servers) share the cores; with a thread pool each, torch's
# threads spin against each other and the same training costs several times the CPU (tests/conftest.py too).
# TEST_WORKERS pytest-xdist processes share the files (a file's tests stay together, so module fixtures such as
# the browser test's JupyterLab start once): 2 took the suite from 731 s to 460 s on a 2-core machine;
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: $(VENV)/.installed-dev
	$(BIN)/lint-imports
	HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		$(BIN)/python -m pytest flops_fit tests --nbmake notebooks --durations=15 -n $(TEST_WORKERS) --dist loadfile

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_speed.py
	$(BIN)/python benchmarks/bench_accuracy.py
	$(BIN)/python benchmarks/bench_overhead.py
	$(BIN)/python benchmarks/bench_parametric.py
	$(BIN)/python benchmarks/bench_live.py

clean:
	rm -rf $(VENV) flops_fit_output .pytest_cache
