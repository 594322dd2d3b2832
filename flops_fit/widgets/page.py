"""PageWatch: what the page a dashboard is drawn in tells the kernel, its width and JupyterLab's theme.

plotly's FigureWidget (plotly 6+, an anywidget) is drawn before its view is on the page, where it
cannot measure its container, so it settles on plotly's default 700 px and never resizes
(plotly/plotly.py#5208). A PageWatch is an invisible widget placed in the dashboard: its view
watches its own width (a ResizeObserver: it changes when the dashboard is put on the page and when
the cell is resized) and asks plotly's ``responsive`` figures to fit their containers again, the
window ``resize`` event plotly listens to; it does so again when a figure beside it has been drawn.
It also reports JupyterLab's light or dark theme (``data-jp-theme-light`` on the page's body), and
follows it when the user switches, so the kernel can draw the figures to match.

Importing this module without anywidget raises an ImportError that says what to install.
"""

from __future__ import annotations

import traitlets

from ._deps import any_widget

_ESM = """
function isDark() {
  const flag = document.body.dataset.jpThemeLight;
  if (flag !== undefined) return flag === "false";
  const colour = getComputedStyle(document.body).getPropertyValue("--jp-layout-color0").trim();
  const rgb = colour.match(/[0-9a-f]{2}/gi);  // #rrggbb
  if (!colour.startsWith("#") || !rgb || rgb.length < 3) return false;
  const [r, g, b] = rgb.slice(0, 3).map((h) => parseInt(h, 16));
  return 0.299 * r + 0.587 * g + 0.114 * b < 128;
}

function render({ model, el }) {
  el.classList.add("flops-fit-page-watch");
  el.style.height = "0";
  el.style.overflow = "hidden";
  let frame = 0;
  const refit = () => {  // at most once a frame
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      const width = Math.round(el.getBoundingClientRect().width);
      if (!el.isConnected || width <= 0) return;
      window.dispatchEvent(new Event("resize"));  // plotly's responsive figures fit their containers again
      if (model.get("width") !== width) {
        model.set("width", width);
        model.save_changes();
      }
    });
  };
  const sized = new ResizeObserver(refit);
  sized.observe(el);
  const drawn = (event) => {  // a figure of this dashboard drawn after the dashboard was put on the page
    const root = el.parentElement;
    if (root && event.detail && root.contains(event.detail.element)) refit();
  };
  document.addEventListener("plotlywidget-after-render", drawn);
  const theme = () => {
    const value = isDark() ? "dark" : "light";
    if (model.get("theme") !== value) {
      model.set("theme", value);
      model.save_changes();
    }
  };
  theme();
  const switched = new MutationObserver(theme);
  switched.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"] });
  return () => {
    sized.disconnect();
    switched.disconnect();
    document.removeEventListener("plotlywidget-after-render", drawn);
    if (frame) cancelAnimationFrame(frame);
  };
}

export default { render };
"""


class PageWatch(any_widget("SweepMonitor")):  # type: ignore[misc]
    """An invisible widget that keeps plotly figures beside it as wide as their containers and reports the page.

    Attributes
    ----------
    width : int
        The width in pixels its view last measured (0 before a view is on a page).
    theme : {"light", "dark"}
        JupyterLab's theme, as the view last read it ("light" before a view has).
    """

    _esm = _ESM
    width = traitlets.Int(0).tag(sync=True)
    theme = traitlets.Unicode("light").tag(sync=True)
