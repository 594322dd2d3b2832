"""A GPT scaling sweep from Python: mock by default, real training with ``--real``.

    python -m flops_fit.examples.example_programmatic          # seconds: simulated runs
    python -m flops_fit.examples.example_programmatic --real   # minutes on a CPU: trains 10 GPTs

``--real`` trains byte-level or GPT-2-BPE GPTs on TinyStories when the Hugging Face
hub is reachable, and otherwise on an offline corpus (the Python standard library's
own source files), saying which it used.
"""

from __future__ import annotations

import time

import flops_fit as ff
from flops_fit.examples._cli import parse, report
from flops_fit.examples import GPT, TinyStoriesDataset, lm_loss, stdlib_datasets


def load_text(seq_len: int, max_stories: int) -> tuple[object, object, str]:
    """TinyStories if it can be had, else the offline corpus; returns (train, held-out, description)."""
    try:
        train = TinyStoriesDataset("train", seq_len, max_stories=max_stories, tokenizer="bytes")
        held = TinyStoriesDataset("validation", seq_len, max_stories=max_stories // 20, tokenizer="bytes")
        return train, held, f"TinyStories ({len(train) * seq_len / 1e6:.1f}M byte tokens)"
    except Exception as exc:  # offline: the hub cannot be reached
        train, held = stdlib_datasets(seq_len)
        return train, held, (f"the offline corpus of Python's standard library ({len(train) * seq_len / 1e6:.1f}M "
                             f"byte tokens), because TinyStories could not be loaded: {type(exc).__name__}")


def main(argv: list[str] | None = None) -> None:
    args = parse(__doc__, argv)

    model_kwargs = {"vocab_size": 256, "n_layer": 2, "block_size": 64, "n_head": 2}
    start = time.perf_counter()
    if args.real:
        train, held, source = load_text(seq_len=64, max_stories=50_000)
        print(f"Training on {source}.")
        result = ff.find_optimal(
            GPT, "d_model", train, lm_loss, compute_budgets=args.budgets or [1e11, 3e11], mode="local",
            eval_dataset=held, model_kwargs=model_kwargs, points_per_budget=5, tokens_per_param=200,
            size_span=30, multiple_of=2, train_config=ff.TrainConfig(batch_size=32, lr=3e-3))
    else:
        result = ff.find_optimal(
            GPT, "d_model", "unused in mock mode", "unused in mock mode",
            compute_budgets=args.budgets or [1e17, 1e18, 1e19, 1e20], mode="mock", model_kwargs={"n_layer": 4})
    report(result, start, args.out)


if __name__ == "__main__":
    main()
