"""A ViT scaling sweep: mock by default, real training with ``--real``.

    python -m flops_fit.examples.example_vit_cifar          # seconds: simulated runs
    python -m flops_fit.examples.example_vit_cifar --real   # minutes on a CPU

``--real`` trains on CIFAR-10 through Hugging Face ``datasets`` when the hub is
reachable, and otherwise on scikit-learn's 8x8 digits (real images shipped with
scikit-learn), saying which it used.
"""

from __future__ import annotations

import time

import flops_fit as ff
from flops_fit.examples._cli import parse, report
from flops_fit.examples import Cifar10Dataset, ViT, classification_loss, digits_datasets


def load_images(max_images: int) -> tuple[object, object, dict, float, str]:
    """CIFAR-10 if it can be had, else digits.

    Returns (train, held-out, ViT settings, prior tokens per parameter, description). The
    1,437 training digits are seen for many epochs, which favours small models: a
    higher prior puts the sizes where the minimum is.
    """
    try:
        train = Cifar10Dataset("train", patch_size=4, max_images=max_images)
        held = Cifar10Dataset("test", patch_size=4, max_images=max_images // 10)
        return (train, held, {"image_size": 32, "channels": 3, "patch_size": 4}, 20.0,
                f"CIFAR-10 ({len(train)} images)")
    except Exception as exc:  # offline: the hub cannot be reached
        train, held = digits_datasets(patch_size=2)
        return train, held, {"image_size": 8, "channels": 1, "patch_size": 2}, 150.0, (
            f"scikit-learn's 8x8 digits ({len(train)} images), because CIFAR-10 could not be loaded: "
            f"{type(exc).__name__}")


def main(argv: list[str] | None = None) -> None:
    args = parse(__doc__, argv)

    start = time.perf_counter()
    if args.real:
        train, held, shape, prior, source = load_images(max_images=20_000)
        print(f"Training on {source}.")
        result = ff.find_optimal(
            ViT, "d_model", train, classification_loss, compute_budgets=args.budgets or [3e10, 1e11], mode="local",
            eval_dataset=held, model_kwargs={**shape, "n_layer": 2, "n_head": 2}, points_per_budget=5,
            tokens_per_param=prior, size_span=30, multiple_of=2,
            train_config=ff.TrainConfig(batch_size=32, lr=2e-3, eval_batches=20))
    else:
        result = ff.find_optimal(
            ViT, "d_model", "unused in mock mode", "unused in mock mode",
            compute_budgets=args.budgets or [1e15, 1e16, 1e17, 1e18], mode="mock", model_kwargs={"n_layer": 6})
    report(result, start, args.out)


if __name__ == "__main__":
    main()
