"""Example model factories and datasets (importing this package imports torch).

- :class:`GPT` with :func:`lm_loss` on :func:`stdlib_datasets` (offline) or
  :class:`TinyStoriesDataset`;
- :class:`ViT` with :func:`classification_loss` on :func:`digits_datasets` (offline)
  or :class:`Cifar10Dataset`.
"""

from .gpt import GPT, GPTConfig
from .text import TinyStoriesDataset, TokenDataset, lm_loss, stdlib_corpus, stdlib_datasets
from .vit import Cifar10Dataset, ImageDataset, ViT, ViTConfig, classification_loss, digits_datasets

__all__ = [
    "GPT", "GPTConfig", "TinyStoriesDataset", "TokenDataset", "lm_loss", "stdlib_corpus", "stdlib_datasets",
    "ViT", "ViTConfig", "Cifar10Dataset", "ImageDataset", "classification_loss", "digits_datasets",
]
