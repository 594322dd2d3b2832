"""FLOP conventions: how many FLOPs one training token costs.

=====================  ==================================================================
``"6N"`` (default)     6 FLOPs per parameter per token, N from ``num_params()`` (2 forward,
                       4 backward; Kaplan et al. 2020, Sec. 2.1; Hoffmann et al. 2022, App. F)
``"6N_non_embedding"`` 6 N with N from ``num_params(non_embedding=True)`` (Kaplan's N)
``"attention"``        6 N + 12 L d T: adds the attention scores and their use, QK^T and AV,
                       forward and backward (Hoffmann et al. 2022, App. F), for a model with
                       ``n_layer`` layers of width ``d_model`` on sequences of T tokens
``"measured"``         ``torch.utils.flop_counter.FlopCounterMode`` over one forward and
                       backward pass of one sample on the meta device, under the MATH
                       attention backend (the only one it counts on CPU), per token
=====================  ==================================================================

A callable ``params -> flops_per_token`` may stand in for a name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

from . import _deps
from ._checks import param_error

FlopConvention = Union[str, Callable[[float], float]]


@dataclass(frozen=True)
class FlopContext:
    """What a convention may look at: the parameter count, the model (built on meta) and one input sample."""

    params: int
    model: Any = None
    example_input: Any = None  # one sample without its batch dimension
    tokens_per_sample: int = 1


def _six_n(ctx: FlopContext) -> float:
    return 6.0 * ctx.params


def _six_n_non_embedding(ctx: FlopContext) -> float:
    counter = getattr(ctx.model, "num_params", None)
    try:
        n = counter(non_embedding=True)  # type: ignore[misc]
    except TypeError as exc:
        raise ValueError(
            "flop_convention='6N_non_embedding' needs a model whose num_params(non_embedding=True) leaves the "
            f"embeddings out; {type(ctx.model).__name__}.num_params does not take that argument ({exc})."
        ) from None
    return 6.0 * n


def _config_value(model: Any, *names: str) -> int:
    config = getattr(model, "config", None)
    for name in names:
        for source in (config, model):
            value = getattr(source, name, None) if source is not None else None
            if isinstance(value, int):
                return value
    raise ValueError(
        f"flop_convention='attention' needs the model's {names[0]} (as model.config.{names[0]} or "
        f"model.{names[0]}); {type(model).__name__} has neither. Use '6N' or 'measured'."
    )


def _attention(ctx: FlopContext) -> float:
    n_layer = _config_value(ctx.model, "n_layer", "num_layers", "depth")
    d_model = _config_value(ctx.model, "d_model", "n_embd", "hidden_size", "dim")
    if ctx.example_input is None:
        raise ValueError("flop_convention='attention' needs the sequence length: pass a dataset or example_input.")
    seq_len = ctx.tokens_per_sample
    return 6.0 * ctx.params + 12.0 * n_layer * d_model * seq_len


def _measured(ctx: FlopContext) -> float:
    torch = _deps.torch()
    attention = _deps.torch_part("nn.attention")
    FlopCounterMode = _deps.torch_part("utils.flop_counter").FlopCounterMode
    if ctx.example_input is None:
        raise ValueError("flop_convention='measured' needs an input sample: pass a dataset or example_input.")
    sample = torch.as_tensor(ctx.example_input).to("meta")
    batch = sample[None].expand(2, *sample.shape)  # 2 samples: BatchNorm refuses a batch of one
    try:
        with attention.sdpa_kernel(attention.SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            out = _first_tensor(ctx.model(batch))
            out.float().sum().backward()
    except Exception as exc:
        raise ValueError(f"flop_convention='measured' could not run one forward and backward pass of "
                         f"{type(ctx.model).__name__} on the meta device: {type(exc).__name__}: {exc}. "
                         "Use '6N' or a callable instead.") from exc
    return counter.get_total_flops() / (2 * ctx.tokens_per_sample)


def _first_tensor(out: Any) -> Any:
    """The tensor inside a model's output: itself, ``.logits``, or the first of a tuple or dict."""
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, dict):
        return next(iter(out.values()))
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


CONVENTIONS: dict[str, Callable[[FlopContext], float]] = {
    "6N": _six_n,
    "6N_non_embedding": _six_n_non_embedding,
    "attention": _attention,
    "measured": _measured,
}
NEEDS_MODEL = {"6N_non_embedding", "attention", "measured"}


_RECORDED = "callable:"  # how a stored plan names a callable convention it cannot hold


def convention_name(convention: FlopConvention, recorded: bool = False) -> str:
    """The convention's name; a callable's ``__name__`` (as ``"callable:<name>"`` with ``recorded``)."""
    if isinstance(convention, str):
        return convention
    name = getattr(convention, "__name__", repr(convention))
    return f"{_RECORDED}{name}" if recorded else name


def is_recorded(convention: object) -> bool:
    """Whether ``convention`` is a stored plan's record of a callable (which names it but cannot run it)."""
    return isinstance(convention, str) and convention.startswith(_RECORDED)


def resolve_convention(convention: FlopConvention, func: str = "plan_sweep") -> Callable[[FlopContext], float]:
    """Return the ``FlopContext -> flops_per_token`` function behind a convention."""
    if isinstance(convention, str) and convention in CONVENTIONS:
        return CONVENTIONS[convention]
    if is_recorded(convention):
        raise param_error("flop_convention", func, "a convention that can be computed", convention,
                          f"This plan was made with the callable {convention[len(_RECORDED):]}, which a stored plan "
                          "names but cannot hold; pass it again as flop_convention=.")
    if callable(convention):
        return lambda ctx: float(convention(ctx.params))
    raise param_error(
        "flop_convention", func, f"one of {sorted(CONVENTIONS)} or a callable params -> FLOPs per token", convention
    )


def flops_per_token(params: float, convention: FlopConvention = "6N", *, model: Any = None,
                    example_input: Any = None, tokens_per_sample: int = 1) -> float:
    """FLOPs charged per training token for a model of ``params`` parameters.

    Examples
    --------
    >>> flops_per_token(1e6)
    6000000.0
    """
    ctx = FlopContext(int(params), model, example_input, tokens_per_sample)
    return resolve_convention(convention, "flops_per_token")(ctx)
