"""SweepDesigner: choose budgets and sizes with sliders, see the plan, press Run."""

from __future__ import annotations

import inspect
import logging
import math
import threading
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

import pandas as pd

from .._checks import check_choice, check_number, check_seed, param_error
from ..api import training_facts
from ..live import budget_grid, budget_options, duration, plan_summary, plan_table
from ..mock import PlantedLaw, check_law, check_pace
from ..planning.planner import plan_sweep
from ..runner import run_sweep
from ..schema import MODES
from ..spec import PlanSpec
from ..training.device import peak_flops, pick_device
from ..worker import prestart
from ._deps import widgets
from .monitor import SweepMonitor, measured_rate
from .plotly_widget import preload

logger = logging.getLogger(__name__)

# what run_options may hold: run_sweep's keywords, less those the designer sets itself
_RUN_OPTIONS = set(inspect.signature(run_sweep).parameters) - {
    "plan", "model_cls", "dataset", "loss_fn", "mode", "law", "seed", "model_size_param", "model_kwargs",
    "background", "return_curves", "spec", "pace"}
# an error wraps between words (a word longer than the line, such as a path, may break), keeping its line breaks
_ERROR = "color:crimson; white-space:pre-wrap; word-break:normal; overflow-wrap:break-word; max-width:100%"
_OUTDATED = ("<div class='flops-fit-outdated' style='background:#fcf8e3; color:#8a6d3b; padding:4px 8px; "
             "border-left:4px solid #f0ad4e'><b>outdated</b>: the plan changed since this sweep ran</div>")


class SweepDesigner:
    """Plan an IsoFLOP sweep with widgets, then run it live in a :class:`SweepMonitor`.

    Budgets are chosen on a log scale (a range and how many budgets in it), sizes by
    points per budget, the span of N at each budget and the D/N prior around which it
    is centred. The plan, its total compute and an estimated time update as the
    controls move; a plan that cannot be built says why and disables Run.

    Parameters
    ----------
    model_cls, model_size_param, dataset, loss_fn
        As for :func:`~flops_fit.find_optimal`. Without ``dataset`` and ``loss_fn``
        only mock mode is offered.
    budgets : (float, float), default (1e17, 1e21)
        The initial budget range, each end a 1 or 3 times a power of ten.
    n_budgets : int, default 5
        Budgets spread evenly in log C over the range.
    spec : PlanSpec, optional
        How to plan; its sizes per budget, D/N prior, span of N and knob range start the sliders,
        and its other fields (``model_kwargs``, ``flop_convention``, ``multiple_of``) hold throughout.
    mode : {"mock", "local"}, default "mock"
    flops_per_second : float, optional
        What training reaches here, for the time estimate of ``"local"`` runs; by
        default 30 % of a matrix-multiply peak measured on this machine. After a sweep the estimate uses
        what its finished runs measured instead.
    pace : float, default 0.05
        Seconds each simulated run takes in ``"mock"`` mode, so a person sees the points arrive (45 runs
        take about 2-3 s); 0 or None: as fast as possible. Ignored in ``"local"`` mode (see ``run_sweep``).
    **options
        Any field of :class:`~flops_fit.PlanSpec` (``points_per_budget``, ``model_kwargs``,
        ``size_range=(low, high)`` to start with the knob limited...), replacing that field of
        ``spec``; ``store``, ``train_config``, ``eval_dataset``, ``executor``... go to
        :func:`~flops_fit.run_sweep`.

    Examples
    --------
    >>> from flops_fit.examples import GPT
    >>> from flops_fit.widgets import SweepDesigner
    >>> designer = SweepDesigner(GPT, "d_model", model_kwargs={"n_layer": 4})
    >>> designer.n_budgets.value = 3
    >>> designer.budgets
    [1e+17, 1e+19, 1e+21]
    >>> len(designer.plan)
    27
    >>> designer.run_button.click()
    >>> designer.monitor.wait()["status"].value_counts().to_dict()
    {'completed': 27}
    """

    def __init__(
        self,
        model_cls: Callable[..., Any],
        model_size_param: str,
        dataset: Any = None,
        loss_fn: Callable[..., Any] | None = None,
        *,
        budgets: tuple[float, float] = (1e17, 1e21),
        n_budgets: int = 5,
        spec: PlanSpec | None = None,
        mode: str = "mock",
        flops_per_second: float | None = None,
        law: PlantedLaw | None = None,
        seed: int = 0,
        extrapolate_to: Sequence[float] | None = None,
        pace: float | None = 0.05,
        **options: Any,
    ) -> None:
        W = widgets("SweepDesigner")

        func = "SweepDesigner"
        if not callable(model_cls):
            raise param_error("model_cls", func, "a model factory such as flops_fit.examples.GPT", model_cls)
        if not isinstance(model_size_param, str):
            raise param_error("model_size_param", func, "the name of the integer size knob, e.g. 'd_model'",
                              model_size_param)
        check_choice(mode, "mode", func, MODES)
        can_train = dataset is not None and loss_fn is not None
        if mode == "local" and not can_train:
            raise param_error("mode", func, "'mock' when no dataset and loss_fn are given", mode,
                              "Pass dataset= and loss_fn= to train for real.")
        check_seed(seed, func)
        check_law(law, func)
        self.pace = check_pace(pace, "mock", func)
        n_budgets = int(check_number(n_budgets, "n_budgets", func, integer=True, above=1))
        names = PlanSpec.option_names()
        self.spec = PlanSpec.from_options(spec, {k: v for k, v in options.items() if k in names}, func)
        run_options = {k: v for k, v in options.items() if k not in names}
        points_per_budget, size_span = self.spec.points_per_budget, self.spec.size_span
        tokens_per_param, size_range = self.spec.tokens_per_param, self.spec.size_range
        unknown = sorted(set(run_options) - _RUN_OPTIONS)
        if unknown:  # caught here, not as a silent failure of the Run button later
            raise param_error("options", func, "fields of PlanSpec or keywords of run_sweep "
                              f"({', '.join(sorted(_RUN_OPTIONS))})", unknown)
        options = budget_options()
        low, high = (float(b) for b in budgets)
        if low not in options or high not in options or low >= high:
            raise param_error("budgets", func, "two increasing values from 1e9 to 1e25, each 1 or 3 times a "
                              "power of ten", budgets, "For example budgets=(1e17, 1e21).")
        self.model_cls, self.model_size_param = model_cls, model_size_param
        self.dataset, self.loss_fn = dataset, loss_fn
        self.law, self.seed, self.extrapolate_to = law, seed, extrapolate_to
        self.run_options = run_options
        self._flops_per_second = flops_per_second
        self.monitor: SweepMonitor | None = None
        self._measured: dict[str, tuple[str, float]] = {}  # mode -> what the last sweep's runs measured
        self._ran: tuple[Any, ...] | None = None  # what the monitor's sweep ran: mode, spec and run_ids
        self.plan: pd.DataFrame | None = None
        self.error: str | None = None

        style = {"description_width": "150px"}
        wide = W.Layout(width="100%", max_width="760px")  # room for the budget range's handles to sit apart
        self.budget_range = W.SelectionRangeSlider(
            options=[(f"{c:.0e}".replace("e+", "e"), c) for c in options], value=(low, high),
            description="budget range (FLOPs)", continuous_update=False, style=style, layout=wide)
        self.n_budgets = W.IntSlider(value=n_budgets, min=2, max=max(9, n_budgets), description="budgets",
                                     continuous_update=False, style=style, layout=wide)
        self.points = W.IntSlider(value=points_per_budget, min=3, max=max(15, points_per_budget), description="sizes per budget",
                                  continuous_update=False, style=style, layout=wide)
        self.size_span = W.FloatLogSlider(value=size_span, base=10, min=min(0.5, math.log10(size_span)),
                                          max=max(3.0, math.log10(size_span)), step=0.1,
                                          description="N span (max/min)", continuous_update=False, style=style,
                                          layout=wide, readout_format=".3g")
        self.tokens_per_param = W.FloatLogSlider(value=tokens_per_param, base=10,
                                                 min=min(0.0, math.log10(tokens_per_param)),
                                                 max=max(3.0, math.log10(tokens_per_param)), step=0.05,
                                                 description="D/N prior", continuous_update=False, style=style,
                                                 layout=wide, readout_format=".3g")
        # the knob's range: off, the planner searches every value the factory accepts
        top = max([4096, *(size_range or ())])
        self.limit_sizes = W.Checkbox(value=size_range is not None, description=f"limit {model_size_param}",
                                      style=style, indent=False, layout=W.Layout(width="150px"))
        self.size_limits = W.IntRangeSlider(value=tuple(size_range or (1, top)), min=1, max=top,
                                            disabled=size_range is None, continuous_update=False,
                                            layout=W.Layout(flex="1 1 auto", max_width="610px"))
        self.mode = W.ToggleButtons(options=list(MODES) if can_train else ["mock"], value=mode,
                                    description="mode", style=style, button_style="info",
                                    tooltips=["simulate a known law, no training", "train every run here"][
                                        : 2 if can_train else 1])
        self.strategy = W.ToggleButtons(options=["fixed", "adaptive"], value=self.spec.strategy, description="strategy",
                                        style=style, button_style="info", tooltips=["every size planned up front",
                                                               "a small start, then the runs that narrow N_opt most"])
        self.target_precision = W.FloatSlider(value=self.spec.target_precision, min=0.02, max=0.5, step=0.01,
                                              description="target +- of N_opt", readout_format=".0%",
                                              continuous_update=False, style=style, layout=wide)
        cap = 1.0 if self.spec.max_compute is None else self.spec.max_compute / self._fixed_compute(
            self.spec.points_per_budget, budget_grid(low, high, n_budgets))
        self.compute_cap = W.FloatSlider(value=round(cap, 2), min=0.1, max=max(3.0, cap), step=0.05,
                                         description="compute cap (x fixed)", readout_format=".2f",
                                         continuous_update=False, style=style, layout=wide)
        self.summary = W.HTML()
        self.table = W.HTML(layout=W.Layout(max_height="260px", overflow="auto"))
        self.run_button = W.Button(description="Run sweep", icon="play", button_style="primary")
        self.run_button.on_click(self._clicked)
        self.monitor_box = W.VBox()
        self.starting = W.HTML("<i>starting…</i>")  # shown from the click until the monitor is built
        self.outdated = W.HTML(_OUTDATED)  # above the monitor while the plan differs from what it ran
        controls = W.VBox([self.budget_range, self.n_budgets, self.points, self.size_span, self.tokens_per_param,
                           W.HBox([self.limit_sizes, self.size_limits], layout=W.Layout(width="100%",
                                                                                        max_width="760px")),
                           self.mode, self.strategy,
                           self.target_precision, self.compute_cap])
        self.widget = W.VBox([controls, self.summary, self.table, self.run_button, self.monitor_box])
        self.widget.add_class("flops-fit-designer")
        self.replan()
        if size_range is None and self.plan is not None:  # start the limits where the plan is, room to widen
            largest = int(self.plan["size"].max())
            self.size_limits.max = max(top, 4 * largest)
            self.size_limits.value = (int(self.plan["size"].min()), largest)
        for control in (self.budget_range, self.n_budgets, self.points, self.size_span, self.tokens_per_param,
                        self.size_limits, self.mode, self.strategy, self.target_precision, self.compute_cap):
            control.observe(lambda _: self.replan(), names="value")
        self.limit_sizes.observe(self._toggle_limits, names="value")
        self.mode.observe(lambda _: self._warm_worker(), names="value")
        self._warm_worker()
        preload()  # plotly's widget code, while the user plans: the first Run no longer waits for it

    def _warm_worker(self) -> None:
        """In local mode, start the process a background sweep trains in now, while the user plans: a new one
        takes a second or two to import torch (:mod:`flops_fit.worker`)."""
        if self.mode.value == "local" and self.run_options.get("executor") is None:
            prestart()

    def _toggle_limits(self, change: Any) -> None:
        self.size_limits.disabled = not change["new"]
        self.replan()

    @property
    def size_range(self) -> tuple[int, int] | None:
        """The knob range the planner may use (None: any value the factory accepts)."""
        return tuple(self.size_limits.value) if self.limit_sizes.value else None

    @property
    def budgets(self) -> list[float]:
        """The budgets the controls describe."""
        low, high = self.budget_range.value
        return budget_grid(low, high, self.n_budgets.value)

    def current_spec(self) -> PlanSpec:
        """The :class:`~flops_fit.PlanSpec` the controls describe."""
        ranged = {} if self.spec.size_values is not None else {"size_range": self.size_range}
        adaptive = self.strategy.value == "adaptive"
        loop = {"strategy": self.strategy.value, "target_precision": self.target_precision.value,
                "max_compute": self.compute_cap.value * self._fixed_compute(self.points.value, self.budgets)
                if adaptive else self.spec.max_compute}
        return PlanSpec.from_options(self.spec, {"points_per_budget": self.points.value,
                                                 "size_span": self.size_span.value,
                                                 "tokens_per_param": self.tokens_per_param.value, **ranged, **loop},
                                     "SweepDesigner")

    @staticmethod
    def _fixed_compute(points: int, budgets: Sequence[float]) -> float:
        """What the fixed design spends: every size at every budget, each run its budget."""
        return float(points * sum(budgets))

    def replan(self) -> None:
        """Plan again from the controls (called whenever one changes)."""
        data = training_facts(self.dataset, self.mode.value, self.run_options.get("train_config"))
        try:
            self.plan = plan_sweep(self.model_cls, self.model_size_param, self.budgets, spec=self.current_spec(),
                                   **data)
            self.error = None
        except (ValueError, TypeError) as exc:  # a budget no size can serve, a factory that rejects a knob...
            self.plan, self.error = None, str(exc)
        self._show_plan()
        self._show_monitor()

    def _plan_key(self) -> tuple[Any, ...] | None:
        """What decides whether a sweep ran this plan: the mode, the spec and the runs."""
        return None if self.plan is None else (self.mode.value, repr(self.current_spec()),
                                               tuple(self.plan["run_id"]))

    def _show_monitor(self) -> None:
        """The monitor, under an "outdated" banner once the controls describe another plan than it ran."""
        if self.monitor is not None and self.monitor_box.children != (self.starting,):
            stale = self._plan_key() != self._ran
            self.monitor_box.children = [self.outdated, self.monitor.widget] if stale else [self.monitor.widget]

    @property
    def running(self) -> bool:
        """Whether a sweep started here is still running (or drawing its last state)."""
        return self.monitor is not None and not self.monitor.done

    def _show_plan(self, running: bool | None = None) -> None:
        running = self.running if running is None else running
        self.run_button.disabled = self.plan is None or running
        if self.plan is None:
            self.summary.value = f"<div style='{_ERROR}'>No plan: {escape(self.error or '')}</div>"
            self.table.value = ""
            return
        mode = self.mode.value
        measured = self._measured.get(mode)
        rate = (measured[1] if measured else self._throughput()) if mode == "local" else None
        info = plan_summary(self.plan, mode, rate)
        if mode == "mock":
            info["seconds"] = len(self.plan) * (measured[1] if measured else info["seconds"] / len(self.plan) + self.pace)
        how = "simulated" if mode == "mock" else f"at {rate:.3g} FLOP/s"
        how += ", as the last sweep's runs went" if measured else ""
        adaptive = self.strategy.value == "adaptive"
        for control in (self.target_precision, self.compute_cap):
            control.disabled = not adaptive
        if not adaptive:
            self.summary.value = (f"<b>{info['runs']} runs</b> over {info['budgets']} budgets, total "
                                  f"<b>{info['total_flops']:.3g} FLOPs</b>; estimated time "
                                  f"<b>{duration(info['seconds'])}</b> ({how})")
        else:
            fixed = self._fixed_compute(self.points.value, self.budgets)
            cap = float(self.current_spec().max_compute or fixed)
            seconds = (lambda flops: duration(flops / rate) if rate else
                       "seconds" if mode == "mock" else "unknown")
            self.summary.value = (
                f"<b>adaptive</b>: a start design of <b>{info['runs']} runs</b> ({info['total_flops']:.3g} FLOPs, "
                f"{seconds(info['total_flops'])}), then batches chosen from the results until N_opt at 100x the "
                f"largest budget is within +-{self.target_precision.value:.0%}: at most <b>{cap:.3g} FLOPs</b> "
                f"({seconds(cap)}).<br>The fixed design ({self.points.value} sizes a budget) would spend "
                f"{fixed:.3g} FLOPs ({seconds(fixed)}); to reach the fixed design's precision the adaptive one "
                "spent a median 0.45x of it in benchmarks/bench_adaptive.py.")
        self.table.value = plan_table(self.plan).to_html(index=False, border=0)

    def _throughput(self) -> float:
        if self._flops_per_second is None:  # measured once, when local mode is first chosen
            self._flops_per_second = 0.3 * peak_flops(pick_device())
        return self._flops_per_second

    def run(self) -> SweepMonitor:
        """Start the planned sweep in the background and show it live below the controls."""
        if self.plan is None:
            raise ValueError(f"SweepDesigner.run: there is no plan to run: {self.error}")
        if self.running:
            raise RuntimeError("SweepDesigner.run: a sweep is still running; stop it or wait for it first")
        self.run_button.disabled = True  # first, with "starting…": the click shows before anything slow
        self.monitor_box.children = [self.starting]
        if self.monitor is not None:  # the last sweep's widgets: closed, or every re-run leaks them
            self.monitor.close()
            self.monitor = None
        mode = self.mode.value
        extra = {"law": self.law, "seed": self.seed, "pace": self.pace} if mode == "mock" else {}
        shown = threading.Event()  # the sweep's first run waits until its monitor is on screen, to be seen

        def gate(event: dict[str, Any]) -> None:
            if event["type"] == "sweep_start":
                shown.wait(60)

        options = {**self.run_options, "callbacks": [gate, *self.run_options.get("callbacks", ())]}
        try:
            monitor = SweepMonitor.start(
                self.plan, self.model_cls, self.dataset, self.loss_fn, mode=mode,
                model_size_param=self.model_size_param, model_kwargs=self.spec.model_kwargs,
                spec=self.current_spec(), extrapolate_to=self.extrapolate_to, **extra, **options)
        except Exception:
            self.monitor_box.children = []
            self.run_button.disabled = self.plan is None
            raise
        finally:
            shown.set()
        self.monitor, self._ran = monitor, self._plan_key()
        self.monitor_box.children = [monitor.widget]
        monitor.add_done_callback(self._finished)
        return monitor

    def _finished(self, monitor: SweepMonitor) -> None:
        if monitor is not self.monitor:  # an older sweep's late callback
            return
        rate = measured_rate(monitor.handle.results())
        if rate is not None and self._ran is not None:  # the estimate from now on: what these runs measured
            self._measured[self._ran[0]] = rate
        if self.plan is not None:
            self._show_plan(running=False)
        self.run_button.disabled = self.plan is None

    def _clicked(self, _: Any) -> None:
        """The Run button: errors go where the user is looking, not to the log console."""
        try:
            self.run()
        except Exception as exc:  # a store made another way, a dataset that cannot be read...
            logger.exception("SweepDesigner could not start the sweep")
            self.summary.value += (f"<div style='{_ERROR}'>Could not start the sweep: "
                                   f"{escape(f'{type(exc).__name__}: {exc}')}</div>")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
