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

from ._deps import require_widgets


class LiveFigure:
    """Holds one ``plotly.graph_objects.FigureWidget`` (``.widget``) and redraws it from whole figures.

    ``show(fig)`` makes the widget look like ``fig``: traces are restyled in place when
    their number and kinds are unchanged (no flicker while curves stream) and replaced
    otherwise. Safe to call from a background thread.
    """

    def __init__(self, fig: Any = None, *, height: int | None = None) -> None:
        require_widgets("LiveFigure")
        import plotly.graph_objects as go

        self.widget = go.FigureWidget(fig)
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
            current = widget._layout
            # only what changed travels (not the template each time); what the new layout lacks is cleared,
            # since a relayout leaves keys it does not mention (a placeholder's note, say)
            relayout = {key: value for key, value in layout.items() if current.get(key) != value}
            relayout.update({key: None for key in set(current) - set(layout)})
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
