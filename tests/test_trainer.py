"""Real training on tiny data: budgets honoured, schedules sized to each run, failures recorded."""

import math

import numpy as np
import pytest
import torch

import flops_fit as ff
from flops_fit.examples import GPT, TokenDataset, ViT, classification_loss, digits_datasets, lm_loss
from flops_fit.training.config import TrainConfig, lr_factor
from flops_fit.training.loop import evaluate, train_run

TINY = {"vocab_size": 256, "n_layer": 1, "block_size": 16, "n_head": 2}


@pytest.fixture(scope="module")
def text():
    rng = np.random.default_rng(0)
    # a learnable stream: a repeated phrase with a little noise
    ids = np.frombuffer(b"the quick brown fox jumps over the lazy dog. " * 200, dtype=np.uint8).astype(np.int64)
    ids = np.where(rng.random(len(ids)) < 0.02, rng.integers(0, 256, len(ids)), ids)
    cut = int(0.9 * len(ids))
    return TokenDataset(ids[:cut], 16, 256), TokenDataset(ids[cut:], 16, 256)


def plan_for(budgets, **kwargs):
    return ff.plan_sweep(GPT, "d_model", budgets, model_kwargs=TINY, tokens_per_param=100, size_span=10,
                         points_per_budget=3, multiple_of=2, tokens_per_sample=16, **kwargs)


def test_budget_is_honoured_to_one_step(text):
    train, held = text
    config = TrainConfig(batch_size=64, seed=0)
    plan = plan_for([2e9])
    results, curves = ff.run_sweep(plan, GPT, train, lm_loss, mode="local", eval_dataset=held,
                                   train_config=config, return_curves=True)
    per_step = config.batch_size * 16
    assert (results["status"] == "completed").all()
    assert (np.abs(results["tokens_trained"] - results["tokens"]) <= per_step / 2).all()
    assert np.allclose(results["flops"], results["tokens_trained"] * results["flops_per_token"])
    assert np.allclose(results["steps"] * per_step, results["tokens_trained"])
    assert (results["epochs"] > 0).all() and results["loss"].notna().all()
    assert (results["utilisation"] > 0).all() and (results["flops_per_second"] > 0).all()
    for run_id, curve in curves.groupby("run_id"):
        row = results.set_index("run_id").loc[run_id]
        assert curve["step"].max() == row["steps"]  # the curve reaches the run's last step
        assert curve["loss"].iloc[-1] < curve["loss"].iloc[0]  # it learned
        # the schedule decays over exactly this run: the last logged lr is the floor of the cosine
        assert curve["lr"].iloc[-1] == pytest.approx(config.lr * lr_factor(row["steps"] - 1, row["steps"], config))


def test_small_dataset_is_cycled_and_epochs_counted(text):
    train, held = text
    small = TokenDataset(train.ids[:16 * 20 + 1], 16, 256)  # 20 samples
    plan = plan_for([2e9]).head(1)
    results = ff.run_sweep(plan, GPT, small, lm_loss, mode="local", eval_dataset=held,
                           train_config=TrainConfig(batch_size=64))
    row = results.iloc[0]
    assert row["epochs"] == pytest.approx(row["tokens_trained"] / (20 * 16))
    assert row["epochs"] > 1


def test_runs_are_reproducible_for_a_seed(text):
    train, held = text
    plan = plan_for([1e9]).head(1)
    a, b, c = (ff.run_sweep(plan, GPT, train, lm_loss, mode="local", eval_dataset=held,
                            train_config=TrainConfig(batch_size=64, seed=s))["loss"].iloc[0] for s in (1, 1, 2))
    assert a == b and a != c


def test_schedules():
    cosine, wsd = TrainConfig(warmup=0.1), TrainConfig(warmup=0.1, schedule="wsd", decay=0.2)
    assert lr_factor(0, 100, cosine) == pytest.approx(0.1)
    assert max(lr_factor(s, 100, cosine) for s in range(100)) == pytest.approx(1.0)
    assert lr_factor(99, 100, cosine) == pytest.approx(0.1)
    assert [lr_factor(s, 100, wsd) for s in (50, 79)] == [1.0, 1.0]
    assert lr_factor(99, 100, wsd) == pytest.approx(0.1)
    # a one-step run still ends at the floor, not mid-schedule
    assert lr_factor(0, 1, TrainConfig(warmup=0.0)) == pytest.approx(1.0)


def test_events_reach_callbacks(text):
    train, held = text
    events = []
    ff.run_sweep(plan_for([1e9]).head(2), GPT, train, lm_loss, mode="local", eval_dataset=held,
                 train_config=TrainConfig(batch_size=64), callbacks=[events.append])
    kinds = [e["type"] for e in events]
    assert kinds.count("run_start") == 2 and kinds.count("run_end") == 2 and kinds.count("eval") == 2
    assert kinds.count("step") >= 2
    assert kinds.index("run_start") < kinds.index("step") < kinds.index("eval") < kinds.index("run_end")


class Exploding(GPT):
    def forward(self, idx):
        return super().forward(idx) * float("nan")


def test_divergence_is_recorded_and_the_sweep_goes_on(text):
    train, held = text
    plan = plan_for([1e9])

    calls = {"n": 0}

    def factory(**kwargs):
        calls["n"] += 1
        # the pre-flight check builds one model; then the second run of the sweep explodes
        return Exploding(**kwargs) if calls["n"] == 3 else GPT(**kwargs)

    results = ff.run_sweep(plan, factory, train, lm_loss, mode="local", eval_dataset=held,
                           train_config=TrainConfig(batch_size=64), model_size_param="d_model")
    assert results["status"].tolist() == ["completed", "diverged", "completed"]
    assert "nan" in results["error"].iloc[1] and math.isnan(results["loss"].iloc[1])


def test_failure_is_recorded_and_the_sweep_goes_on(text):
    train, held = text
    plan = plan_for([1e9])
    calls = {"n": 0}

    def factory(**kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise MemoryError("pretend out of memory")
        return GPT(**kwargs)

    results = ff.run_sweep(plan, factory, train, lm_loss, mode="local", eval_dataset=held,
                           train_config=TrainConfig(batch_size=64), model_size_param="d_model")
    assert results["status"].tolist() == ["completed", "completed", "failed"]
    assert results["error"].iloc[2] == "MemoryError: pretend out of memory"


def test_vit_on_digits_learns():
    train, held = digits_datasets()
    assert train.tokens_per_sample == 17
    torch.manual_seed(0)
    model = ViT(image_size=8, channels=1, patch_size=2, n_layer=1, n_head=2, d_model=32)
    config = TrainConfig(batch_size=32, lr=1e-2, eval_batches=5)
    before = evaluate(model, held, classification_loss, config, "cpu")
    outcome, _ = train_run(model, train, held, classification_loss, tokens=17 * 32 * 200,
                           flops_per_token=6 * model.num_params(), config=config)
    assert outcome["status"] == "completed" and outcome["steps"] == 200
    assert outcome["loss"] < before - 0.5


# -- bad input is caught before any compute is spent -------------------------------------

def test_loss_returning_a_non_scalar(text):
    train, held = text
    with pytest.raises(ValueError, match=r"'loss_fn' parameter must return a scalar tensor.*Got \(2, 16\)"):
        ff.run_sweep(plan_for([1e9]), GPT, train,
                     lambda logits, y: torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none"),
                     mode="local", eval_dataset=held)


def test_loss_that_cannot_take_the_output(text):
    train, held = text
    with pytest.raises(ValueError, match=r"'loss_fn' parameter could not take the model's output of shape \(2, 16, 256\)"):
        ff.run_sweep(plan_for([1e9]), GPT, train, torch.nn.functional.cross_entropy, mode="local", eval_dataset=held)


class Pairs(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_dataset_with_wrong_shapes(text):
    _, held = text
    ragged = Pairs([(torch.zeros(16 + i, dtype=torch.long), torch.zeros(16 + i, dtype=torch.long)) for i in range(4)])
    with pytest.raises(ValueError, match="samples of one shape that stack into a batch"):
        ff.run_sweep(plan_for([1e9]), GPT, ragged, lm_loss, mode="local", eval_dataset=held)
    too_long = Pairs([(torch.zeros(64, dtype=torch.long), torch.zeros(64, dtype=torch.long))] * 4)
    with pytest.raises(ValueError, match=r"'dataset' parameter of run_sweep must be samples of 16 tokens"):
        ff.run_sweep(plan_for([1e9]), GPT, too_long, lm_loss, mode="local", eval_dataset=held)
    unsized = plan_for([1e9])
    unsized["tokens_per_sample"] = None  # a plan made without the data
    with pytest.raises(ValueError, match=r"model could not take a batch of dataset inputs of shape \(2, 64\)"):
        ff.run_sweep(unsized, GPT, too_long, lm_loss, mode="local", eval_dataset=held)
    single = Pairs([torch.zeros(16, dtype=torch.long)] * 4)
    with pytest.raises(ValueError, match=r"must yield \(inputs, targets\) pairs"):
        ff.run_sweep(plan_for([1e9]), GPT, single, lm_loss, mode="local", eval_dataset=held)


def test_local_mode_needs_data_and_loss(text):
    train, _ = text
    with pytest.raises(ValueError, match="'loss_fn' parameter of run_sweep must be given when mode='local'"):
        ff.run_sweep(plan_for([1e9]), GPT, train, None, mode="local")
    with pytest.raises(ValueError, match="'train_config' parameter of run_sweep"):
        ff.run_sweep(plan_for([1e9]), GPT, train, lm_loss, mode="local", train_config={"lr": 1e-3})


@pytest.mark.parametrize("kwargs,param", [({"lr": 0}, "lr"), ({"batch_size": 0}, "batch_size"),
                                          ({"warmup": 1.5}, "warmup"), ({"schedule": "linear"}, "schedule"),
                                          ({"device": "tpu"}, "device")])
def test_bad_train_config(kwargs, param):
    with pytest.raises(ValueError, match=f"'{param}' parameter of TrainConfig"):
        TrainConfig(**kwargs)


def test_train_config_is_part_of_the_run_id():
    a = plan_for([1e9], train_config=TrainConfig(lr=1e-3))["run_id"]
    b = plan_for([1e9], train_config=TrainConfig(lr=2e-3))["run_id"]
    c = plan_for([1e9], train_config=TrainConfig(lr=1e-3, device="cpu"))["run_id"]
    assert not set(a) & set(b)
    assert list(a) == list(c)  # where it runs does not change what it learns


class DictDigits(torch.utils.data.Dataset):
    """Hugging Face style samples: a dict of inputs."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return {"pixel_values": x}, y


class DictViT(ViT):
    def forward(self, batch):
        return super().forward(batch["pixel_values"])


def test_dict_inputs_and_subset_token_counts():
    train, held = digits_datasets()
    plan = ff.plan_sweep(ViT, "d_model", [3e9], points_per_budget=3, tokens_per_param=150, size_span=10,
                         multiple_of=2, tokens_per_sample=17,
                         model_kwargs={"image_size": 8, "channels": 1, "patch_size": 2, "n_layer": 1, "n_head": 2})
    config = TrainConfig(batch_size=64)
    # no eval_dataset: the held-out tail is split off, and the 17 tokens a sample must survive that
    results = ff.run_sweep(plan, ViT, train, classification_loss, mode="local", train_config=config)
    assert np.allclose(results["steps"], (results["tokens"] / (64 * 17)).round())
    wrapped = DictDigits(train)
    wrapped.tokens_per_sample = 17
    results = ff.run_sweep(plan.head(1), DictViT, wrapped, classification_loss, mode="local",
                           eval_dataset=DictDigits(held), train_config=config, model_size_param="d_model")
    assert results["status"].tolist() == ["completed"]


def test_short_runs_warn():
    train, held = digits_datasets()
    plan = ff.plan_sweep(ViT, "d_model", [3e9], points_per_budget=3, tokens_per_param=150, size_span=10,
                         multiple_of=2, tokens_per_sample=17,
                         model_kwargs={"image_size": 8, "channels": 1, "patch_size": 2, "n_layer": 1, "n_head": 2})
    with pytest.warns(UserWarning, match="fewer than 20 optimiser steps"):
        ff.run_sweep(plan.tail(1), ViT, train, classification_loss, mode="local", eval_dataset=held,
                     train_config=TrainConfig(batch_size=1024))


def test_a_training_run_streams_steps_but_does_not_announce_itself(text):
    train, held = text
    events = []
    model = GPT(d_model=16, n_layer=1, vocab_size=256, block_size=16, n_head=2)
    train_run(model, train, held, lm_loss, tokens=16 * 8 * 30, flops_per_token=6.0 * model.num_params(),
              config=TrainConfig(batch_size=8), run_id="r", emit=events.append)
    kinds = {e["type"] for e in events}
    assert kinds == {"step", "eval"}
