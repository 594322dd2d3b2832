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

Its widget is plotly's FigureWidget loading plotly's code once per page (:mod:`.plotly_widget`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import traitlets

from .plotly_widget import widget_class

# what a person sets by zooming and panning: kept when a redraw does not set it itself
VIEW_STATE = frozenset({"range", "autorange", "dragmode"})


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
        self.widget = widget = widget_class()(fig)
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
