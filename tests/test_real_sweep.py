"""A small real sweep end to end: a GPT trained on real text (Python's own sources) on the CPU.

The full-size version, with its table and figure, is benchmarks/bench_real_sweep.py.
"""

import numpy as np

import flops_fit as ff
from flops_fit.examples import GPT, lm_loss, stdlib_datasets


def test_small_real_sweep_honours_budgets_and_learns():
    train, held = stdlib_datasets(seq_len=32, max_bytes=600_000)
    config = ff.TrainConfig(batch_size=32, lr=3e-3, eval_batches=8)
    result = ff.find_optimal(
        GPT, "d_model", train, lm_loss, compute_budgets=[3e9, 1e10], mode="local", eval_dataset=held,
        train_config=config, model_kwargs={"vocab_size": 256, "n_layer": 1, "block_size": 32, "n_head": 2},
        points_per_budget=4, tokens_per_param=100, size_span=10, multiple_of=2, progress=False)
    runs, curves = result.results, result.curves
    assert (runs["status"] == "completed").all()
    per_step = config.batch_size * 32
    assert (np.abs(runs["tokens_trained"] - runs["tokens"]) <= per_step / 2).all()  # budgets honoured
    assert (np.abs(runs["flops"] - runs["budget"]) <= runs["flops_per_token"] * per_step).all()
    # every run learned: held-out loss far below the ln(256) = 5.55 of a uniform guess, curves fall
    assert (runs["loss"] < 4.0).all()
    first_last = curves.groupby("run_id")["loss"].agg(["first", "last"])
    assert (first_last["last"] < first_last["first"] - 1.0).all()
    # more compute buys a lower best loss
    best = runs.groupby("budget")["loss"].min()
    assert best.loc[1e10] < best.loc[3e9]
