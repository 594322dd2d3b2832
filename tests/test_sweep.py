import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import flops_fit as ff
from flops_fit import SizeSearchError, count_params, plan_sweep
from flops_fit.examples import GPT
from flops_fit.planning.planner import prior_optimum

from .conftest import BUDGETS, Stack


def test_plan_columns_and_budgets(gpt_plan):
    assert list(gpt_plan.columns) == ["run_id", "budget", "size", "params", "flops_per_token", "tokens", "flops",
                                      "tokens_per_param", "status", "size_param", "model_kwargs", "tokens_per_sample", "repeat",
                                      "reason"]
    assert (gpt_plan["reason"] == "grid").all()
    assert (gpt_plan["size_param"] == "d_model").all()  # each row says how to build its run
    assert json.loads(gpt_plan["model_kwargs"].iloc[0]) == {"n_layer": 4}
    assert sorted(gpt_plan["budget"].unique()) == BUDGETS
    assert (gpt_plan["status"] == "pending").all()
    assert gpt_plan["run_id"].is_unique
    # budgets are honoured to within one token's worth of FLOPs
    assert np.all(np.abs(gpt_plan["flops"] - gpt_plan["budget"]) <= gpt_plan["flops_per_token"])
    assert np.allclose(gpt_plan["flops_per_token"], 6 * gpt_plan["params"])


def test_each_budget_has_distinct_log_spaced_sizes_straddling_the_prior(gpt_plan):
    for budget, group in gpt_plan.groupby("budget"):
        assert len(group) == 9
        assert group["size"].is_unique
        prior = prior_optimum(budget, 20.0, lambda n: 6 * n)
        below, above = (group["params"] < prior).sum(), (group["params"] > prior).sum()
        assert below >= 3 and above >= 3
        ratios = np.diff(np.log(np.sort(group["params"].to_numpy())))
        assert ratios.max() / ratios.min() < 1.5  # log-spaced, up to the knob's integer steps
        assert group["params"].max() / group["params"].min() == pytest.approx(100, rel=0.15)


def test_params_match_a_real_build():
    model = GPT(d_model=48, n_layer=2, vocab_size=256, block_size=64)
    assert count_params(GPT, "d_model", 48, {"n_layer": 2, "vocab_size": 256, "block_size": 64}) == model.num_params()
    assert model.num_params() == sum(p.numel() for p in model.parameters())


def test_counting_allocates_no_weights():
    seen = []

    class Recorder(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.layer = nn.Linear(width, width)
            seen.append(self.layer.weight.device.type)

        def num_params(self) -> int:
            return sum(p.numel() for p in self.parameters())

    # 100k x 100k floats would need 40 GB if allocated
    assert count_params(Recorder, "width", 100_000) == 100_000 * 100_000 + 100_000
    assert seen == ["meta"]


def test_rejected_values_are_stepped_over():
    plan = plan_sweep(GPT, "d_model", [1e15], model_kwargs={"n_layer": 2, "n_head": 8, "vocab_size": 256})
    assert (plan["size"] % 8 == 0).all()


def test_multiple_of_and_size_range():
    plan = plan_sweep(GPT, "d_model", [1e15, 1e16], multiple_of=16, size_range=(16, 2048),
                      model_kwargs={"n_layer": 2, "vocab_size": 256})
    assert (plan["size"] % 16 == 0).all()
    assert plan["size"].between(16, 2048).all()


def test_size_values_are_run_exactly_whatever_the_prior_says():
    # issue 13's case: a byte-level model of 10K-250K parameters over widths 16..128, where the default prior
    # of 20 tokens per parameter (and 200) wanted sizes the values cannot give, and the plan was refused
    values = [16, 24, 32, 48, 64, 96, 128]
    kwargs = {"vocab_size": 256, "n_layer": 2, "block_size": 64, "n_head": 2}
    for ratio in (20, 200):
        plan = plan_sweep(GPT, "d_model", [2e10, 6e10], size_values=values, tokens_per_param=ratio,
                          model_kwargs=kwargs)
        assert all(sorted(g["size"]) == values for _, g in plan.groupby("budget"))
    with pytest.warns(ff.FitWarning, match=r"prior optimum .* lies below the sizes given .* add smaller sizes"):
        plan_sweep(GPT, "d_model", [2e10], size_values=values, tokens_per_param=5000, model_kwargs=kwargs)
    with pytest.warns(ff.FitWarning, match=r"lies above the sizes given .* add larger sizes"):
        plan_sweep(GPT, "d_model", [1e14], size_values=values, model_kwargs=kwargs)


def test_size_values_too_large_for_one_step_are_left_out_at_that_budget():
    values = [16, 24, 32, 48, 64, 96, 128]
    kwargs = {"vocab_size": 256, "n_layer": 2, "block_size": 64, "n_head": 2}
    config = ff.TrainConfig(batch_size=32)  # 32 samples of 64 tokens: a step is 2,048 tokens
    with pytest.warns(UserWarning, match=r"budget 3e\+09 is too small to train d_model=\[96, 128\]"):
        plan = plan_sweep(GPT, "d_model", [3e9, 2e10], size_values=values, model_kwargs=kwargs,
                          tokens_per_sample=64, train_config=config)
    assert sorted(plan.loc[plan["budget"] == 3e9, "size"]) == values[:5]
    assert (plan["tokens"] >= 2048).all()
    with pytest.raises(ff.SizeSearchError, match=r"Only 0 of size_values get at least one optimiser step at "
                                                 r"budget 1e\+08.*Add smaller sizes"):
        plan_sweep(GPT, "d_model", [1e8], size_values=values, model_kwargs=kwargs, tokens_per_sample=64,
                   train_config=config)


def test_depth_knob_on_a_plain_class():
    plan = plan_sweep(Stack, "depth", [1e12, 1e13], points_per_budget=7)
    for _, group in plan.groupby("budget"):
        assert len(group) == 7 and group["size"].is_unique
    assert plan["size"].max() <= 400


def test_largest_buildable_size_is_found_when_the_factory_stops():
    # Stack rejects depth > 400; a budget whose window reaches past it is refused, naming depth=400
    with pytest.raises(SizeSearchError, match=r"largest buildable \(depth=400\)"):
        plan_sweep(Stack, "depth", [1e14])


def test_coarse_knob_widens_window_to_get_enough_sizes():
    # depth 1..12 only: the default window would hold fewer than 7 distinct depths at 1e11
    plan = plan_sweep(Stack, "depth", [1e11], size_range=(1, 12), points_per_budget=7, size_span=10)
    assert len(plan) == 7


def test_prior_moves_the_sizes():
    low = plan_sweep(GPT, "d_model", [1e16], tokens_per_param=20, model_kwargs={"vocab_size": 256})
    high = plan_sweep(GPT, "d_model", [1e16], tokens_per_param=200, model_kwargs={"vocab_size": 256})
    ratio = np.exp(np.log(low["params"]).mean() - np.log(high["params"]).mean())
    assert ratio == pytest.approx(math.sqrt(10), rel=0.15)


def test_run_id_is_content_derived(gpt_plan):
    again = plan_sweep(GPT, "d_model", BUDGETS[::-1], model_kwargs={"n_layer": 4})
    assert set(again["run_id"]) == set(gpt_plan["run_id"])
    other = plan_sweep(GPT, "d_model", BUDGETS, model_kwargs={"n_layer": 3})
    assert not set(other["run_id"]) & set(gpt_plan["run_id"])


def test_large_sizes_cost_nothing():
    plan = plan_sweep(GPT, "d_model", [1e23], model_kwargs={"n_layer": 48})
    assert plan["params"].max() > 1e11  # well beyond what CPU memory could hold


def test_unservable_budget_says_which_budgets_work():
    with pytest.raises(SizeSearchError) as info:
        plan_sweep(GPT, "d_model", [1e12, 3e12, 1e13], model_kwargs={"n_layer": 4})
    message = str(info.value)
    assert "1e+12" in message and "can serve budgets from" in message
    low = float(message.split("can serve budgets from ")[1].split(" ")[0])
    plan = plan_sweep(GPT, "d_model", [low * 1.01], model_kwargs={"n_layer": 4})
    assert len(plan) == 9


def test_seed_readme_snippet_ends_in_clear_message():
    # the 4-layer GPT-2-vocabulary GPT at 1e12..1e13: too small to straddle; error says what would work
    with pytest.raises(ValueError, match="cannot serve"):
        plan_sweep(GPT, "d_model", np.logspace(12, 13, 3))


def test_torch_factory_default_dtype_unchanged():
    plan_sweep(GPT, "d_model", [1e15], model_kwargs={"vocab_size": 256})
    assert torch.empty(1).device.type == "cpu"


def test_numpy_arrays_are_accepted():
    plan = plan_sweep(GPT, "d_model", np.array([1e13, 1e14]), size_range=np.array([8, 512]),
                      model_kwargs={"n_layer": 2, "vocab_size": 256})
    assert plan["size"].between(8, 512).all() and plan["budget"].nunique() == 2
    values = np.arange(8, 129, 8)
    plan = plan_sweep(GPT, "d_model", [1e15], size_values=values, model_kwargs={"n_layer": 2, "vocab_size": 256})
    assert sorted(plan["size"]) == values.tolist()


def test_fewer_sizes_than_asked_warns():
    with pytest.warns(UserWarning, match="gets 3 sizes, not the 7"):
        plan = plan_sweep(Stack, "depth", [1e10], size_range=(1, 3), points_per_budget=7, size_span=3)
    assert len(plan) == 3


def test_upper_end_of_servable_range_is_not_invented():
    # the search stops where the largest budget needs it; that is not a limit of GPT
    with pytest.raises(SizeSearchError, match=r"can serve budgets from [0-9.e+]+ FLOPs up\."):
        plan_sweep(GPT, "d_model", [1e12, 1e13], model_kwargs={"n_layer": 4})


def test_depth_knob_needs_few_builds(monkeypatch):
    import flops_fit.planning.sizes as sweep

    calls = []
    real = sweep.count_params
    monkeypatch.setattr(sweep, "count_params", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    plan = plan_sweep(GPT, "n_layer", [1e12, 1e13], model_kwargs={"vocab_size": 256, "d_model": 32})
    assert len(plan) == 18
    assert len(calls) < 40  # params are linear in depth: the quadratic guess lands on each size


def test_run_id_survives_object_valued_settings():
    from dataclasses import dataclass

    from flops_fit.ids import make_run_id

    @dataclass
    class Activation:
        name: str

    assert make_run_id(act=Activation("gelu")) == make_run_id(act=Activation("gelu"))
    assert make_run_id(act=Activation("gelu")) != make_run_id(act=Activation("relu"))
    assert make_run_id(fn=np.tanh) == make_run_id(fn=np.tanh)


def test_settings_that_cannot_name_themselves_are_refused():
    class Opaque:
        pass

    for value in (lambda x: x, Opaque()):
        with pytest.raises(ValueError, match="must hold values that name themselves"):
            plan_sweep(Stack, "depth", [1e12], model_kwargs={"width": 50, "extra": value}, points_per_budget=3)
