"""The size knob: which values a factory can build and how many parameters each has.

Sizes are found, not guessed. The factory is built on PyTorch's meta device, so a
parameter count costs no memory however large the model; counts are cached per knob
value, and each target size is reached by a secant or exact-quadratic search over the
integer knob (which may be a width, a depth or a head count). Values the factory rejects
(``d_model`` not a multiple of ``n_head``, say) are stepped over.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import _deps
from .._checks import param_error
from ..errors import ModelContractError, SizeSearchError

_MAX_SCAN = 64  # knob values tried past a rejected one before giving up on that stretch
_MAX_KNOB = 2**24  # the largest knob value the automatic upper bound will try


def factory_name(model_cls: Callable[..., Any]) -> str:
    return getattr(model_cls, "__qualname__", None) or getattr(model_cls, "__name__", None) or repr(model_cls)


def build_meta(
    model_cls: Callable[..., Any], model_size_param: str, value: int, model_kwargs: Mapping[str, Any] | None = None
) -> Any:
    """``model_cls(**{model_size_param: value}, **model_kwargs)`` on the meta device: shapes, no storage."""
    with _deps.torch().device("meta"):
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
    built = f"{factory_name(model_cls)}({model_size_param}={value})"
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
        """Blame the keyword the factory named: one of model_kwargs, the size knob, or one the factory
        passes on itself (a config field it misspells, say)."""
        text, name = str(exc), factory_name(self.model_cls)
        found = re.search(r"unexpected keyword argument(?:\(s\))?:? \[?'([^']+)'", text)
        keyword = found.group(1) if found else None
        if keyword is not None and keyword in self.model_kwargs:
            return param_error("model_kwargs", "plan_sweep", f"keyword arguments that {name} accepts",
                               self.model_kwargs, f"{name} rejected [{keyword!r}]: {text}")
        if keyword is not None and keyword != self.param:
            return param_error("model_cls", "plan_sweep", f"a factory that builds a model from the size knob "
                               f"{self.param!r}", name, f"Calling it raised TypeError for the keyword {keyword!r}, "
                               f"which is neither the size knob nor in model_kwargs: {text.rstrip('.')}. "
                               f"Fix {keyword!r} where {name} uses it.")
        return param_error("model_size_param", "plan_sweep", f"a keyword argument that {name} accepts",
                           self.param, f"Calling it raised: {text}")

    def _no_build_error(self, tried: Sequence[int]) -> SizeSearchError:
        shown = ", ".join(str(v) for v in list(tried)[:8])
        first = next((self._errors[v] for v in tried if v in self._errors), None)
        cause = f" The first error was {type(first).__name__}: {first}" if first else ""
        return SizeSearchError(
            f"{factory_name(self.model_cls)} rejected every value of '{self.param}' that was tried ({shown}).{cause} "
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
                    "size_values", "plan_sweep", f"values of '{self.param}' that {factory_name(self.model_cls)} accepts",
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
                f"{factory_name(self.model_cls)} has {self._params[lo]} parameters at {self.param}={lo} "
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
