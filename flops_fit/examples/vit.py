"""A small Vision Transformer (Dosovitskiy et al. 2021) and image datasets for it.

``ViT(d_model=64)`` is a factory with one size knob like ``GPT``. A token is an image
patch: the datasets declare ``tokens_per_sample`` = patches per image (plus the class
token), so D counts what the transformer processes. Data:

- :func:`digits_datasets`: scikit-learn's 8x8 handwritten digits (1,797 real images,
  shipped inside scikit-learn), for tests and offline demos;
- :class:`Cifar10Dataset`: CIFAR-10 through Hugging Face ``datasets`` (no torchvision);
  ``data_files=`` reads local Parquet files instead of the hub.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from .gpt import Block, init_weights


@dataclass
class ViTConfig:
    image_size: int = 32
    patch_size: int = 4
    channels: int = 3
    num_classes: int = 10
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128  # must be a multiple of n_head
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "channels", "num_classes", "n_layer", "n_head", "d_model"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ViTConfig.{name} must be a positive integer. Got {value!r} instead.")
        if self.d_model % self.n_head:
            raise ValueError(f"ViTConfig.d_model must be a multiple of n_head={self.n_head}. "
                             f"Got d_model={self.d_model} instead.")
        if self.image_size % self.patch_size:
            raise ValueError(f"ViTConfig.image_size ({self.image_size}) must be a multiple of patch_size "
                             f"({self.patch_size}).")

    @property
    def tokens(self) -> int:
        """Patches per image, plus the class token."""
        return (self.image_size // self.patch_size) ** 2 + 1


class ViT(nn.Module):
    """Images (B, C, H, W) -> class logits (B, num_classes)."""

    def __init__(self, config: ViTConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        known = {f.name for f in fields(ViTConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"ViT got unexpected keyword argument(s) {unknown}; ViTConfig fields are {sorted(known)}.")
        self.config = c = ViTConfig(**{**(config or ViTConfig()).__dict__, **overrides})
        patch_dim = c.channels * c.patch_size**2
        self.patch = nn.Linear(patch_dim, c.d_model)  # a linear map of each flattened patch
        self.cls = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.pos = nn.Parameter(torch.zeros(1, c.tokens, c.d_model))
        self.blocks = nn.ModuleList(
            Block(c.d_model, c.n_head, bias=c.bias, dropout=c.dropout, causal=False) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.d_model, bias=c.bias)
        self.head = nn.Linear(c.d_model, c.num_classes)
        if self.cls.device.type != "meta":
            init_weights(self, c.n_layer)
            nn.init.normal_(self.pos, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        c = self.config
        B = images.shape[0]
        p = c.patch_size
        # (B, C, H, W) -> (B, H/p * W/p, C*p*p)
        patches = images.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 1, 4, 5).reshape(B, -1, c.channels * p * p)
        x = torch.cat([self.cls.expand(B, -1, -1), self.patch(patches)], dim=1) + self.pos  # (B, T, d)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x[:, 0]))


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class logits (B, K) against integer labels (B,)."""
    return F.cross_entropy(logits.float(), labels)


class ImageDataset(Dataset):
    """In-memory images (N, C, H, W) as float tensors and integer labels (N,)."""

    def __init__(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, patch_size: int) -> None:
        self.images = torch.as_tensor(np.asarray(images), dtype=torch.float32)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if self.images.dim() != 4 or len(self.images) != len(self.labels):
            raise ValueError(f"ImageDataset needs images (N, C, H, W) and N labels; got {tuple(self.images.shape)} "
                             f"and {tuple(self.labels.shape)}.")
        self.tokens_per_sample = (self.images.shape[-1] // patch_size) ** 2 + 1

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def get_batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.images[index], self.labels[index]


def _standardise(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (images - mean) / std


def digits_datasets(patch_size: int = 2, eval_fraction: float = 0.2, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """(train, held-out) from scikit-learn's 8x8 digits: real images that need no download.

    Pixels are standardised with the training split's statistics; use ``ViT(image_size=8,
    channels=1, patch_size=2)``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)[:, None]  # (N, 1, 8, 8), values 0..16
    order = np.random.default_rng(seed).permutation(len(images))
    cut = int(len(images) * (1 - eval_fraction))
    train, held = order[:cut], order[cut:]
    mean, std = images[train].mean(), images[train].std()
    return (ImageDataset(_standardise(images[train], mean, std), digits.target[train], patch_size),
            ImageDataset(_standardise(images[held], mean, std), digits.target[held], patch_size))


CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)[:, None, None]
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)[:, None, None]


class Cifar10Dataset(ImageDataset):
    """CIFAR-10 (Krizhevsky 2009) via ``datasets``: ``Cifar10Dataset("train")`` or ``("test")``.

    Loads ``uoft-cs/cifar10`` from the hub unless ``data_files`` names local files
    (Parquet or JSON with an image column ``img`` and a ``label`` column).
    """

    HUB_NAME = "uoft-cs/cifar10"

    def __init__(self, split: str = "train", patch_size: int = 4, *, data_files: Any = None,
                 max_images: int | None = None) -> None:
        from datasets import load_dataset

        if data_files is not None:
            files = [data_files] if isinstance(data_files, str) else list(data_files)
            builder = "json" if str(files[0]).endswith((".json", ".jsonl")) else "parquet"
            data = load_dataset(builder, data_files={split: files}, split=split)
        else:
            data = load_dataset(self.HUB_NAME, split=split)
        if max_images is not None:
            data = data.select(range(min(max_images, len(data))))
        image_column = "img" if "img" in data.column_names else "image"
        pixels = np.stack([np.asarray(img.convert("RGB") if hasattr(img, "convert") else img, dtype=np.float32)
                           for img in data[image_column]])  # (N, 32, 32, 3)
        images = _standardise(pixels.transpose(0, 3, 1, 2) / 255.0, CIFAR_MEAN, CIFAR_STD)
        super().__init__(images, np.asarray(data["label"]), patch_size)
