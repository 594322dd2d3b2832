"""The quickstart users of the original flops-fit copy: its GPTConfig names and its (logits, loss) unpacking."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import flops_fit
from flops_fit.examples import GPT, GPTConfig, TokenDataset, lm_loss
from flops_fit.flops import resolve_convention

VOCAB_SIZE = 256


def loss_fn(outputs, targets):
    logits, _ = outputs  # nanoGPT's (logits, loss)
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def stream(seq_len):
    ids = np.frombuffer(b"the quick brown fox jumps over the lazy dog. " * 60, dtype=np.uint8).astype(np.int64)
    return TokenDataset(ids, seq_len, VOCAB_SIZE)


def test_the_seed_quickstart_runs_in_mock_mode():
    def make_model(d_model):
        return GPT(GPTConfig(d_model=d_model, num_layers=4, num_heads=4, vocab_size=VOCAB_SIZE, max_seq_len=256))

    result = flops_fit.find_optimal(make_model, "d_model", stream(256), loss_fn,
                                    compute_budgets=[1e15, 1e16, 1e17], mode="mock")
    assert isinstance(result, flops_fit.Result)
    assert result.predict(1e18)["optimal_params"] > 0


def test_the_seed_loss_trains_the_model_locally():
    def make_model(d_model):
        return GPT(GPTConfig(d_model=d_model, num_layers=1, num_heads=2, vocab_size=VOCAB_SIZE, max_seq_len=16))

    # 20 steps of 8 samples: the cheapest run that proves the loss takes the model's output
    plan = flops_fit.plan_sweep(make_model, "d_model", [2e7], size_values=[4, 6, 8], tokens_per_param=1,
                                tokens_per_sample=16)
    results = flops_fit.run_sweep(plan.head(1), make_model, stream(16), loss_fn, mode="local", progress=False,
                                  train_config=flops_fit.TrainConfig(batch_size=8, eval_batches=2))
    assert results["status"].tolist() == ["completed"]
    assert np.isfinite(results["loss"]).all()


def test_aliases_name_the_same_config():
    seed = GPTConfig(d_model=32, num_layers=2, num_heads=2, vocab_size=VOCAB_SIZE, max_seq_len=64)
    assert seed == GPTConfig(d_model=32, n_layer=2, n_head=2, vocab_size=VOCAB_SIZE, block_size=64)
    assert GPT(d_model=32, num_layers=2, num_heads=2, max_seq_len=64).config.block_size == 64
    assert GPT(seed, d_model=64).config.d_model == 64  # a positional config, overridden by keyword


@pytest.mark.parametrize("build", [lambda: GPTConfig(n_layer=2, num_layers=3), lambda: GPT(n_head=2, num_heads=2),
                                   lambda: GPT(GPTConfig(), block_size=8, max_seq_len=8)])
def test_a_name_and_its_alias_together_are_refused(build):
    with pytest.raises(TypeError, match="and its alias"):
        build()


def test_output_is_the_logits_and_unpacks_as_logits_and_loss():
    model = GPT(d_model=16, num_layers=1, num_heads=2, vocab_size=VOCAB_SIZE, max_seq_len=8)
    x = torch.randint(0, VOCAB_SIZE, (2, 8))
    out = model(x)
    logits, loss = out
    assert loss is None and out.shape == logits.shape == (2, 8, VOCAB_SIZE)
    assert torch.allclose(lm_loss(out, x), loss_fn(out, x))
    _, with_targets = model(x, x)
    assert torch.allclose(with_targets, lm_loss(out, x))
    # everything else treats it as the logits tensor, and what is computed from it is a plain tensor
    assert type(out * 2) is torch.Tensor and out[:, -1].shape == (2, VOCAB_SIZE) and len(out) == 2


def test_measured_flops_read_the_logits():
    from flops_fit.flops import FlopContext

    model = GPT(d_model=16, n_layer=1, n_head=2, vocab_size=VOCAB_SIZE, block_size=8).to("meta")
    ctx = FlopContext(params=model.num_params(), model=model, example_input=torch.zeros(8, dtype=torch.long),
                      tokens_per_sample=8)
    assert resolve_convention("measured", "test")(ctx) > 0


def test_a_misspelt_keyword_inside_the_factory_is_named():
    def make_model(d_model):
        return GPT(GPTConfig(d_model=d_model, n_layers=4))

    with pytest.raises(ValueError, match=r"'model_cls' parameter of plan_sweep.*keyword 'n_layers'") as info:
        flops_fit.plan_sweep(make_model, "d_model", [1e15, 1e16])
    assert "Got 'd_model'" not in str(info.value)
