"""plan_sweep(): for each compute budget, model sizes that straddle its expected optimum."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_budgets, check_number, param_error, warn
from ..errors import FitWarning, SizeSearchError
from ..flops import NEEDS_MODEL, FlopContext, convention_name, resolve_convention
from ..schema import PLAN_COLUMNS, Status
from ..training.config import TrainConfig, describe
from ..training.data import infer_tokens_per_sample
from ..ids import make_run_id, record_json, unreadable
from .sizes import SizeSpace, build_meta, factory_name
from ..spec import PlanSpec


def plan_sweep(
    model_cls: Callable[..., Any],
    model_size_param: str,
    compute_budgets: Sequence[float],
    *,
    spec: PlanSpec | None = None,
    example_input: Any = None,
    tokens_per_sample: int | None = None,
    train_config: TrainConfig | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Plan an IsoFLOP sweep: one row per run, sizes straddling each budget's expected optimum.

    Parameters
    ----------
    model_cls : callable
        Model factory, called as ``model_cls(**{model_size_param: value}, **model_kwargs)``;
        the model must have ``num_params() -> int``. Built on the meta device only.
    model_size_param : str
        The integer keyword that sets the size (a width, a depth, a head count...).
    compute_budgets : sequence of float
        Distinct, positive budgets C in FLOPs.
    spec : PlanSpec, optional
        How to plan (sizes per budget, the D/N prior, the span of sizes, the FLOP
        convention, fixed model settings...); see :class:`~flops_fit.PlanSpec`.
    example_input : tensor, optional
        One input sample (no batch dimension), for the ``"attention"`` and
        ``"measured"`` conventions; :func:`find_optimal` takes it from the dataset.
    tokens_per_sample : int, optional
        Tokens in one sample (the sequence length of a language model, the patches
        of an image); default: the size of an integer ``example_input``, else 1.
    train_config : TrainConfig, optional
        The training settings the runs will use; they are part of each ``run_id``,
        so a changed setting makes new runs rather than reusing old results.
    **options
        Any field of :class:`~flops_fit.PlanSpec` (``points_per_budget=9``,
        ``tokens_per_param=20``, ``size_span=100``, ``size_values``, ``size_range``,
        ``multiple_of=1``, ``flop_convention="6N"``, ``model_kwargs``, ``repeats=1``), replacing that field
        of ``spec``. ``size_values`` are run exactly, at every budget where they get one optimiser step
        (``points_per_budget``, ``size_span`` and the prior then only warn, never refuse).

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id, budget, size, params, flops_per_token, tokens, flops,
        tokens_per_param, status`` (``status`` is ``"pending"``), then what a run needs to be
        built and trained from its row alone: ``size_param`` (the knob's name), ``model_kwargs``
        (the fixed settings, as JSON) and ``tokens_per_sample`` (empty when not known), and
        ``repeat`` (0, or 1.. for the extra runs of each budget's middle size that ``repeats`` asks
        for; each has its own run_id and seed). Sorted by budget then size.

    Raises
    ------
    ValueError
        On bad arguments, or when a budget cannot be served by any buildable size
        (the message says which budgets can).

    Examples
    --------
    >>> from flops_fit.examples import GPT
    >>> plan = plan_sweep(GPT, "d_model", [1e15, 1e16], model_kwargs={"vocab_size": 256, "n_layer": 2})
    >>> plan.groupby("budget").size().tolist()
    [9, 9]
    """
    func = "plan_sweep"
    if not callable(model_cls):
        raise param_error("model_cls", func, "a callable that builds a model (a class or a function)", model_cls)
    if not isinstance(model_size_param, str) or not model_size_param.isidentifier():
        raise param_error("model_size_param", func, "the name of the factory's size keyword, e.g. 'd_model'",
                          model_size_param)
    spec = PlanSpec.from_options(spec, options, func, ("spec", "example_input", "tokens_per_sample", "train_config"))
    objects = unreadable(spec.model_kwargs)
    if objects:
        raise param_error("model_kwargs", func, "settings that can build a model", spec.model_kwargs,
                          f"{objects} were recorded only by name (a stored spec cannot hold objects); "
                          "pass them again, e.g. plan_sweep(..., spec=spec, model_kwargs={...}).")
    if model_size_param in spec.model_kwargs:
        raise param_error("model_kwargs", func, f"free of the size knob '{model_size_param}'", spec.model_kwargs,
                          "The planner sets the knob itself; remove it from model_kwargs.")
    budgets = check_budgets(compute_budgets, func)
    if train_config is not None and not isinstance(train_config, TrainConfig):
        raise param_error("train_config", func, "a flops_fit.TrainConfig", train_config)
    per_token_of = resolve_convention(spec.flop_convention, func)
    tokens_known = tokens_per_sample is not None or example_input is not None
    if tokens_per_sample is None:
        tokens_per_sample = infer_tokens_per_sample(example_input)
    sample_tokens = check_number(tokens_per_sample, "tokens_per_sample", func, integer=True)
    # the prior and the servable range use 6N unless the convention is a function of N alone
    needs_model = isinstance(spec.flop_convention, str) and spec.flop_convention in NEEDS_MODEL
    fpt = (lambda n: 6.0 * n) if needs_model else (lambda n: per_token_of(FlopContext(int(n))))

    half = math.log(spec.size_span) / 2
    priors = {b: prior_optimum(b, spec.tokens_per_param, fpt) for b in budgets}
    space = SizeSpace(
        model_cls, model_size_param, values=spec.size_values, value_range=spec.size_range or (spec.multiple_of, None),
        multiple_of=spec.multiple_of, model_kwargs=spec.model_kwargs,
        max_params_needed=max(priors.values()) * math.exp(half),
    )
    if spec.size_values is None:  # explicit sizes are run as given: the prior only warns (below)
        _check_servable(space, budgets, priors, half, spec.tokens_per_param, fpt)
    min_tokens = (train_config.batch_size if train_config is not None else 1) * sample_tokens  # one step

    factory, k = factory_name(model_cls), spec.points_per_budget
    training = describe(train_config) if train_config is not None else None
    settings = record_json(spec.model_kwargs)
    rows = []
    for budget in budgets:
        if spec.size_values is not None:
            sizes = _explicit_sizes(space, budget, priors[budget], spec.tokens_per_param, fpt, min_tokens)
        else:
            sizes = _choose_sizes(space, math.log(priors[budget]), half, k)
        if len(sizes) < 3 and spec.size_values is not None:
            raise SizeSearchError(
                f"Only {len(sizes)} of size_values get at least one optimiser step at budget {budget:.3g}; an "
                "IsoFLOP curve needs at least 3. Add smaller sizes to size_values or raise the budget.")
        if len(sizes) < 3:
            raise SizeSearchError(
                f"Only {len(sizes)} distinct sizes of '{model_size_param}' can be built for budget {budget:.3g}; "
                "an IsoFLOP curve needs at least 3. Widen size_range or use a finer size knob."
            )
        if len(sizes) < k and spec.size_values is None:
            warn(
                f"plan_sweep: budget {budget:.3g} gets {len(sizes)} sizes, not the {k} asked for: that is every "
                f"distinct size of '{model_size_param}' the factory can build in range. Widen size_range or "
                "size_span for more.", UserWarning)
        middle = min(sizes, key=lambda s: abs(math.log(space.params_of(s) / priors[budget])))
        for size, repeat in [(s, r) for s in sizes for r in range(spec.repeats if s == middle else 1)]:
            params = space.params_of(size)
            model = build_meta(model_cls, model_size_param, size, spec.model_kwargs) if needs_model else None
            per_token = float(per_token_of(FlopContext(int(params), model, example_input, sample_tokens)))
            tokens = max(int(round(budget / per_token)), 1)
            rows.append({
                "run_id": make_run_id(model=factory, param=model_size_param, model_kwargs=spec.model_kwargs,
                                      budget=budget, size=size, tokens=tokens,
                                      flop_convention=convention_name(spec.flop_convention), training=training,
                                      **({"repeat": repeat} if repeat else {})),
                "budget": budget, "size": int(size), "params": int(params), "flops_per_token": per_token,
                "tokens": tokens, "flops": per_token * tokens, "tokens_per_param": tokens / params,
                "status": Status.PENDING.value, "size_param": model_size_param, "model_kwargs": settings,
                # only when known: run_sweep then checks the training data against it
                "tokens_per_sample": sample_tokens if tokens_known else None, "repeat": repeat,
            })
    plan = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    plan["tokens_per_sample"] = plan["tokens_per_sample"].astype("Int64")
    return plan


def prior_optimum(budget: float, tokens_per_param: float, fpt: Callable[[float], float]) -> float:
    """N at which ``budget = fpt(N) * tokens_per_param * N``: the size the prior expects to be optimal."""
    lo, hi = 0.0, 80.0  # bisection on ln N; fpt is increasing in N
    for _ in range(200):
        mid = (lo + hi) / 2
        n = math.exp(mid)
        if fpt(n) * tokens_per_param * n < budget:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def _budget_for(params: float, tokens_per_param: float, fpt: Callable[[float], float]) -> float:
    return fpt(params) * tokens_per_param * params


def _explicit_sizes(space: SizeSpace, budget: float, prior: float, ratio: float, fpt: Callable[[float], float],
                    min_tokens: int) -> list[int]:
    """``size_values`` as given, less those too large to get one optimiser step at ``budget``; a FitWarning when
    the prior optimum lies outside them (the sizes are run all the same: the prior is only a guess)."""
    values = list(space.values or [])
    fits = [v for v in values if budget / fpt(space.params_of(v)) >= min_tokens]
    if len(fits) < len(values):
        dropped = [v for v in values if v not in fits]
        warn(f"plan_sweep: budget {budget:.3g} is too small to train {space.param}={dropped} for even one "
             f"optimiser step ({min_tokens} tokens); those sizes are left out at this budget.", UserWarning)
    if fits:
        low, high = space.params_of(fits[0]), space.params_of(fits[-1])
        if not low <= prior <= high:
            side, fix = (("below", "add smaller sizes to size_values") if prior < low
                         else ("above", "add larger sizes to size_values"))
            warn(f"plan_sweep: at budget {budget:.3g} the prior optimum (~{prior:.3g} params at "
                 f"tokens_per_param={ratio:g}) lies {side} the sizes given ({low:.3g}..{high:.3g} params); they are run as given. If the "
                 f"minimum is not bracketed, {fix} (or set tokens_per_param to what you expect).", FitWarning)
    return fits


def _choose_sizes(space: SizeSpace, centre: float, half_width: float, k: int) -> list[int]:
    """k distinct knob values log-spaced over [ln centre ± half_width] clipped to the buildable range.

    Where the knob is too coarse to give k distinct sizes inside the window (a depth
    knob, say), the window is widened symmetrically until it does or the buildable
    range runs out.
    """
    ln_min, ln_max = math.log(max(space.min_params, 1)), math.log(space.max_params)
    chosen: list[int] = []
    width = half_width
    for _ in range(12):
        lo_x, hi_x = max(centre - width, ln_min), min(centre + width, ln_max)
        targets = np.exp(np.linspace(lo_x, hi_x, k))
        chosen = sorted({space.nearest(t) for t in targets}, key=lambda v: (space.params_of(v), v))
        if len(chosen) < k:
            pool = space.between(math.exp(lo_x), math.exp(hi_x))
            chosen = _spread(space, sorted(set(pool) | set(chosen), key=space.params_of), k)
        if len(chosen) >= k or (lo_x <= ln_min and hi_x >= ln_max):
            break
        width *= 1.25
    return chosen


def _spread(space: SizeSpace, pool: list[int], k: int) -> list[int]:
    """Pick k values from ``pool`` (sorted by params) as evenly spread in log params as possible."""
    if len(pool) <= k:
        return pool
    logs = np.log(np.maximum([space.params_of(v) for v in pool], 1))
    picks = {int(np.argmin(np.abs(logs - t))) for t in np.linspace(logs[0], logs[-1], k)}
    rest = [i for i in range(len(pool)) if i not in picks]
    while len(picks) < k and rest:  # fill the widest remaining gaps
        taken = sorted(picks)
        gaps = [min(abs(logs[i] - logs[j]) for j in taken) for i in rest]
        picks.add(rest.pop(int(np.argmax(gaps))))
    return [pool[i] for i in sorted(picks)]


def _check_servable(
    space: SizeSpace, budgets: list[float], priors: dict[float, float], half: float, ratio: float,
    fpt: Callable[[float], float],
) -> None:
    """Each budget's window must reach at least half-way out on both sides of its prior."""
    reach = math.exp(half / 2)
    n_lo, n_hi = space.min_params, space.max_params
    bad = [b for b in budgets if priors[b] / reach < n_lo or priors[b] * reach > n_hi]
    if not bad:
        return
    serve_lo, serve_hi = n_lo * reach, n_hi / reach
    name, p = factory_name(space.model_cls), space.param
    lines = []
    for b in bad:
        side = (f"models down to {priors[b] / reach:.3g} params, but the smallest buildable ({p}={space.lo}) has {n_lo:,}"
                if priors[b] / reach < n_lo else
                f"models up to {priors[b] * reach:.3g} params, but the largest buildable ({p}={space.hi}) has {n_hi:,}")
        lines.append(f"  budget {b:.3g}: expected optimum ~{priors[b]:.3g} params; straddling it needs {side}")
    if serve_lo > serve_hi:
        can = f"With these settings {name} can serve no budget: its sizes span too narrow a range of parameters."
    elif space.hi_is_limit:
        can = (f"With these settings {name} can serve budgets from {_budget_for(serve_lo, ratio, fpt):.3g} "
               f"to {_budget_for(serve_hi, ratio, fpt):.3g} FLOPs.")
    else:  # the upper end is only where the search stopped, not a limit of the factory
        can = f"With these settings {name} can serve budgets from {_budget_for(serve_lo, ratio, fpt):.3g} FLOPs up."
    raise SizeSearchError(
        f"compute_budgets contains budget(s) that {name} cannot serve by varying '{p}':\n" + "\n".join(lines) + "\n"
        + can + " Choose budgets in that range, change the fixed model settings (model_kwargs), widen size_range, "
        "or change tokens_per_param / size_span."
    )
