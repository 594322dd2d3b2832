"""plan_sweep(): for each compute budget, model sizes that straddle its expected optimum."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_budgets, check_number, param_error, warn
from ..errors import FitWarning, SizeSearchError
from ..flops import resolve_convention
from ..ids import unreadable
from ..spec import PlanSpec
from ..training.config import TrainConfig
from ..training.data import infer_tokens_per_sample
from .adaptive import AdaptiveDesign
from .rows import PlanRows, prior_fpt, prior_optimum
from .sizes import SizeSpace, factory_name

__all__ = ["plan_rows", "plan_sweep", "prior_optimum"]


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
        ``multiple_of=1``, ``flop_convention="6N"``, ``model_kwargs``, ``repeats=1``, ``strategy="fixed"``,
        ``target_precision=0.1``, ``max_compute``, ``target_compute``, ``parallel=1``), replacing that field
        of ``spec``. ``size_values`` are run exactly, at every budget where they get one optimiser step
        (``points_per_budget``, ``size_span`` and the prior then only warn, never refuse).
        ``strategy="adaptive"`` returns only the start design, three sizes a budget about the prior (a factor
        ``sqrt(size_span)`` apart); :func:`run_sweep` given the same ``spec`` adds runs batch by batch
        (see :mod:`flops_fit.planning.adaptive`).

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id, budget, size, params, flops_per_token, tokens, flops,
        tokens_per_param, status`` (``status`` is ``"pending"``), then what a run needs to be
        built and trained from its row alone: ``size_param`` (the knob's name), ``model_kwargs``
        (the fixed settings, as JSON) and ``tokens_per_sample`` (empty when not known), and
        ``repeat`` (0, or 1.. for the extra runs of each budget's middle size that ``repeats`` asks
        for; each has its own run_id and seed), and ``reason``: why the run is planned (``"grid"``,
        ``"listed"`` for ``size_values``; an adaptive sweep's ``"new budget"``, ``"bracket left"``,
        ``"bracket right"``, ``"refine"``). Sorted by budget then size.

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
    resolve_convention(spec.flop_convention, func)
    rows = plan_rows(model_cls, model_size_param, budgets, spec, example_input, tokens_per_sample, train_config, func)
    if spec.strategy == "adaptive":
        return AdaptiveDesign(rows, budgets).start()
    half = math.log(spec.size_span) / 2
    priors = {b: rows.prior_optimum(b) for b in budgets}
    space, k = rows.space, spec.points_per_budget
    if spec.size_values is None:  # explicit sizes are run as given: the prior only warns (below)
        _check_servable(space, budgets, priors, half, spec.tokens_per_param, rows.fpt)
    planned = []
    for budget in budgets:
        if spec.size_values is not None:
            sizes = _explicit_sizes(rows, budget, priors[budget])
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
        reason = "listed" if spec.size_values is not None else "grid"
        for size, repeat in [(s, r) for s in sizes for r in range(spec.repeats if s == middle else 1)]:
            planned.append(rows.row(budget, size, repeat, reason))
    return rows.frame(planned)


def plan_rows(model_cls: Callable[..., Any], model_size_param: str, budgets: Sequence[float], spec: PlanSpec,
              example_input: Any, tokens_per_sample: int | None, train_config: TrainConfig | None,
              func: str) -> PlanRows:
    """How rows of this sweep are made: the size knob searched far enough for every budget's prior (and, for an
    adaptive sweep, 100x beyond it, where it may need to go), the convention, the data and training facts."""
    tokens_known = tokens_per_sample is not None or example_input is not None
    if tokens_per_sample is None:
        tokens_per_sample = infer_tokens_per_sample(example_input)
    sample_tokens = check_number(tokens_per_sample, "tokens_per_sample", func, integer=True)
    fpt = prior_fpt(spec)
    reach = math.exp(math.log(spec.size_span) / 2) * (100.0 if spec.strategy == "adaptive" else 1.0)
    space = SizeSpace(
        model_cls, model_size_param, values=spec.size_values, value_range=spec.size_range or (spec.multiple_of, None),
        multiple_of=spec.multiple_of, model_kwargs=spec.model_kwargs,
        max_params_needed=max(prior_optimum(b, spec.tokens_per_param, fpt) for b in budgets) * reach,
    )
    return PlanRows(space, spec, example_input, sample_tokens, tokens_known, train_config)


def _budget_for(params: float, tokens_per_param: float, fpt: Callable[[float], float]) -> float:
    return fpt(params) * tokens_per_param * params


def _explicit_sizes(rows: PlanRows, budget: float, prior: float) -> list[int]:
    """``size_values`` as given, less those too large to get one optimiser step at ``budget``; a FitWarning when
    the prior optimum lies outside them (the sizes are run all the same: the prior is only a guess)."""
    space = rows.space
    values = list(space.values or [])
    fits = [v for v in values if rows.trainable(budget, v)]
    if len(fits) < len(values):
        dropped = [v for v in values if v not in fits]
        warn(f"plan_sweep: budget {budget:.3g} is too small to train {space.param}={dropped} for even one "
             f"optimiser step ({rows.step_tokens} tokens); those sizes are left out at this budget.", UserWarning)
    if fits:
        low, high = space.params_of(fits[0]), space.params_of(fits[-1])
        if not low <= prior <= high:
            side, fix = (("below", "add smaller sizes to size_values") if prior < low
                         else ("above", "add larger sizes to size_values"))
            warn(f"plan_sweep: at budget {budget:.3g} the prior optimum (~{prior:.3g} params at "
                 f"tokens_per_param={rows.spec.tokens_per_param:g}) lies {side} the sizes given ({low:.3g}..{high:.3g} "
                 f"params); they are run as given. If the minimum is not bracketed, {fix} (or set tokens_per_param "
                 "to what you expect).", FitWarning)
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
