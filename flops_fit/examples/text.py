"""Text data for the GPT example: an offline corpus that ships with Python, and TinyStories.

Every dataset here yields ``(inputs, targets)`` pairs of token ids, each of length
``seq_len`` with ``targets`` shifted one token to the left, and declares
``tokens_per_sample = seq_len`` so that D counts tokens, not sequences.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # targets with this id (padding) add nothing to the loss


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy: logits (B, T, V), targets (B, T); targets equal to -100 are masked."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX)


class TokenDataset(Dataset):
    """Non-overlapping windows of a 1-D token stream: sample i is (ids[i*T : i*T+T], ids[i*T+1 : i*T+T+1])."""

    def __init__(self, ids: np.ndarray | torch.Tensor, seq_len: int, vocab_size: int) -> None:
        ids = torch.as_tensor(np.asarray(ids), dtype=torch.long)
        if ids.dim() != 1 or len(ids) < seq_len + 1:
            raise ValueError(f"TokenDataset needs a 1-D stream of at least seq_len + 1 = {seq_len + 1} tokens; "
                             f"got shape {tuple(ids.shape)}.")
        self.ids, self.seq_len, self.vocab_size = ids, seq_len, vocab_size
        self.tokens_per_sample = seq_len

    def __len__(self) -> int:
        return (len(self.ids) - 1) // self.seq_len

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        start = (index % len(self)) * self.seq_len
        window = self.ids[start:start + self.seq_len + 1]
        return window[:-1], window[1:]

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch with one gather: (B, T) inputs and targets (the trainer uses this when present)."""
        starts = torch.as_tensor(list(indices), dtype=torch.long) * self.seq_len
        windows = self.ids[starts[:, None] + torch.arange(self.seq_len + 1)]  # (B, T + 1)
        return windows[:, :-1], windows[:, 1:]


def byte_tokenize(text: str) -> np.ndarray:
    """UTF-8 bytes as token ids 0..255: a tokenizer that needs no download."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)


def stdlib_corpus(max_bytes: int | None = None) -> str:
    """Real English-and-code text that ships with every CPython: the standard library's own top-level
    ``.py`` files (about 4.7 MB on 3.11), in a fixed order. Needs no network."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(root.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        size += len(text)
        if max_bytes is not None and size >= max_bytes:
            break
    corpus = "\n".join(parts)
    return corpus[:max_bytes] if max_bytes is not None else corpus


def stdlib_datasets(seq_len: int = 64, max_bytes: int | None = None,
                    eval_fraction: float = 0.02) -> tuple[TokenDataset, TokenDataset]:
    """(train, held-out) byte-level datasets from :func:`stdlib_corpus`; the last ``eval_fraction`` is held out."""
    ids = byte_tokenize(stdlib_corpus(max_bytes))
    cut = int(len(ids) * (1 - eval_fraction))
    return TokenDataset(ids[:cut], seq_len, 256), TokenDataset(ids[cut:], seq_len, 256)


def gpt2_encoder():  # -> tiktoken.Encoding | None
    """GPT-2's BPE through tiktoken when it is installed and its vocabulary can be loaded, else None."""
    try:
        import tiktoken

        return tiktoken.get_encoding("gpt2")
    except Exception as exc:  # not installed, or offline with no cached vocabulary
        logger.info("GPT-2 tokenizer unavailable (%s); using bytes", exc)
        return None


class TinyStoriesDataset(TokenDataset):
    """TinyStories (Eldan and Li 2023) through Hugging Face ``datasets``, tokenised once and cached.

    ``TinyStoriesDataset("train", seq_len=256)`` downloads ``roneneldan/TinyStories``
    on first use; ``data_files=`` reads local text or JSON files instead (what the
    tests do). Tokens are GPT-2 BPE when tiktoken can load it, bytes otherwise;
    ``prepare_data()`` writes them to ``cache_dir`` as a ``.npy`` file that later
    instances reuse.
    """

    HUB_NAME = "roneneldan/TinyStories"

    def __init__(self, split: str = "train", seq_len: int = 256, *, cache_dir: str | os.PathLike[str] | None = None,
                 data_files: str | Sequence[str] | None = None, max_stories: int | None = None,
                 tokenizer: str = "auto") -> None:
        if tokenizer not in ("auto", "gpt2", "bytes"):
            raise ValueError(f"The 'tokenizer' parameter must be 'auto', 'gpt2' or 'bytes'. Got {tokenizer!r}.")
        self.split, self.data_files, self.max_stories = split, data_files, max_stories
        self.cache_dir = Path(cache_dir or Path.home() / ".cache" / "flops_fit")
        encoder = gpt2_encoder() if tokenizer in ("auto", "gpt2") else None
        if tokenizer == "gpt2" and encoder is None:
            raise RuntimeError("tokenizer='gpt2' needs tiktoken and its GPT-2 vocabulary (pip install tiktoken, "
                               "online once); use tokenizer='auto' to fall back to bytes.")
        self.encoder = encoder
        ids = np.load(self.prepare_data())
        super().__init__(ids, seq_len, encoder.n_vocab if encoder is not None else 256)

    def cache_path(self) -> Path:
        files = [self.data_files] if isinstance(self.data_files, str) else list(self.data_files or [])
        # local files enter the key with their size and modification time, so an edited file is re-read
        stamps = [(str(f), os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files if os.path.exists(f)]
        source = repr((self.HUB_NAME, self.split, files, stamps, self.max_stories))
        key = hashlib.sha1(source.encode()).hexdigest()[:12]
        kind = "gpt2" if self.encoder is not None else "bytes"
        return self.cache_dir / f"tinystories-{self.split}-{kind}-{key}.npy"

    def prepare_data(self) -> Path:
        """Download (or read), tokenise and cache; returns the cached file. Does nothing when it exists."""
        path = self.cache_path()
        if path.exists():
            return path
        from datasets import load_dataset

        if self.data_files is not None:
            files = [self.data_files] if isinstance(self.data_files, str) else list(self.data_files)
            builder = "json" if str(files[0]).endswith((".json", ".jsonl")) else "text"
            data = load_dataset(builder, data_files={self.split: files}, split=self.split)
        else:
            data = load_dataset(self.HUB_NAME, split=self.split)
        if self.max_stories is not None:
            data = data.select(range(min(self.max_stories, len(data))))
        texts = data["text"]
        if self.encoder is not None:
            eot = self.encoder.eot_token
            ids = np.concatenate([np.array([*self.encoder.encode_ordinary(t), eot], dtype=np.int64) for t in texts])
        else:
            ids = byte_tokenize("\n".join(texts))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, ids.astype(np.uint16 if ids.max() < 2**16 else np.int64))
        os.replace(tmp, path)  # atomic: a half-written cache is never read
        return path


def stdlib_train_dataset(seq_len: int = 64, max_bytes: int | None = None) -> TokenDataset:
    """The whole offline corpus as one byte-level dataset (run_sweep holds out its tail for evaluation)."""
    return TokenDataset(byte_tokenize(stdlib_corpus(max_bytes)), seq_len, 256)
