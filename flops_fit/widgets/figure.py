"""LiveFigure: a plotly FigureWidget whose saved state always holds what it shows.

plotly's FigureWidget (plotly 6+, an anywidget) syncs its traces and layout as widget
state only when it is built; every later change travels as a one-off message that
open views apply and forget. A view opened afterwards (a page reload, Voila, saved
widget state) therefore shows the figure as first built. After each change LiveFigure
also assigns the figure's current traces and layout to that state, so any later view
starts from the full figure.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from ._deps import figure_widget


# what a person sets by zooming and panning: kept when a redraw does not set it itself
VIEW_STATE = frozenset({"range", "autorange", "dragmode"})


def layout_changes(current: dict[str, Any], new: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The relayout (dotted paths) that turns layout ``current`` into ``new``: only what changed travels
    (not the template on every redraw), what ``new`` lacks is cleared (a relayout leaves what it does not
    mention), and a zoom the user made survives.

    >>> layout_changes({"title": {"text": "a"}, "xaxis": {"range": [0, 1], "type": "log"}},
    ...                {"title": {"text": "b"}, "xaxis": {"type": "log"}, "height": 300})
    {'height': 300, 'title.text': 'b'}
    """
    changes: dict[str, Any] = {}
    for key in sorted(set(current) | set(new)):
        path, old = f"{prefix}{key}", current.get(key)
        if key not in new:
            if key not in VIEW_STATE:
                changes[path] = None
            continue
        value = new[key]
        try:
            if old == value:
                continue
        except ValueError:  # arrays compare element-wise: treat as changed
            pass
        if isinstance(old, dict) and isinstance(value, dict):
            changes.update(layout_changes(old, value, f"{path}."))
        else:
            changes[path] = value
    return changes


class LiveFigure:
    """Holds one ``plotly.graph_objects.FigureWidget`` (``.widget``) and redraws it from whole figures.

    ``show(fig)`` makes the widget look like ``fig``: traces are restyled in place when
    their number and kinds are unchanged (no flicker while curves stream) and replaced
    otherwise. Safe to call from a background thread.
    """

    def __init__(self, fig: Any = None, *, height: int | None = None) -> None:
        self.widget = figure_widget("LiveFigure")(fig)
        if height is not None:
            self.widget.layout.height = height
        self._height = height
        self._lock = threading.Lock()
        self._persist()

    def show(self, fig: Any) -> None:
        """Redraw as ``fig`` (a ``plotly.graph_objects.Figure``), in open views and in the saved state."""
        layout = fig.layout.to_plotly_json()
        if self._height is not None:
            layout["height"] = self._height
        with self._lock:
            widget = self.widget
            relayout = layout_changes(widget._layout, layout)
            if [t.type for t in widget.data] == [t.type for t in fig.data]:
                with widget.batch_update():
                    for trace, new in zip(widget.data, fig.data):
                        trace.update(new.to_plotly_json(), overwrite=True)
                    if relayout:
                        widget.plotly_relayout(relayout)
            else:
                widget.data = ()
                widget.add_traces(list(fig.data))
                if relayout:
                    widget.plotly_relayout(relayout)
            self._persist()

    def _persist(self) -> None:
        """Put the current traces and layout into the widget's synced state (what a new view is built from)."""
        widget = self.widget
        if hasattr(widget, "_widget_data"):  # plotly >= 6 (anywidget); plotly 5 kept no such state
            widget._widget_data = copy.deepcopy(widget._data)
            widget._widget_layout = copy.deepcopy(widget._layout)

    def state_points(self) -> int:
        """How many data points the synced state holds: what a freshly opened view would draw."""
        data = getattr(self.widget, "_widget_data", None) or []
        return sum(len(trace["x"]) for trace in data if trace.get("x") is not None)
