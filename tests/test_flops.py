import pytest
import torch

from flops_fit import flops_per_token, plan_sweep
from flops_fit.examples import GPT, ViT
from flops_fit.planning.sizes import build_meta

SMALL = {"vocab_size": 256, "n_layer": 2, "block_size": 64, "n_head": 2}
TOKENS = torch.zeros(64, dtype=torch.long)


def meta_gpt(d_model=64):
    return build_meta(GPT, "d_model", d_model, SMALL)


def test_six_n_is_the_default():
    assert flops_per_token(1000) == 6000.0
    assert flops_per_token(1000, lambda n: 8 * n) == 8000.0


def test_non_embedding_leaves_embeddings_out():
    model = meta_gpt()
    n, n_body = model.num_params(), model.num_params(non_embedding=True)
    assert flops_per_token(n, "6N_non_embedding", model=model) == 6 * n_body < 6 * n


def test_attention_adds_12_L_d_T():
    model = meta_gpt()
    n = model.num_params()
    got = flops_per_token(n, "attention", model=model, example_input=TOKENS, tokens_per_sample=64)
    assert got == 6 * n + 12 * 2 * 64 * 64


def test_measured_counts_forward_and_backward_on_meta():
    model = meta_gpt(128)
    n = model.num_params()
    measured = flops_per_token(n, "measured", model=model, example_input=TOKENS, tokens_per_sample=64)
    analytic = flops_per_token(n, "attention", model=model, example_input=TOKENS, tokens_per_sample=64)
    assert 0.8 * analytic < measured < 1.2 * analytic  # the matmuls dominate both counts
    assert model.lm_head.weight.device.type == "meta"  # nothing was allocated


def test_measured_needs_an_input():
    with pytest.raises(ValueError, match="needs an input sample"):
        flops_per_token(1000, "measured", model=meta_gpt())


def test_attention_needs_the_architecture():
    vit = build_meta(ViT, "d_model", 32, {"n_layer": 2})
    assert flops_per_token(vit.num_params(), "attention", model=vit, example_input=torch.zeros(3, 32, 32),
                           tokens_per_sample=65) > 6 * vit.num_params()

    class Opaque(torch.nn.Module):
        pass

    with pytest.raises(ValueError, match="needs the model's n_layer"):
        flops_per_token(10, "attention", model=Opaque(), example_input=TOKENS, tokens_per_sample=64)


@pytest.mark.parametrize("convention", ["6N", "6N_non_embedding", "attention", "measured"])
def test_plan_records_its_convention(convention):
    plan = plan_sweep(GPT, "d_model", [1e12], model_kwargs=SMALL, flop_convention=convention,
                      example_input=TOKENS, points_per_budget=3, tokens_per_param=200, multiple_of=2)
    assert (plan["tokens_per_sample"] == 64).all()  # read from the integer input
    assert ((plan["flops"] - plan["budget"]).abs() <= plan["flops_per_token"]).all()
    if convention != "6N":
        assert not (plan["flops_per_token"] == 6 * plan["params"]).all()
