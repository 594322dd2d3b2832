"""A small GPT in the style of nanoGPT, with one size knob per config field.

``GPT(d_model=64)`` builds a decoder-only transformer whose other dimensions come
from :class:`GPTConfig` defaults, so ``GPT`` itself is a model factory that
flops_fit can sweep over any integer field (``d_model``, ``n_layer``, ``n_head``).
The language-model head is tied to the token embedding (as in GPT-2), so
``num_params()`` counts that matrix once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


ALIASES = {"num_layers": "n_layer", "num_heads": "n_head", "max_seq_len": "block_size"}  # the original flops-fit's


def canonical(settings: dict[str, Any], owner: str) -> dict[str, Any]:
    """``settings`` with the original flops-fit names (``num_layers``...) renamed to nanoGPT's (``n_layer``...).

    >>> canonical({"num_layers": 2, "d_model": 64}, "GPTConfig")
    {'d_model': 64, 'n_layer': 2}
    """
    out = dict(settings)
    for alias, name in ALIASES.items():
        if alias in out:
            if name in out:
                raise TypeError(f"{owner} got both {name}={out[name]!r} and its alias {alias}={out[alias]!r}; "
                                f"give only one of them.")
            out[name] = out.pop(alias)
    return out


@dataclass
class _GPTFields:
    vocab_size: int = 50257  # GPT-2 BPE; use 256 for byte-level text
    block_size: int = 256  # context length T (alias max_seq_len)
    n_layer: int = 4  # alias num_layers
    n_head: int = 4  # alias num_heads
    d_model: int = 128  # must be a multiple of n_head
    dropout: float = 0.0
    bias: bool = False  # bias in Linear and LayerNorm, as GPT-2 had; off is a bit better and faster

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "d_model"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer. Got {value!r} instead.")
        if self.d_model % self.n_head:
            raise ValueError(
                f"GPTConfig.d_model must be a multiple of n_head={self.n_head}. Got d_model={self.d_model} instead."
            )


class GPTConfig(_GPTFields):
    """The GPT's dimensions; ``num_layers``, ``num_heads`` and ``max_seq_len`` are accepted for ``n_layer``,
    ``n_head`` and ``block_size`` (the original flops-fit's names).

    Examples
    --------
    >>> GPTConfig(d_model=64, num_layers=2, max_seq_len=128).n_layer
    2
    """

    def __init__(self, *args: Any, **settings: Any) -> None:
        known = {f.name for f in fields(_GPTFields)}
        unknown = sorted(set(settings) - known - set(ALIASES))
        if unknown:
            raise TypeError(f"GPTConfig got unexpected keyword argument(s) {unknown}; its fields are "
                            f"{sorted(known)} (aliases {sorted(ALIASES)}).")
        super().__init__(*args, **canonical(settings, "GPTConfig"))


class GPTOutput(torch.Tensor):
    """The logits (B, T, vocab_size), which also unpack as nanoGPT's ``(logits, loss)``.

    It is the logits tensor for everything (``lm_loss(out, targets)``, ``out[:, -1]``, ``out * 2``, whose
    results are plain tensors), except that iterating it gives the pair: ``logits, loss = model(idx)``, with
    ``loss`` None unless targets were given. Iterate ``out.logits`` for the rows of the batch.
    """

    __torch_function__ = torch._C._disabled_torch_function_impl  # as nn.Parameter: results are plain tensors
    loss: torch.Tensor | None

    @classmethod
    def of(cls, logits: torch.Tensor, loss: torch.Tensor | None = None) -> GPTOutput:
        out = logits.as_subclass(cls)  # the same data and autograd history
        out.loss = loss
        return out

    @property
    def logits(self) -> torch.Tensor:
        return self.as_subclass(torch.Tensor)

    def __iter__(self) -> Iterator[torch.Tensor | None]:  # type: ignore[override]
        return iter((self.logits, self.loss))


class SelfAttention(nn.Module):
    """Multi-head self-attention; causal for language models, full for images."""

    def __init__(self, d_model: int, n_head: int, *, bias: bool = False, dropout: float = 0.0,
                 causal: bool = True) -> None:
        super().__init__()
        self.n_head, self.causal, self.dropout = n_head, causal, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=self.causal, dropout_p=self.dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, d_model: int, *, bias: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model, bias=bias)
        self.proj = nn.Linear(4 * d_model, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d_model: int, n_head: int, *, bias: bool = False, dropout: float = 0.0,
                 causal: bool = True) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model, bias=bias)
        self.attn = SelfAttention(d_model, n_head, bias=bias, dropout=dropout, causal=causal)
        self.ln_2 = nn.LayerNorm(d_model, bias=bias)
        self.mlp = MLP(d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def init_weights(model: nn.Module, n_layer: int) -> None:
    """GPT-2 initialisation: N(0, 0.02), zero biases, residual projections scaled by 1/sqrt(2 n_layer)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    for name, p in model.named_parameters():
        if name.endswith("proj.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))


class GPT(nn.Module):
    """Decoder-only transformer; ``GPT(**overrides)``, ``GPT(GPTConfig(...))`` or both.

    It returns the logits as a :class:`GPTOutput`, which also unpacks as nanoGPT's ``(logits, loss)``.

    Examples
    --------
    >>> model = GPT(d_model=32, n_layer=2, vocab_size=256, block_size=64)
    >>> model.num_params()
    34976
    >>> logits, loss = model(torch.zeros(1, 8, dtype=torch.long))
    >>> tuple(logits.shape), loss
    ((1, 8, 256), None)
    """

    def __init__(self, config: GPTConfig | None = None, **overrides: int | float | bool) -> None:
        super().__init__()
        known = {f.name for f in fields(GPTConfig)}
        unknown = sorted(set(overrides) - known - set(ALIASES))
        if unknown:
            raise TypeError(f"GPT got unexpected keyword argument(s) {unknown}; GPTConfig fields are {sorted(known)} "
                            f"(aliases {sorted(ALIASES)}).")
        if config is not None and not isinstance(config, _GPTFields):
            raise TypeError(f"GPT's config must be a GPTConfig. Got {type(config).__name__} instead.")
        base = config or GPTConfig()
        self.config = GPTConfig(**{**base.__dict__, **canonical(overrides, "GPT")})
        c = self.config
        self.wte = nn.Embedding(c.vocab_size, c.d_model)
        self.wpe = nn.Embedding(c.block_size, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(c.d_model, c.n_head, bias=c.bias, dropout=c.dropout) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.d_model, bias=c.bias)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as in GPT-2
        if self.wte.weight.device.type != "meta":  # planning builds on meta: skip init work
            init_weights(self, c.n_layer)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count N; tied weights count once.

        With ``non_embedding=True`` the token and position embeddings are left
        out (Kaplan et al. 2020's convention); the tied head goes with them.
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wte.weight.numel() + self.wpe.weight.numel()
        return n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> GPTOutput:
        """Token ids (B, T) -> (logits (B, T, vocab_size), loss): the mean next-token cross-entropy against
        ``targets`` (B, T) when given (ids of -100 are ignored), else None."""
        _, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"GPT got a sequence of length {T}; block_size is {self.config.block_size}.")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                                   ignore_index=-100)
        return GPTOutput.of(logits, loss)
