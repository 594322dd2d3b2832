"""LiveFigure: a plotly FigureWidget that redraws cheaply and whose saved state always holds what it shows.

plotly's FigureWidget (plotly 6+, an anywidget) syncs its traces and layout as widget
state only when it is built; every later change travels as a one-off message that
open views apply and forget. A view opened afterwards (a page reload, Voila, saved
widget state) therefore shows the figure as first built. After each change LiveFigure
also assigns the figure's current traces and layout to that state, so any later view
starts from the full figure.

A redraw is cheap: it takes the traces as plain dicts (``trace.to_plotly_json()`` form),
compares each with what that trace was last drawn from, and sends only the properties
that changed, for all traces at once, in one update message, without plotly building and
validating trace objects. Only the traces that changed are copied into the saved state.

Its widget is plotly's FigureWidget with one change, in how its code reaches the page. anywidget (0.11) waits up
to 2 s for a model's code to load and then drops every message the kernel sends that model, for good
("[anywidget] Failed to initialize model."; it waits so that early messages are not lost, manzt/anywidget#803).
plotly's code is a 4.9 MB module that each FigureWidget model loads on its own; three of them at once on a busy
machine take longer than that, and such a figure stays empty: its data and layout travel as messages after it is
opened. Here each figure's module is a few lines that return at once; plotly's module is sent to the page once
per kernel (:class:`PlotlyCode`, a model every figure names), loaded once per page when a figure is first drawn,
and shared by every figure.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import traitlets

from .. import _deps
from ._deps import figure_widget, widgets

# what a person sets by zooming and panning: kept when a redraw does not set it itself
VIEW_STATE = frozenset({"range", "autorange", "dragmode"})


# A LiveFigure's module: plotly's figure code comes from the PlotlyCode model the figure names ("_plotly_code"),
# imported once per page (per plotly build) when the first figure is drawn, then shared. initialize returns at
# once, so anywidget never gives up on the model; plotly's own model code starts as soon as the module is loaded.
_ESM = """
const LOADED = Symbol.for("flops_fit.plotly");  // plotly's module by build, for every figure on the page

async function holder(model) {
  // restoring a page, a figure can be set up a moment before the model that holds plotly's code is registered
  const id = model.get("_plotly_code");
  for (let tries = 0; ; tries++) {
    try {
      return await model.widget_manager.get_model(id);
    } catch (error) {
      if (tries >= 200) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

async function settled(manager) {
  // Importing plotly's module holds the page's only thread for a second or more on a busy machine; any widget
  // model whose own code is still loading then misses anywidget's 2 s limit. So first let every model the
  // page knows of be set up, and the code loads they started finish (each a few quick steps).
  for (let known = -1; ; ) {
    const models = Object.values(manager._models || {});
    if (models.length === known) break;
    known = models.length;
    await Promise.allSettled(models);
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

function plotly(model) {
  const loaded = (globalThis[LOADED] ??= new Map());
  return holder(model).then(async (code) => {
    const build = code.get("build");
    if (!loaded.has(build)) {
      const module = settled(model.widget_manager).then(() => {
        const url = URL.createObjectURL(new Blob([code.get("source")], { type: "text/javascript" }));
        return import(url).finally(() => URL.revokeObjectURL(url));
      });
      module.catch(() => loaded.delete(build));  // a later figure tries again
      loaded.set(build, module);
    }
    return loaded.get(build);
  });
}

export default () => {
  let figure;  // plotly's widget for this model ({initialize, render}), once its module is loaded
  let initialize;  // the model proxy anywidget gave initialize (its listeners are the model's, not a view's)
  const load = () => (figure ??= plotly(initialize).then(async (module) => {
    const widget = module.default();
    await widget.initialize({ model: initialize });
    return widget;
  }));
  return {
    initialize({ model }) {
      initialize = model;
      if (globalThis[LOADED]?.size) load();  // plotly is on the page already: follow the kernel's edits now
    },
    async render({ model, el }) {
      const widget = await load();
      return widget.render({ model, el });
    },
  };
};
"""


@functools.cache
def _widget_classes() -> tuple[type, type]:
    """``(PlotlyCode, FigureWidget)``: the model that holds plotly's figure code, and plotly's FigureWidget loading
    its code from one (made on first use: plotly and the widget packages are optional)."""
    base, W = figure_widget("LiveFigure"), widgets("LiveFigure")

    class PlotlyCode(W.Widget):
        """plotly's figure code (its FigureWidget module), sent to the page once for every LiveFigure of a kernel."""

        source = traitlets.Unicode().tag(sync=True)
        build = traitlets.Unicode().tag(sync=True)  # which plotly build: a page loads each build once

    class FigureWidget(base):
        _esm = _ESM
        _plotly_code = traitlets.Unicode().tag(sync=True)  # the PlotlyCode model's id

        @traitlets.default("_plotly_code")
        def _code_model(self) -> str:
            return plotly_code().model_id

        # After each edit a view reports every property its drawing differs in from the model's copy on the page
        # (plotly's defaults, mostly); plotly keeps them as defaults and deletes them from the figure's own traces
        # and layout (and from the page's copy). Once a view reported a property the kernel had set (a star
        # trace's 'star' symbol): the kernel's trace lost it, its saved copy too, and a reloaded page drew that
        # star as a run marker (28 points for 27 runs). Defaults are never read here: a report only ends an edit.
        _handler_js2py_traceDeltas = _handler_js2py_layoutDelta = None  # plotly's handlers, not registered

        @traitlets.observe("_js2py_traceDeltas", "_js2py_layoutDelta")
        def _view_reported(self, change: dict[str, Any]) -> None:
            report, trace = change["new"], change["name"] == "_js2py_traceDeltas"
            if not report:
                return
            if trace and report.get("trace_edit_id") == self._last_trace_edit_id:  # the latest edit, as plotly
                self._trace_edit_in_process = False
            elif not trace and report.get("layout_edit_id") == self._last_layout_edit_id:
                self._layout_edit_in_process = False
            while not (self._trace_edit_in_process or self._layout_edit_in_process) and self._waiting_edit_callbacks:
                self._waiting_edit_callbacks.pop()()  # plotly's on_edits_completed callbacks
            setattr(self, change["name"], None)

    return PlotlyCode, FigureWidget


_code: Any = None
_code_lock = threading.Lock()


def plotly_code() -> Any:
    """The kernel's :class:`PlotlyCode` model (made again if it was closed, e.g. by ``Widget.close_all()``)."""
    global _code
    with _code_lock:
        if _code is None or _code.comm is None:
            source = str(figure_widget("LiveFigure")._esm)
            build = hashlib.sha1(source.encode()).hexdigest()[:16]
            _code = _widget_classes()[0](source=source, build=build)
        return _code


_preloading: threading.Thread | None = None


def preload() -> None:
    """Import plotly's FigureWidget in a background thread, once per kernel, and build a first figure: the
    first time, plotly also loads nbformat and its schema validator, seconds that the first :class:`LiveFigure`
    would otherwise spend after the user pressed Run. Nothing is shown or kept; an import error is left for the
    first LiveFigure to report. A LiveFigure made meanwhile waits for the import (Python's import lock)."""
    global _preloading
    if _preloading is not None or "plotly.basewidget" in sys.modules:
        return

    def load() -> None:
        try:
            figure_widget("LiveFigure")
            go, _ = _deps.plotly()
            go.Figure(go.Scatter(x=[1.0], y=[1.0]), layout={"template": "plotly_white"})  # trace and layout code
        except Exception:  # noqa: BLE001 - reported by the first LiveFigure, where the user looks
            pass

    _preloading = threading.Thread(target=load, name="flops_fit-preload", daemon=True)
    _preloading.start()


def _same(old: Any, new: Any) -> bool:
    """Whether two property values draw the same (arrays compare by content, shape and all)."""
    if old is new:
        return True
    if isinstance(old, np.ndarray) or isinstance(new, np.ndarray):
        try:
            return np.asarray(old).shape == np.asarray(new).shape and bool(np.array_equal(old, new))
        except (TypeError, ValueError):
            return False
    try:
        return bool(old == new)
    except (TypeError, ValueError):  # containers holding arrays
        return False


def layout_changes(current: dict[str, Any], new: dict[str, Any], prefix: str = "",
                   keep: frozenset[str] = VIEW_STATE) -> dict[str, Any]:
    """The relayout (dotted paths) that turns layout ``current`` into ``new``: only what changed travels
    (not the template on every redraw), what ``new`` lacks is cleared (a relayout leaves what it does not
    mention), and a zoom the user made (the keys in ``keep``) survives. Traces diff the same way (nothing kept).

    >>> layout_changes({"title": {"text": "a"}, "xaxis": {"range": [0, 1], "type": "log"}},
    ...                {"title": {"text": "b"}, "xaxis": {"type": "log"}, "height": 300})
    {'height': 300, 'title.text': 'b'}
    """
    changes: dict[str, Any] = {}
    for key in sorted(set(current) | set(new)):
        path, old = f"{prefix}{key}", current.get(key)
        if key not in new:
            if key not in keep and old is not None:
                changes[path] = None
            continue
        value = new[key]
        if isinstance(old, dict) and isinstance(value, dict):
            changes.update(layout_changes(old, value, f"{path}.", keep))
        elif not _same(old, value):
            changes[path] = _detach(value)
    return changes


def _plain(trace: Mapping[str, Any]) -> dict[str, Any]:
    """A trace's properties as given, without the ``uid`` the widget adds to align its views."""
    return {key: value for key, value in trace.items() if key != "uid"}


def _detach(value: Any) -> Any:
    """A copy of the dicts and lists, which plotly edits in place; arrays, strings and numbers, which it only
    ever replaces, are shared."""
    if isinstance(value, dict):
        return {key: _detach(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_detach(item) for item in value]
    return value


class LiveFigure:
    """Holds one ``plotly.graph_objects.FigureWidget`` (``.widget``) and redraws it cheaply.

    :meth:`update` takes plain trace dicts and the layout's changes (what
    :mod:`flops_fit.live`'s ``*_update`` functions give); :meth:`show` takes a whole
    ``plotly.graph_objects.Figure``. Either way only what changed since the last redraw is
    sent, in one message; the traces are restyled in place while their number and kinds
    stay (no flicker while curves stream) and replaced otherwise. Safe to call from a
    background thread.
    """

    def __init__(self, fig: Any = None, *, height: int | None = None, highlight: float | None = None) -> None:
        self.widget = widget = _widget_classes()[1](fig)
        # as wide as its container: no width of its own, and plotly's "responsive" redraw when the page (or a
        # PageWatch beside it) says the size changed; anywidget views are drawn before they are on the page,
        # where plotly would otherwise settle on its default 700 px
        widget._config = {**widget._config, "responsive": True}
        widget.layout.autosize = True
        if height is not None:
            widget.layout.height = height
        self._height = height
        self._lock = threading.RLock()
        self._drawn = [_plain(_detach(trace)) for trace in widget._data]  # what each trace was drawn from
        self._source = list(self._drawn)  # the traces as last given, before a theme's colours
        self._colours: Callable[[str], str] | None = None  # a theme's colours (black to grey on a dark page...)
        self._template: Mapping[str, Any] | None = None  # a theme's template, kept through show()
        self._highlight, self._highlighted = highlight, None  # hovered trace's line width, and which it is
        self._state: list[dict[str, Any]] = []  # the traces as saved in the widget's state
        self._from_views: set[int] = set()  # traces a view restyled (a legend click): saved again at the next redraw
        widget.observe(self._view_restyled, names=["_js2py_restyle", "_js2py_update"])
        if highlight is not None:
            widget.observe(self._hovered, names="_js2py_pointsCallback")
        self._persist()

    def _view_restyled(self, change: dict[str, Any]) -> None:
        message = change["new"]
        if message:
            traces = message.get("style_traces")
            self._from_views.update(range(len(self._state)) if traces is None else
                                    [traces] if isinstance(traces, int) else traces)

    def _hovered(self, change: dict[str, Any]) -> None:
        message = change["new"]
        if message and message.get("event_type") in ("plotly_hover", "plotly_unhover"):
            traces = (message.get("points") or {}).get("trace_indexes") or []
            self.highlight(traces[0] if message["event_type"] == "plotly_hover" and traces else None)

    def highlight(self, index: int | None) -> None:
        """Draw trace ``index`` with the thicker line given as ``highlight`` (None: every trace as drawn); a view
        calls it as the pointer moves onto and off a trace. Two traces' line widths travel, nothing else."""
        with self._lock:
            if index == self._highlighted or self._highlight is None:
                return
            edits = {}
            for i, wide in ((self._highlighted, False), (index, True)):
                if i is not None and 0 <= i < min(len(self._drawn), len(self._source)):
                    width = self._highlight if wide else (self._source[i].get("line") or {}).get("width", 2)
                    edits[i] = {"line.width": width}
                    self._drawn[i] = {**self._drawn[i], "line": {**(self._drawn[i].get("line") or {}), "width": width}}
            self._highlighted = index
            with self.widget.batch_update():  # not saved in the widget's state: a passing pointer is no data
                for i, edit in edits.items():
                    self.widget._batch_trace_edits[i] = edit

    def theme(self, template: Mapping[str, Any], colours: Callable[[str], str] | None = None) -> None:
        """Draw with ``template`` (a layout's ``template`` value) and each trace colour passed through ``colours``
        (:func:`~flops_fit.visualizer.theme.on_dark` on a dark page), from now on, redraws and :meth:`show`
        included."""
        with self._lock:
            self._template, self._colours = template, colours
            self.update(self._source, {"template": _detach(template)})

    def _recolour(self, trace: dict[str, Any]) -> dict[str, Any]:
        """``trace`` with the theme's colours applied to its marker, line and text colours (one or one per
        point)."""
        swap = self._colours
        if swap is None:
            return trace
        out = trace
        for part in ("marker", "line", "textfont"):
            value = trace.get(part)
            colour = value.get("color") if isinstance(value, dict) else None
            if isinstance(colour, str):
                new = swap(colour)
            elif isinstance(colour, (list, tuple)) and all(isinstance(c, str) for c in colour):
                new = [swap(c) for c in colour]
            else:
                continue
            if new != colour:
                out = dict(out) if out is trace else out
                out[part] = {**value, "color": new}
        return out

    def show(self, fig: Any) -> None:
        """Redraw as ``fig`` (a ``plotly.graph_objects.Figure``), in open views and in the saved state."""
        layout = fig.layout.to_plotly_json()
        layout.pop("width", None)
        layout["autosize"] = True
        if self._height is not None:
            layout["height"] = self._height
        if self._template is not None:
            layout["template"] = _detach(self._template)
        with self._lock:
            self.update([trace.to_plotly_json() for trace in fig.data], layout_changes(self.widget._layout, layout))

    def update(self, data: Sequence[Mapping[str, Any]], layout: Mapping[str, Any] | None = None) -> None:
        """Redraw from plain data, in open views and in the saved state.

        Parameters
        ----------
        data : sequence of dict
            Every trace, as ``trace.to_plotly_json()`` gives it (``"type"`` defaults to scatter). Only
            the properties that differ from the trace's previous dict are sent; a property the new
            dict lacks is cleared.
        layout : dict, optional
            Layout changes as dotted paths (``{"title.text": "..."}``), as plotly's relayout takes them;
            only those that change the layout are sent.
        """
        relayout = dict(layout or {})
        with self._lock:
            widget = self.widget
            self._source = [_plain(trace) for trace in data]
            given = [self._recolour(trace) for trace in self._source]  # a new list: _source stays as given
            replace = [t.get("type", "scatter") for t in given] != [t.get("type", "scatter") for t in self._drawn]
            if replace or (self._highlighted or 0) >= len(given):
                self._highlighted = None
            elif self._highlighted is not None:  # the hovered trace stays thick through redraws
                i = self._highlighted
                given[i] = {**given[i], "line": {**(given[i].get("line") or {}), "width": self._highlight}}
            if replace:
                widget.data = ()  # other traces: replace them all (plotly validates the new ones)
                widget.add_traces([_detach(trace) for trace in given])
                if relayout:
                    widget.plotly_relayout(relayout)
                self._drawn = given
                self._persist()
                return
            changes = {i: diff for i, (old, new) in enumerate(zip(self._drawn, given))
                       if (diff := layout_changes(old, new, keep=frozenset()))}
            if changes or relayout:
                # record the edits as plotly's own property setters do inside a batch (without building and
                # validating trace objects); leaving the batch sends them as one update message
                with widget.batch_update():
                    for i, diff in changes.items():
                        widget._batch_trace_edits[i] = diff
                    widget._batch_layout_edits.update(relayout)
            for i in changes:
                self._drawn[i] = given[i]
            self._persist(changes)

    def _persist(self, changed: Mapping[int, Any] | None = None) -> None:
        """Put the current traces and layout into the widget's synced state (what a new view is built from):
        copies of the traces in ``changed`` (all when None), the others as saved before."""
        widget = self.widget
        if not hasattr(widget, "_widget_data"):  # plotly >= 6 (anywidget); plotly 5 kept no such state
            return
        current = widget._data
        if changed is None or len(self._state) != len(current):
            self._state = [_detach(trace) for trace in current]
            self._from_views.clear()
        elif changed or self._from_views:
            fresh, self._from_views = {*changed, *self._from_views}, set()
            self._state = [_detach(current[i]) if i in fresh else saved for i, saved in enumerate(self._state)]
        widget._widget_data = list(self._state)  # a new list: the traits see a change and sync it
        try:
            same = widget._layout == widget._widget_layout
        except ValueError:  # arrays in the layout
            same = False
        if not same:
            widget._widget_layout = _detach(widget._layout)

    def state_points(self) -> int:
        """How many data points the synced state holds: what a freshly opened view would draw."""
        data = getattr(self.widget, "_widget_data", None) or []
        return sum(len(trace["x"]) for trace in data if trace.get("x") is not None)
