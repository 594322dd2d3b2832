"""plotly's FigureWidget as a LiveFigure draws it: plotly's code sent to the page once, views' reports ignored.

Its widget is plotly's FigureWidget with one change, in how its code reaches the page. anywidget (0.11) waits up
to 2 s for a model's code to load and then drops every message the kernel sends that model, for good
("[anywidget] Failed to initialize model."; it waits so that early messages are not lost, manzt/anywidget#803).
plotly's code is a 4.9 MB module that each FigureWidget model loads on its own; three of them at once on a busy
machine take longer than that, and such a figure stays empty: its data and layout travel as messages after it is
opened. Here each figure's module is a few lines that return at once; plotly's module is sent to the page once
per kernel (:class:`PlotlyCode`, a model every figure names), loaded once per page when a figure is first drawn,
and shared by every figure.

After each edit plotly's views also report what their drawing differs in; plotly's own handlers would delete
those properties from the kernel's figure (see ``FigureWidget`` below), so here a report only ends an edit.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import threading
from typing import Any

import traitlets

from .. import _deps
from ._deps import figure_widget, widgets

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


def widget_class() -> type:
    """plotly's FigureWidget as :class:`~flops_fit.widgets.figure.LiveFigure` builds it."""
    return _widget_classes()[1]
