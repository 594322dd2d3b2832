"""AdaptiveDesign: which runs an adaptive sweep adds next, from the runs so far.

The loop (run by :class:`flops_fit.adaptive.AdaptiveExecution`):

1. **Start** (reason ``"new budget"``): three sizes at each budget, at the prior optimum and a factor
   ``sqrt(size_span)`` either side of it (the fixed design's span, at a third of its runs).
2. After each batch, refit with the default estimator (:func:`~flops_fit.fit_vpnls`, each budget's curve in the
   law's shape).
3. **Bracket** (``"bracket left"``, ``"bracket right"``): a budget whose lowest measured loss is at its smallest
   or largest size, or whose fitted optimum lies outside its sizes, gets a size another factor
   ``sqrt(size_span)`` further out on that side, until measured points lie above its minimum on both sides.
4. **Refine** (``"refine"``): once every budget is bracketed, the runs that most shrink the variance of ln N_opt
   at ``target_compute`` per FLOP they cost. The variance is the one :func:`~flops_fit.approaches.isoflop_shape.
   vpnls_laws` reports, sum_b c_b^2 Var(ln N_opt,b), where c_b weighs budget b's optimum in the power law's value
   at the target (least squares in ln C) and Var(ln N_opt,b) = noise * g'(D'D)^-1 g comes from the budget's
   design in the law's shape. A run at size x adds a row to D'D, so its gain is known before it runs: cheap
   budgets far from the target's lever arm and sizes where the curve says most about its minimum win.
   ``parallel`` runs are chosen at a time (greedily, each counting the ones chosen before it).
5. **Stop** when the 95 % interval of N_opt at ``target_compute`` is within ``target_precision`` (its
   half-width over N_opt), or when no run fits under ``max_compute``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .._checks import param_error
from ..approaches import estimator as estimators
from ..approaches.isoflop_shape import budget_curves, design_row
from ..approaches.laws import predict_from_laws
from ..schema import Status
from .rows import PlanRows

REASONS = ("new budget", "bracket left", "bracket right", "refine")
# candidate sizes about each optimum, in steps (the fixed design's span); at most _SAME_SIZE runs of one size at a
# budget: a linear design would pile every run on the two ends, where a real curve is least like the law
_REFINE_STEPS = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)
_SAME_SIZE = 3
_MOST_RUNS = 3  # no budget is refined past this many times points_per_budget runs (each run costs wall time too)


@dataclass
class Proposal:
    """What the design says after a batch: the runs to add (``plan``, possibly empty), the precision reached,
    the FLOPs spent and planned, and ``stop``: why the sweep ends ("" while it goes on)."""

    plan: pd.DataFrame
    precision: float
    spent: float
    stop: str = ""
    notes: list[str] = field(default_factory=list)

    def event(self, target: float) -> dict[str, Any]:
        """The ``adaptive`` event the runner emits for callbacks and the monitor."""
        return {"type": "adaptive", "precision": self.precision, "target_precision": target, "spent": self.spent,
                "stop": self.stop, "proposed": self.plan["run_id"].tolist(),
                "reasons": self.plan["reason"].tolist(), "notes": list(self.notes)}


class AdaptiveDesign:
    """The adaptive strategy's start design and the batches after it, for the budgets of one sweep.

    Examples
    --------
    >>> from flops_fit import PlanSpec
    >>> from flops_fit.examples import GPT
    >>> from flops_fit.planning.planner import plan_rows
    >>> spec = PlanSpec(strategy="adaptive", model_kwargs={"vocab_size": 256, "n_layer": 2})
    >>> rows = plan_rows(GPT, "d_model", [1e15, 1e16], spec, None, None, None, "example")
    >>> start = AdaptiveDesign(rows, [1e15, 1e16]).start()
    >>> start.groupby("budget").size().tolist(), start["reason"].unique().tolist()
    ([3, 3], ['new budget'])
    """

    def __init__(self, rows: PlanRows, budgets: Sequence[float]) -> None:
        spec = rows.spec
        self.rows, self.budgets = rows, sorted(float(b) for b in budgets)
        self.step = math.log(spec.size_span) / 2  # in ln N: start design's half-width and a bracket's stride
        self.target = spec.target_compute if spec.target_compute is not None else 100.0 * self.budgets[-1]
        self.cap = (spec.max_compute if spec.max_compute is not None
                    else spec.points_per_budget * sum(self.budgets))
        # the defaults resolved, so a sweep directory keeps them when budgets are added (and on resume)
        self.spec = replace(spec, max_compute=self.cap, target_compute=self.target)
        self._rate: tuple[float, float] | None = None  # the latest refine's variance at the target and best gain/FLOP

    # -- the start ---------------------------------------------------------------------------------------
    def start(self) -> pd.DataFrame:
        """Three sizes at each budget about its prior optimum (``reason`` "new budget"), the middle one repeated
        ``spec.repeats`` times."""
        planned = []
        for budget in self.budgets:
            sizes = self._start_sizes(budget)
            middle = sizes[len(sizes) // 2]
            for size in sizes:
                for repeat in range(self.spec.repeats if size == middle else 1):
                    planned.append(self.rows.row(budget, size, repeat, "new budget"))
        plan = self.rows.frame(planned)
        cheapest = float(plan["flops"].min())
        if self.cap < cheapest:
            raise param_error("max_compute", "plan_sweep", f"at least one run's FLOPs ({cheapest:.3g})",
                              self.cap, "Raise max_compute, or leave it None for what the fixed design would spend.")
        if self.cap < float(plan["flops"].sum()):
            raise param_error("max_compute", "plan_sweep", f"at least the start design's FLOPs "
                              f"({plan['flops'].sum():.3g}: three sizes at each budget)", self.cap,
                              "Raise max_compute, or drop the largest budget.")
        return plan

    def _start_sizes(self, budget: float) -> list[int]:
        space, prior = self.rows.space, self.rows.prior_optimum(budget)
        for widen in (1.0, 1.5, 2.0, 3.0, 4.0):  # a coarse knob may need a wider window for 3 distinct sizes
            targets = [prior * math.exp(k * self.step * widen) for k in (-1, 0, 1)]
            sizes = sorted({space.nearest(t) for t in targets}, key=space.params_of)
            sizes = [s for s in sizes if self.rows.trainable(budget, s)]
            if len(sizes) == 3:
                return sizes
        raise param_error("compute_budgets", "plan_sweep", "budgets at which 3 distinct sizes of "
                          f"'{space.param}' get an optimiser step", budget,
                          "Raise the budget, widen size_range or use a finer size knob.")

    # -- after each batch --------------------------------------------------------------------------------
    def propose(self, results: pd.DataFrame) -> Proposal:
        """The next batch from ``results`` (every run planned so far, finished or not)."""
        done = results[results["status"] == Status.COMPLETED.value]
        done = done[np.isfinite(pd.to_numeric(done["loss"], errors="coerce"))]
        flops = pd.to_numeric(results["flops"], errors="coerce").fillna(0.0)
        spent = float(flops.sum())
        fitted = self._fit(done)
        precision = self.precision(fitted)
        empty = self.rows.frame([])
        if precision <= self.spec.target_precision:
            return Proposal(empty, precision, spent, "target precision reached")
        budget_left = self.cap - spent
        taken = {(float(b), int(s)): int(n) for (b, s), n in results.groupby(["budget", "size"]).size().items()}
        notes: list[str] = []
        wanted = self._bracket(done, fitted, taken, notes)
        if not wanted and fitted is not None and not fitted.laws.empty:
            scattered = _errors_known(fitted.optima) and _scattered(fitted.laws)
            if scattered:  # more runs at these budgets cannot narrow the interval: another budget can
                wanted = self._new_budget(results, fitted, budget_left)
            if not wanted:
                wanted = self._refine(done, fitted, taken, budget_left)
                out_of_reach = self._out_of_reach(precision, budget_left)
                if out_of_reach and not scattered:
                    return Proposal(empty, precision, spent, out_of_reach, notes)
            wanted = wanted or self._refine(done, fitted, taken, math.inf)
        chosen = []
        batch = max(self.spec.parallel, sum(r["reason"] == "new budget" for r in wanted))  # a budget opens whole
        for row in wanted[:batch]:
            if row["flops"] <= budget_left:
                chosen.append(row)
                budget_left -= row["flops"]
        if chosen:
            return Proposal(self.rows.frame(chosen), precision, spent, notes=notes)
        if wanted:
            stop = f"compute cap reached (max_compute={self.cap:.3g} FLOPs)"
        elif fitted is None or fitted.laws.empty:
            stop = "no power law can be fitted from the runs so far, and nothing left to add"
        else:
            stop = "nothing left to add"
        return Proposal(empty, precision, spent, stop, notes)

    def _out_of_reach(self, precision: float, budget_left: float) -> str:
        """Why ``target_precision`` cannot be reached within the FLOPs left ("" when it may be): the variance at
        the target falls at most at the best rate a run offers now (each later run offers less)."""
        if not math.isfinite(precision) or self._rate is None:
            return ""
        variance, rate = self._rate
        goal = variance * (math.asinh(self.spec.target_precision) / math.asinh(precision)) ** 2
        if variance - rate * budget_left <= goal:
            return ""
        reach = math.sinh(math.asinh(precision) * math.sqrt(max(variance - rate * budget_left, 0.0) / variance))
        return (f"target_precision {self.spec.target_precision:g} is out of reach within max_compute "
                f"({self.cap:.3g} FLOPs): the runs left could narrow {precision:.3g} to about {reach:.3g} at best")

    def _fit(self, done: pd.DataFrame) -> estimators.Fitted | None:
        if done["budget"].nunique() < 2:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return estimators.fit(done, "vpnls", "adaptive sweep")
            except ValueError:  # e.g. a budget left with fewer than 3 sizes by failed runs
                return None

    def precision(self, fitted: estimators.Fitted | None) -> float:
        """Half the 95 % interval of N_opt at the target over N_opt (inf without a power law)."""
        if fitted is None or fitted.laws.empty or fitted.estimator != "vpnls":
            return math.inf
        if not _errors_known(fitted.optima):
            return math.inf  # too few runs to know the optima's errors: an interval now would be luck
        p = predict_from_laws(fitted.laws, self.target)
        value = (p["optimal_params_high"] - p["optimal_params_low"]) / (2 * p["optimal_params"])
        return float(value) if math.isfinite(value) else math.inf

    # -- bracketing ----------------------------------------------------------------------------------------
    def _bracket(self, done: pd.DataFrame, fitted: estimators.Fitted | None, taken: dict[tuple[float, int], int],
                 notes: list[str]) -> list[dict[str, Any]]:
        """A run further out at each budget whose minimum is not yet bracketed by measured points."""
        outside: dict[float, str] = {}
        if fitted is not None and "inside" in fitted.optima.columns:
            for row in fitted.optima.itertuples():
                if not row.inside and row.has_minimum:
                    outside[float(row.budget)] = "left" if row.params_opt < row.params_min else "right"
        chosen = []
        for budget in sorted({b for b, _ in taken}):
            runs = done[done["budget"] == budget]
            means = runs.groupby("params")["loss"].mean().sort_index()
            if len(means) < 3:
                continue
            low = int(np.argmin(means.to_numpy()))
            side = "left" if low == 0 else "right" if low == len(means) - 1 else outside.get(budget)
            if side is None:
                continue
            edge = float(means.index[0] if side == "left" else means.index[-1])
            row = self._further(budget, edge, side, taken)
            if row is None:
                notes.append(f"budget {budget:.3g}: its minimum lies {'below' if side == 'left' else 'above'} the "
                             f"sizes of '{self.rows.space.param}' that can be built or trained there")
                continue
            chosen.append(row)
        return chosen

    def _further(self, budget: float, edge: float, side: str, taken: dict[tuple[float, int], int]) -> dict[str, Any] | None:
        space, sign = self.rows.space, -1.0 if side == "left" else 1.0
        for stride in (1.0, 1.5, 2.0, 3.0):
            size = space.nearest(edge * math.exp(sign * self.step * stride))
            params = space.params_of(size)
            if (budget, size) in taken or sign * math.log(params / edge) <= 0 or not self.rows.trainable(budget, size):
                continue
            return self.rows.row(budget, size, 0, f"bracket {side}")
        return None

    # -- another budget ------------------------------------------------------------------------------------
    def _new_budget(self, results: pd.DataFrame, fitted: estimators.Fitted,
                    budget_left: float) -> list[dict[str, Any]]:
        """Three sizes about the power law's N_opt at the cheapest budget half-way (in ln C) between two budgets
        with runs, when it fits under the cap."""
        opened = sorted(float(b) for b in results["budget"].unique())
        for low, high in zip(opened, opened[1:]):
            if high / low < 3.1:  # budgets stay at least a quarter of a decade apart
                continue
            budget = float(f"{math.sqrt(low * high):.3g}")
            centre = predict_from_laws(fitted.laws, budget)["optimal_params"]
            sizes = sorted({self.rows.space.nearest(centre * math.exp(k * self.step)) for k in (-1, 0, 1)})
            rows = [self.rows.row(budget, s, 0, "new budget") for s in sizes if self.rows.trainable(budget, s)]
            if len(rows) == 3 and sum(r["flops"] for r in rows) <= budget_left:
                return rows
        return []

    # -- refining ----------------------------------------------------------------------------------------
    def _refine(self, done: pd.DataFrame, fitted: estimators.Fitted, taken: dict[tuple[float, int], int],
                budget_left: float) -> list[dict[str, Any]]:
        """The ``parallel`` runs (affordable within ``budget_left``) that most shrink Var ln N_opt at the target
        per FLOP."""
        self._rate = None
        law = fitted.law.iloc[0]
        alpha, beta = float(law["alpha"]), float(law["beta"])
        curves = {float(c["budget"]): c for c in budget_curves(fitted.law, done)}
        usable = [float(b) for b in fitted.optima.loc[fitted.optima["usable"].astype(bool), "budget"]]
        if len(usable) < 2:
            return []
        weights = _lever_weights(usable, self.target)
        info = {b: np.array(curves[b]["information"], dtype=float) for b in usable}
        variance = sum(weights[b] ** 2 * _spread(info[b], np.asarray(curves[b]["grad"], dtype=float)) for b in usable)
        counts = dict(taken)
        chosen: list[dict[str, Any]] = []
        crowded = {b for b in usable if sum(n for (c, _), n in taken.items() if c == b)
                   >= _MOST_RUNS * self.spec.points_per_budget}
        candidates = self._candidates([b for b in usable if b not in crowded], curves)
        while len(chosen) < self.spec.parallel and candidates:
            best, best_gain = None, 0.0
            for budget, size, x, y, flops in candidates:
                if flops > budget_left or counts.get((budget, size), 0) >= _SAME_SIZE:
                    continue
                curve = curves[budget]
                grad = np.asarray(curve["grad"], dtype=float)
                before = _spread(info[budget], grad)
                r = design_row(x, y, alpha, beta, curve)
                gain = weights[budget] ** 2 * (before - _spread(info[budget] + np.outer(r, r), grad)) / flops
                if gain > best_gain:
                    best, best_gain = (budget, size, r, flops), gain
            if best is None:
                break
            if self._rate is None:
                self._rate = (variance, best_gain)
            budget, size, r, flops = best
            repeat = counts.get((budget, size), 0)
            counts[(budget, size)] = repeat + 1
            info[budget] = info[budget] + np.outer(r, r)
            budget_left -= flops
            chosen.append(self.rows.row(budget, size, repeat, "refine"))
        return chosen

    def _candidates(self, usable: list[float], curves: dict[float, dict[str, Any]]) -> list[tuple]:
        space, found = self.rows.space, []
        for budget in usable:
            sizes = {space.nearest(math.exp(float(curves[budget]["x_opt"]) + k * self.step))
                     for k in _REFINE_STEPS}
            for size in sorted(sizes):
                if not self.rows.trainable(budget, size):
                    continue
                row = self.rows.row(budget, size)
                found.append((budget, size, math.log(row["params"]), math.log(row["tokens"]), float(row["flops"])))
        return found


def _errors_known(optima: pd.DataFrame) -> bool:
    """Whether the usable optima carry standard errors (the budgets' runs leave degrees of freedom for the noise)."""
    usable = optima[optima["usable"].astype(bool)]
    return bool(np.isfinite(usable["log_params_se"]).all() and (usable["se_dof"] >= 1).all())


def _scattered(laws: pd.DataFrame) -> bool:
    """Whether the budgets' optima scatter about the power law of N_opt more than their errors allow (its interval
    then rests on n_budgets - 2 degrees of freedom, see vpnls_laws)."""
    row = laws.set_index("quantity").loc["params"]
    return int(row["dof"]) == int(row["n_budgets"]) - 2


def _spread(information: np.ndarray, grad: np.ndarray) -> float:
    return float(grad @ np.linalg.pinv(information) @ grad)


def _lever_weights(budgets: list[float], target: float) -> dict[float, float]:
    """c_b: how much each budget's ln N_opt moves the least-squares line's value at ``target`` (in ln C)."""
    x = np.log(budgets)
    centred = x - x.mean()
    sxx = float(centred @ centred)
    x0 = math.log(target) - x.mean()
    return {b: 1.0 / len(budgets) + x0 * c / sxx for b, c in zip(budgets, centred)}


def check_resumable(stored: Any, spec: Any, path: str) -> None:
    """An adaptive sweep continues in its directory only with the planning settings it began with."""
    if stored is None or stored.strategy != "adaptive":
        return
    free = {"target_precision", "max_compute", "parallel", "target_compute"}  # how far to go, not what runs
    mine, theirs = spec.to_dict(), stored.to_dict()
    differ = sorted(k for k in mine if k not in free and mine[k] != theirs.get(k))
    if differ:
        raise param_error("spec", "run_sweep", "the planning settings the adaptive sweep in this directory began "
                          "with", {k: mine[k] for k in differ},
                          f"{path} holds an adaptive sweep planned with "
                          f"{ {k: theirs.get(k) for k in differ} }. Use another directory, or continue it with "
                          "its own settings: spec=flops_fit.SweepStore(path).spec() (target_precision, "
                          "max_compute and parallel may change).")


