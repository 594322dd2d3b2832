"""Bad training settings and budgets are refused at the boundary, before any compute (issue 14, item 6)."""

import numpy as np
import pytest
import torch

import flops_fit as ff
from flops_fit.examples import GPT, TokenDataset, lm_loss
from flops_fit.training import device as device_module
from flops_fit.training.config import TrainConfig
from flops_fit.training.preflight import check_batch_size

TINY = {"vocab_size": 256, "n_layer": 1, "block_size": 16, "n_head": 2}


@pytest.mark.parametrize(("settings", "param"), [
    ({"betas": (2, -1)}, "betas"), ({"betas": (0.9,)}, "betas"), ({"betas": "0.9,0.95"}, "betas"),
    ({"seed": "abc"}, "seed"), ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"),
    ({"compile": "yes"}, "compile"), ({"compile": 1}, "compile"),
    ({"batch_size": 1e9}, "batch_size"), ({"batch_size": 32.0}, "batch_size"), ({"batch_size": 0}, "batch_size"),
    ({"eval_batches": 2.5}, "eval_batches"), ({"log_points": True}, "log_points"),
    ({"lr": float("nan")}, "lr"), ({"weight_decay": -0.1}, "weight_decay"), ({"grad_clip": float("inf")}, "grad_clip"),
    ({"schedule": "wsd", "warmup": 0.5, "decay": 0.6}, "decay"), ({"device": "tpu"}, "device"),
])
def test_bad_train_config_fields_are_refused(settings, param):
    with pytest.raises(ValueError, match=rf"The '{param}' parameter of TrainConfig must be .* Got .* instead"):
        TrainConfig(**settings)


def test_good_train_config_fields_are_normalised():
    config = TrainConfig(betas=[0.9, 0.99], seed=np.int64(3), batch_size=np.int32(16), compile=np.bool_(False))
    assert config.betas == (0.9, 0.99)  # a YAML list becomes the pair AdamW takes
    assert type(config.seed) is int and type(config.batch_size) is int and config.compile is False


@pytest.fixture(scope="module")
def text():
    ids = np.frombuffer(b"the quick brown fox jumps over the lazy dog. " * 40, dtype=np.uint8).astype(np.int64)
    return TokenDataset(ids, 16, 256)


@pytest.fixture(scope="module")
def plan():
    return ff.plan_sweep(GPT, "d_model", [2e7], size_values=[4, 6, 8], model_kwargs=TINY, tokens_per_param=1,
                        tokens_per_sample=16)


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_a_device_this_machine_lacks_is_named_before_any_compute(name, monkeypatch, text, plan):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=rf"'device' parameter of TrainConfig .* Got '{name}' instead\. "
                                         rf"'{name}' is not available here .* device='auto' .* device='cpu'"):
        ff.run_sweep(plan.head(1), GPT, text, lm_loss, mode="local", train_config=TrainConfig(device=name))
    assert device_module.pick_device("auto") == "cpu"


def test_a_batch_larger_than_the_training_set_is_named(text, plan):
    train_size = len(text) - max(1, round(len(text) * 0.02))  # the held-out tail is not trained on
    with pytest.warns(UserWarning, match=rf"batch_size=200 is larger than the training set \({train_size} samples\)"):
        ff.run_sweep(plan.head(1), GPT, text, lm_loss, mode="local", train_config=TrainConfig(batch_size=200))
    with pytest.raises(ValueError, match=rf"'batch_size' parameter of TrainConfig must be a batch that fits .* "
                                         rf"Got 1000000000 instead.* training set has {train_size} samples"):
        ff.run_sweep(plan.head(1), GPT, text, lm_loss, mode="local", train_config=TrainConfig(batch_size=10**9))


class Endless(torch.utils.data.Dataset):
    """10**12 windows of 16 tokens, all alike: far more data than any batch, built on demand."""

    tokens_per_sample = 16

    def __len__(self):
        return 10**12

    def __getitem__(self, index):
        return torch.arange(16) % 256, (torch.arange(16) + 1) % 256


def test_a_batch_that_cannot_fit_in_memory_is_refused_before_it_is_built(plan):
    with pytest.raises(ValueError, match=r"'batch_size' parameter of TrainConfig must be a batch that fits in the "
                                         r".* GiB of .* One batch needs at least .* GiB"):
        ff.run_sweep(plan.head(1), GPT, Endless(), lm_loss, mode="local", train_config=TrainConfig(batch_size=10**9))


def test_batch_memory_check_is_conservative(monkeypatch):
    monkeypatch.setattr("flops_fit.training.preflight.host_memory", lambda: 2**30)
    check_batch_size(1024, 10**6, host_bytes=1000, device_bytes=100_000)  # 100 MiB in 1 GiB: fine
    with pytest.raises(ValueError, match="fits in the 1.0 GiB of this machine"):
        check_batch_size(100_000, 10**6, host_bytes=1000, device_bytes=100_000)


@pytest.mark.parametrize("budgets", [{1e16: "a", 1e17: "b"}, {1e16, 1e17}, frozenset({1e16, 1e17}),
                                     {1e16: 1, 1e17: 2}.keys()])
def test_budgets_as_a_mapping_or_set_are_refused(budgets):
    with pytest.raises(ValueError, match=r"'compute_budgets' parameter of plan_sweep must be a list .* (dict|set)"):
        ff.plan_sweep(GPT, "d_model", budgets)
    with pytest.raises(ValueError, match=r"'compute_budgets' parameter of find_optimal must be a list"):
        ff.find_optimal(GPT, "d_model", compute_budgets=budgets, mode="mock")
