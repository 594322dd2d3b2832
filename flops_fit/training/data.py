"""Data adapters: any indexable dataset of (inputs, targets) pairs, as batches on a device.

A dataset with ``get_batch(indices)`` builds its batches itself (one gather instead of
a Python loop); anything else is collated as a DataLoader would. ``tokens_per_sample``
says what one sample counts for in a token budget.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .. import _deps


def infer_tokens_per_sample(example_input: Any) -> int:
    """Tokens in one sample: its size if it holds integer token ids, else 1 (one sample, one token)."""
    if example_input is None:
        return 1
    dtype = getattr(example_input, "dtype", None)
    is_int = dtype is not None and not getattr(dtype, "is_floating_point", True) and not getattr(
        dtype, "is_complex", False)
    return int(example_input.numel()) if is_int else 1


def sample_pair(dataset: Any, index: int, name: str) -> tuple[Any, Any]:
    """``dataset[index]`` as an (inputs, targets) pair, or a clear error."""
    try:
        item = dataset[index]
    except Exception as exc:
        raise ValueError(f"The '{name}' parameter must be indexable like a torch Dataset "
                         f"({name}[{index}] raised {type(exc).__name__}: {exc}).") from exc
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise ValueError(f"The '{name}' parameter must yield (inputs, targets) pairs. "
                         f"Got {type(item).__name__} from {name}[{index}] instead.")
    return item[0], item[1]


def tokens_per_sample(dataset: Any) -> int:
    """``dataset.tokens_per_sample`` if set; else the size of an integer input (token ids); else 1."""
    declared = getattr(dataset, "tokens_per_sample", None)
    if declared is not None:
        return int(declared)
    return infer_tokens_per_sample(sample_pair(dataset, 0, "dataset")[0])


def fetch(dataset: Any, indices: Sequence[int]) -> tuple[Any, Any]:
    """The samples at ``indices`` as one (inputs, targets) batch."""
    data = _deps.torch().utils.data
    base, chosen = dataset, list(indices)
    if isinstance(dataset, data.Subset):  # a held-out split of a dataset that can batch itself
        base, chosen = dataset.dataset, [dataset.indices[i] for i in chosen]
    if callable(getattr(base, "get_batch", None)):
        x, y = base.get_batch(chosen)
        return contiguous(x), contiguous(y)  # slices of one gather: a loss_fn may .view() them, as nanoGPT's does
    batch = data.default_collate([dataset[i] for i in indices])
    return batch[0], batch[1]


def contiguous(batch: Any) -> Any:
    """Tensors made contiguous (a copy only where they are not), inside dicts, lists and tuples too."""
    if callable(getattr(batch, "contiguous", None)):
        return batch.contiguous()
    if isinstance(batch, dict):
        return {key: contiguous(value) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(contiguous(value) for value in batch)
    return batch


def batches(dataset: Any, batch_size: int, seed: int) -> Iterator[tuple[Any, Any, float]]:
    """Endless shuffled batches, reshuffled each epoch; yields (inputs, targets, epochs consumed so far)."""
    torch = _deps.torch()
    n = len(dataset)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator).tolist()
    position, seen = 0, 0
    while True:
        chosen: list[int] = []
        while len(chosen) < batch_size:
            take = order[position:position + batch_size - len(chosen)]
            chosen += take
            position += len(take)
            if position >= n:
                order, position = torch.randperm(n, generator=generator).tolist(), 0
        seen += batch_size
        x, y = fetch(dataset, chosen)
        yield x, y, seen / n


def split_eval(dataset: Any, eval_dataset: Any, fraction: float) -> tuple[Any, Any]:
    """(train, eval): the given eval split, or the last ``fraction`` of ``dataset`` held out."""
    if eval_dataset is not None:
        return dataset, eval_dataset
    n = len(dataset)
    held = max(1, int(round(n * fraction)))
    if n - held < 1:
        raise ValueError(f"The 'dataset' parameter must hold at least 2 samples to hold some out; it has {n}.")
    subset = _deps.torch().utils.data.Subset
    return subset(dataset, range(n - held)), subset(dataset, range(n - held, n))


def to_device(batch: Any, device: str) -> Any:
    """Move tensors to ``device``, inside dicts, lists and tuples too (Hugging Face style batches)."""
    if hasattr(batch, "to") and callable(batch.to):
        return batch.to(device)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch
