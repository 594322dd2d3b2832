"""Example model factories and datasets (importing this package imports torch)."""

from .gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig"]
