"""plan_sweep(): for each compute budget, find model sizes that straddle its optimum.

Sizes are found, not guessed. The factory is built on PyTorch's meta device, so a
parameter count costs no memory however large the model; counts are cached per
knob value, and each target size is reached by bisection over the integer knob
(which may be a width, a depth or a head count). Values the factory rejects
(``d_model`` not a multiple of ``n_head``, say) are stepped over.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._checks import check_budgets, check_int_list, check_number, param_error, warn
from .flops import NEEDS_MODEL, FlopContext, FlopConvention, convention_name, resolve_convention

PLAN_COLUMNS = [
    "run_id", "budget", "size", "params", "flops_per_token", "tokens", "flops", "tokens_per_param", "status",
]

_MAX_SCAN = 64  # knob values tried past a rejected one before giving up on that stretch
_MAX_KNOB = 2**24  # the largest knob value the automatic upper bound will try


class SizeSearchError(ValueError):
    """The factory cannot provide sizes for a budget (or for any budget)."""


def _factory_name(model_cls: Callable[..., Any]) -> str:
    return getattr(model_cls, "__qualname__", None) or getattr(model_cls, "__name__", None) or repr(model_cls)


class ModelContractError(TypeError):
    """The factory built a model without a usable ``num_params()``."""


def build_meta(
    model_cls: Callable[..., Any], model_size_param: str, value: int, model_kwargs: Mapping[str, Any] | None = None
) -> Any:
    """``model_cls(**{model_size_param: value}, **model_kwargs)`` on the meta device: shapes, no storage."""
    import torch

    with torch.device("meta"):
        return model_cls(**{**(model_kwargs or {}), model_size_param: value})


def count_params(
    model_cls: Callable[..., Any], model_size_param: str, value: int, model_kwargs: Mapping[str, Any] | None = None
) -> int:
    """Build ``model_cls(**{model_size_param: value})`` on the meta device and return ``num_params()``.

    No weights are allocated, so this is cheap even for billions of parameters.

    Examples
    --------
    >>> from flops_fit.examples import GPT
    >>> count_params(GPT, "d_model", 8192, {"n_layer": 48}) > 38e9
    True
    """
    model = build_meta(model_cls, model_size_param, value, model_kwargs)
    built = f"{_factory_name(model_cls)}({model_size_param}={value})"
    counter = getattr(model, "num_params", None)
    if not callable(counter):
        what = "without one" if counter is None else f"whose num_params is a {type(counter).__name__}, not a method"
        raise ModelContractError(
            f"The 'model_cls' parameter must build a model with a num_params() -> int method; "
            f"{built} built a {type(model).__name__} {what}. "
            "Add `def num_params(self): return sum(p.numel() for p in self.parameters())` to the model."
        )
    n = counter()
    try:
        count = operator.index(n)  # int or numpy integer, not float or str
    except TypeError:
        count = -1
    if isinstance(n, bool) or count < 0:
        raise ModelContractError(f"num_params() of {built} must return a non-negative integer. Got {n!r} instead.")
    return count


class SizeSpace:
    """The buildable values of an integer size knob and their parameter counts.

    Counts are cached. With explicit ``values`` only those are used; otherwise the
    knob ranges over multiples of ``multiple_of`` inside ``value_range`` (whose
    upper end, when ``None``, is found by doubling until ``max_params_needed``).
    """

    def __init__(
        self,
        model_cls: Callable[..., Any],
        model_size_param: str,
        *,
        values: Sequence[int] | None = None,
        value_range: tuple[int, int | None] = (1, None),
        multiple_of: int = 1,
        model_kwargs: Mapping[str, Any] | None = None,
        max_params_needed: float = math.inf,
    ) -> None:
        self.model_cls = model_cls
        self.param = model_size_param
        self.model_kwargs = dict(model_kwargs or {})
        self.step = multiple_of
        self._params: dict[int, int | None] = {}
        self._errors: dict[int, BaseException] = {}
        self._quadratic: np.ndarray | None = None
        if values is not None:
            self._init_values(values)
        else:
            self._init_range(value_range, max_params_needed)

    # -- probing -----------------------------------------------------------------
    def params_of(self, value: int) -> int | None:
        """Parameter count at ``value``, or ``None`` when the factory rejects it."""
        if value not in self._params:
            try:
                self._params[value] = count_params(self.model_cls, self.param, value, self.model_kwargs)
            except ModelContractError:
                raise
            except TypeError as exc:
                if "keyword argument" in str(exc):
                    raise self._keyword_error(exc) from exc
                self._params[value], self._errors[value] = None, exc
            except Exception as exc:  # the factory's own validation, e.g. divisibility
                self._params[value], self._errors[value] = None, exc
        return self._params[value]

    def _keyword_error(self, exc: BaseException) -> ValueError:
        """Blame the keyword the factory named: one of model_kwargs, else the size knob."""
        text, name = str(exc), _factory_name(self.model_cls)
        found = re.search(r"unexpected keyword argument(?:\(s\))?:? \[?'([^']+)'", text)
        named = [found.group(1)] if found and found.group(1) in self.model_kwargs else []
        if named:
            return param_error("model_kwargs", "plan_sweep", f"keyword arguments that {name} accepts",
                               self.model_kwargs, f"{name} rejected {named}: {text}")
        return param_error("model_size_param", "plan_sweep", f"a keyword argument that {name} accepts",
                           self.param, f"Calling it raised: {text}")

    def _no_build_error(self, tried: Sequence[int]) -> SizeSearchError:
        shown = ", ".join(str(v) for v in list(tried)[:8])
        first = next((self._errors[v] for v in tried if v in self._errors), None)
        cause = f" The first error was {type(first).__name__}: {first}" if first else ""
        return SizeSearchError(
            f"{_factory_name(self.model_cls)} rejected every value of '{self.param}' that was tried ({shown}).{cause} "
            "Set size_range=(low, high) or multiple_of= to values the factory accepts, or pass size_values=[...]."
        )

    def _scan(self, start: int, stop: int, direction: int) -> int | None:
        """First buildable knob value from ``start`` towards ``stop`` (inclusive), at most _MAX_SCAN tries."""
        value, tries = start, 0
        while (value <= stop if direction > 0 else value >= stop) and tries < _MAX_SCAN:
            if self.params_of(value) is not None:
                return value
            value += direction * self.step
            tries += 1
        return None

    # -- the buildable domain ------------------------------------------------------
    def _init_values(self, values: Sequence[int]) -> None:
        for value in values:
            if self.params_of(value) is None:
                exc = self._errors[value]
                raise param_error(
                    "size_values", "plan_sweep", f"values of '{self.param}' that {_factory_name(self.model_cls)} accepts",
                    list(values), f"{value} was rejected with {type(exc).__name__}: {exc}",
                )
        self.values = sorted(set(values), key=lambda v: (self._params[v], v))
        self.lo, self.hi = self.values[0], self.values[-1]
        self.hi_is_limit = True

    def _init_range(self, value_range: tuple[int, int | None], max_params_needed: float) -> None:
        low, high = value_range
        start = self.step * math.ceil(low / self.step)
        lo = self._scan(start, high if high is not None else start + _MAX_SCAN * self.step, +1)
        if lo is None:
            tried = [start + i * self.step for i in range(_MAX_SCAN)]
            raise self._no_build_error([v for v in tried if v in self._params])
        self.hi_is_limit = True  # unless the doubling search below stops short of any limit
        self._quadratic = self._fit_quadratic(lo, high)
        if high is not None:
            hi = self._scan(self.step * (high // self.step), lo, -1)
            assert hi is not None  # lo itself is buildable
        else:
            hi = lo
            self.hi_is_limit = False
            while self._params[hi] < max_params_needed and hi * 2 <= _MAX_KNOB:
                # double, or jump straight to where an exact quadratic says the count is reached
                jump = min(max(2 * hi, self._quadratic_guess(max_params_needed) or 0), _MAX_KNOB)
                jump = self.step * math.ceil(jump / self.step)
                nxt = self._scan(jump, 2 * jump, +1)
                if nxt is None:  # the factory stops somewhere above hi: find where
                    hi = self._last_buildable(hi, jump)
                    self.hi_is_limit = True
                    break
                hi = nxt
            if hi * 2 > _MAX_KNOB:
                self.hi_is_limit = True
        self.values: list[int] | None = None
        self.lo, self.hi = lo, hi
        if self._params[hi] <= self._params[lo] and hi != lo:
            raise param_error(
                "model_size_param", "plan_sweep", "a knob that changes num_params()", self.param,
                f"{_factory_name(self.model_cls)} has {self._params[lo]} parameters at {self.param}={lo} "
                f"and {self._params[hi]} at {self.param}={hi}.",
            )

    def _fit_quadratic(self, lo: int, high: int | None) -> np.ndarray | None:
        """Coefficients of N(knob) when N is exactly quadratic (or linear) over the first buildable values.

        Transformers are: N is linear in depth and quadratic in width. The fit only
        guides the search (each chosen size is still built and counted), so a
        factory that is not polynomial costs a few extra builds, never a wrong count.
        """
        found: list[int] = []
        value, stop = lo, lo + 16 * self.step if high is None else min(high, lo + 16 * self.step)
        while len(found) < 5 and value <= stop:
            if self.params_of(value) is not None:
                found.append(value)
            value += self.step
        if len(found) < 5:
            return None
        x, y = np.array(found, dtype=float), np.array([self._params[v] for v in found], dtype=float)
        coef = np.polyfit(x, y, 2)
        if np.abs(np.polyval(coef, x) - y).max() > 1e-6 * y.max() or coef[0] < -1e-9 * y.max():
            return None
        return coef

    def _quadratic_guess(self, target: float) -> int | None:
        if self._quadratic is None:
            return None
        c2, c1, c0 = self._quadratic
        if abs(c2) < 1e-12:
            root = (target - c0) / c1 if c1 > 0 else None
        else:
            disc = c1 * c1 - 4 * c2 * (c0 - target)
            root = (-c1 + math.sqrt(disc)) / (2 * c2) if disc >= 0 else None
        return math.ceil(root) if root is not None and 0 < root < 2 * _MAX_KNOB else None

    def _last_buildable(self, good: int, bad: int) -> int:
        """Bisect for the largest buildable value in [good, bad), where ``bad`` and beyond are rejected."""
        while bad - good > self.step:
            mid = self.step * (((good + bad) // 2) // self.step)
            found = self._scan(mid, min(mid + 8 * self.step, bad - self.step), +1) if mid > good else None
            if found is None:
                bad = mid
            else:
                good = found
        return good

    @property
    def min_params(self) -> int:
        return self._params[self.lo]  # type: ignore[return-value]

    @property
    def max_params(self) -> int:
        return self._params[self.hi]  # type: ignore[return-value]

    # -- lookups -----------------------------------------------------------------------
    def nearest(self, target: float) -> int:
        """The buildable knob value whose parameter count is closest to ``target`` in log space."""
        below, above = self._bracket(target)
        pb, pa = self._params[below], self._params[above]
        if below == above or abs(math.log(max(pb, 1) / target)) <= abs(math.log(max(pa, 1) / target)):  # type: ignore[arg-type]
            return below
        return above

    def _bracket(self, target: float) -> tuple[int, int]:
        if self.values is not None:
            counts = [self._params[v] for v in self.values]
            i = int(np.searchsorted(counts, target))
            return self.values[max(i - 1, 0)], self.values[min(i, len(self.values) - 1)]
        lo, hi = self.lo, self.hi
        if self._params[lo] >= target:  # type: ignore[operator]
            return lo, lo
        if self._params[hi] <= target:  # type: ignore[operator]
            return hi, hi
        a, b = lo, hi  # the two latest probes, for a secant step in log-log space
        stalls, exact = 0, self._quadratic is not None
        while hi - lo > self.step:  # invariant: params(lo) < target <= params(hi)
            width = hi - lo
            if stalls >= 2:
                guess = None
            elif exact:
                guess = self._quadratic_guess(target)
            else:
                guess = self._secant(a, b, target)
            mid = (lo + hi) // 2 if guess is None else min(max(guess, lo + self.step), hi - self.step)
            mid = self.step * (mid // self.step)
            probe = self._scan(mid, hi - self.step, +1) if mid > lo else None
            if probe is None:
                probe = self._scan(mid - self.step, lo + self.step, -1) if mid - self.step > lo else None
            if probe is None:
                break
            if self._params[probe] >= target:  # type: ignore[operator]
                hi = probe
            else:
                lo = probe
            a, b = b, probe
            stalls = stalls + 1 if (hi - lo) * 2 > width else 0  # two slow steps in a row: bisect once
            exact = exact and stalls == 0  # the quadratic missed here: fall back to secant steps
        return lo, hi

    def _secant(self, a: int, b: int, target: float) -> int | None:
        """Knob value where the local power law through probes a and b reaches ``target``.

        Parameter counts are close to polynomials of the knob, so this usually lands
        within a step or two, where plain bisection would take a dozen builds.
        """
        pa, pb = self._params[a], self._params[b]
        if a == b or not pa or not pb or pa == pb:
            return None
        slope = math.log(pb / pa) / math.log(b / a)
        if slope <= 0:
            return None
        return round(math.exp(math.log(b) + math.log(target / pb) / slope))

    def between(self, low_params: float, high_params: float, limit: int = 4096) -> list[int]:
        """Every buildable value whose count lies in [low_params, high_params] (at most ``limit`` knob steps)."""
        if self.values is not None:
            return [v for v in self.values if low_params <= self._params[v] <= high_params]  # type: ignore[operator]
        start, stop = self.nearest(low_params), self.nearest(high_params)
        if (stop - start) // self.step > limit:
            return []
        found = [v for v in range(start, stop + 1, self.step) if self.params_of(v) is not None]
        return [v for v in found if low_params <= self._params[v] <= high_params]  # type: ignore[operator]


def infer_tokens_per_sample(example_input: Any) -> int:
    """Tokens in one sample: its size if it holds integer token ids, else 1 (one sample, one token)."""
    if example_input is None:
        return 1
    dtype = getattr(example_input, "dtype", None)
    is_int = dtype is not None and not getattr(dtype, "is_floating_point", True) and not getattr(
        dtype, "is_complex", False)
    return int(example_input.numel()) if is_int else 1


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


def _stable_repr(obj: object) -> str:
    """A repr that names the setting the same way in every session, or a clear error when it cannot.

    Objects whose repr is only their type and address (lambdas, plain instances) would
    all look alike once the address is dropped, so two different settings would share
    run ids; they are refused instead.
    """
    text = repr(obj)
    qualname = getattr(obj, "__qualname__", "")
    if "<lambda>" in qualname or "<locals>" in qualname or re.fullmatch(r"<.+ object at 0x[0-9a-fA-F]+>", text):
        raise ValueError(f"The 'model_kwargs' parameter of plan_sweep must hold values that name themselves: "
                         f"{text} does not, so runs could not be told apart. Pass a module-level function, "
                         "a string or a dataclass instead.")
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def make_run_id(**content: Any) -> str:
    """A stable id from a run's content (budget, size, training settings), never its position."""
    blob = json.dumps(content, sort_keys=True, default=_stable_repr)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def plan_sweep(
    model_cls: Callable[..., Any],
    model_size_param: str,
    compute_budgets: Sequence[float],
    *,
    points_per_budget: int = 9,
    tokens_per_param: float = 20.0,
    size_span: float = 100.0,
    size_values: Sequence[int] | None = None,
    size_range: tuple[int, int] | None = None,
    multiple_of: int = 1,
    flop_convention: FlopConvention = "6N",
    model_kwargs: Mapping[str, Any] | None = None,
    example_input: Any = None,
    tokens_per_sample: int | None = None,
    train_config: Any = None,
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
    points_per_budget : int, default 9
        Model sizes per budget (at least 3; Approach 2 needs a curve).
    tokens_per_param : float, default 20
        Prior for the optimal D/N (Hoffmann et al. 2022 found about 20 at scale;
        small models often want far more, so widen ``size_span`` if unsure).
    size_span : float, default 100
        Ratio of the largest to the smallest planned N at a budget, centred (in
        log space) on the prior optimum.
    size_values : sequence of int, optional
        Knob values to choose from instead of searching.
    size_range : (int, int), optional
        Lowest and highest knob values to search; default from the smallest
        buildable value up to what the largest budget needs.
    multiple_of : int, default 1
        Only knob values that are multiples of this are tried.
    flop_convention : str or callable, default "6N"
        ``"6N"``, ``"6N_non_embedding"``, ``"attention"``, ``"measured"`` (see
        :mod:`flops_fit.flops`) or a callable ``params -> FLOPs per token``.
    model_kwargs : mapping, optional
        Fixed keyword arguments passed to ``model_cls`` with every size.
    example_input : tensor, optional
        One input sample (no batch dimension), for the ``"attention"`` and
        ``"measured"`` conventions; :func:`find_optimal` takes it from the dataset.
    tokens_per_sample : int, optional
        Tokens in one sample (the sequence length of a language model, the patches
        of an image); default: the size of an integer ``example_input``, else 1.
    train_config : TrainConfig, optional
        The training settings the runs will use; they are part of each ``run_id``,
        so a changed setting makes new runs rather than reusing old results.

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id, budget, size, params, flops_per_token, tokens, flops,
        tokens_per_param, status`` (``status`` is ``"pending"``), sorted by budget
        then size. ``plan.attrs`` records the settings.

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
    if model_kwargs is not None and not isinstance(model_kwargs, Mapping):
        raise param_error("model_kwargs", func, "a dict of fixed keyword arguments for model_cls", model_kwargs)
    if model_kwargs and model_size_param in model_kwargs:
        raise param_error("model_kwargs", func, f"free of the size knob '{model_size_param}'", dict(model_kwargs),
                          "The planner sets the knob itself; remove it from model_kwargs.")
    if model_kwargs:
        make_run_id(model_kwargs=dict(model_kwargs))  # every setting must name itself, or run ids could collide
    budgets = check_budgets(compute_budgets, func)
    k = check_number(points_per_budget, "points_per_budget", func, integer=True, above=2)
    ratio = check_number(tokens_per_param, "tokens_per_param", func)
    span = check_number(size_span, "size_span", func, above=1.0)
    step = check_number(multiple_of, "multiple_of", func, integer=True)
    per_token_of = resolve_convention(flop_convention, func)
    tokens_known = tokens_per_sample is not None or example_input is not None
    if tokens_per_sample is None:
        tokens_per_sample = infer_tokens_per_sample(example_input)
    sample_tokens = check_number(tokens_per_sample, "tokens_per_sample", func, integer=True)
    # the prior and the servable range use 6N unless the convention is a function of N alone
    needs_model = isinstance(flop_convention, str) and flop_convention in NEEDS_MODEL
    fpt = (lambda n: 6.0 * n) if needs_model else (lambda n: per_token_of(FlopContext(int(n))))
    if size_values is not None and size_range is not None:
        raise param_error("size_range", func, "None when size_values is given", size_range, "Pass one or the other.")
    if size_values is not None:
        size_values = check_int_list(size_values, "size_values", func, "a non-empty list of positive integers")
    value_range: tuple[int, int | None] = (step, None)
    if size_range is not None:
        pair = check_int_list(size_range, "size_range", func, "a pair of integers (low, high) with 1 <= low <= high")
        if len(pair) != 2 or pair[0] > pair[1]:
            raise param_error("size_range", func, "a pair of integers (low, high) with 1 <= low <= high", size_range)
        value_range = (pair[0], pair[1])

    half = math.log(span) / 2
    priors = {b: prior_optimum(b, ratio, fpt) for b in budgets}
    space = SizeSpace(
        model_cls, model_size_param, values=size_values, value_range=value_range, multiple_of=step,
        model_kwargs=model_kwargs, max_params_needed=max(priors.values()) * math.exp(half),
    )
    _check_servable(space, budgets, priors, half, ratio, fpt)

    rows = []
    factory = _factory_name(model_cls)
    training = None
    if train_config is not None:
        from .trainer import TrainConfig, describe

        if not isinstance(train_config, TrainConfig):
            raise param_error("train_config", func, "a flops_fit.TrainConfig", train_config)
        training = describe(train_config)
    for budget in budgets:
        sizes = _choose_sizes(space, math.log(priors[budget]), half, k)
        if len(sizes) < 3:
            raise SizeSearchError(
                f"Only {len(sizes)} distinct sizes of '{model_size_param}' can be built for budget {budget:.3g}; "
                "an IsoFLOP curve needs at least 3. Widen size_range or use a finer size knob."
            )
        if len(sizes) < k:
            warn(
                f"plan_sweep: budget {budget:.3g} gets {len(sizes)} sizes, not the {k} asked for: that is every "
                f"distinct size of '{model_size_param}' the factory can build in range. Widen size_range or "
                "size_span for more.", UserWarning)
        for size in sizes:
            params = space.params_of(size)
            model = build_meta(model_cls, model_size_param, size, model_kwargs) if needs_model else None
            per_token = float(per_token_of(FlopContext(int(params), model, example_input, sample_tokens)))
            tokens = max(int(round(budget / per_token)), 1)
            rows.append({
                "run_id": make_run_id(model=factory, param=model_size_param, model_kwargs=dict(model_kwargs or {}),
                                      budget=budget, size=size, tokens=tokens,
                                      flop_convention=convention_name(flop_convention), training=training),
                "budget": budget, "size": int(size), "params": int(params), "flops_per_token": per_token,
                "tokens": tokens, "flops": per_token * tokens, "tokens_per_param": tokens / params,
                "status": "pending",
            })
    plan = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    plan.attrs.update({
        "model_size_param": model_size_param, "flop_convention": convention_name(flop_convention),
        "tokens_per_param": ratio, "size_span": span, "points_per_budget": k,
        "model_kwargs": dict(model_kwargs or {}),
        # only when known: run_sweep then checks the training data against it
        "tokens_per_sample": sample_tokens if tokens_known else None,
    })
    return plan


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
    name, p = _factory_name(space.model_cls), space.param
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
