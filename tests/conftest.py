from __future__ import annotations

import os

import pytest

# tests never reach a model or dataset hub: loaders are fed local files
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# one torch/BLAS thread per process (before torch loads; inherited by workers, kernels and CLI subprocesses): the
# models here are tiny and several processes share the cores, where torch's thread pools spin against each other
# and the same training costs several times the CPU (`make test` sets these too)
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from flops_fit import PlantedLaw, plan_sweep, run_sweep
from flops_fit.examples import GPT

BUDGETS = [1e17, 1e18, 1e19, 1e20, 1e21]


class Stack:
    """A plain (non-torch) factory whose knob is a depth: N = 1000 + 5000 * depth."""

    def __init__(self, depth: int, width: int = 50) -> None:
        if depth > 400:
            raise ValueError("too deep")
        self.depth, self.width = depth, width

    def num_params(self) -> int:
        return 1000 + 2 * self.width * self.width * self.depth


@pytest.fixture(scope="session")
def gpt_plan():
    return plan_sweep(GPT, "d_model", BUDGETS, model_kwargs={"n_layer": 4})


@pytest.fixture(scope="session")
def mock_results(gpt_plan):
    return run_sweep(gpt_plan, mode="mock", law=PlantedLaw(), seed=0, return_curves=True)


WIDE_MODEL = (  # a user's own model module, for the command line to import: mymodels.Wide(width, depth)
    "import torch\n\n"
    "class Wide(torch.nn.Module):\n"
    "    def __init__(self, width, depth=2):\n"
    "        super().__init__()\n"
    "        self.layers = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(depth)])\n\n"
    "    def num_params(self):\n"
    "        return sum(p.numel() for p in self.parameters())\n")
