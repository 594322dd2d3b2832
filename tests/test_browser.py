"""The interactive app as a person sees it: JupyterLab in headless Chromium, driven by Playwright.

One JupyterLab server and one page serve every check here, in order (module-scoped fixtures):

1. Open notebook 06's app (its first cells, up to "Driving the app from code"; the rest, real
   training included, runs under ``--nbmake``) with a second, paced app appended, run its cells
   and press **Run sweep**: the IsoFLOP plot gains all 45 points and the runs table fills in.
2. The paced app's points arrive run by run, and another cell runs before its sweep ends;
   screenshots of the dashboard while it runs and when it is done.
3. Every figure is as wide as its container on first render (before any reload), and the
   dashboard as wide as its cell.
4. No star (a located minimum) is drawn for a budget the monitor's notes call unlocated, nor
   beside the hollow edge marker of a minimum not located, nor outside the sizes run.
5. Three re-runs of the sweep and a reload leave no console error or page error; after the reload the paced
   app draws exactly its 27 run markers (it once drew 28: a star that had lost its symbol in the kernel).
6. With the notebook saved and its kernel shut down, a reopened page draws the saved state.

Needs a Chromium (``/usr/bin/chromium``, or ``FLOPS_FIT_CHROMIUM``); Playwright never
downloads one. Skipped without it, unless ``FLOPS_FIT_REQUIRE_BROWSER=1`` (CI sets it).
Screenshots go to ``FLOPS_FIT_ARTIFACTS`` (default: a temporary directory of the test run);
with ``FLOPS_FIT_UPDATE_SCREENSHOTS=1`` the dashboard's are also copied to
``benchmarks/screenshots/`` (where the README shows them).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_interactive_app.ipynb"
SCREENSHOTS = ROOT / "benchmarks" / "screenshots"
CHROMIUM = os.environ.get("FLOPS_FIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}
TOKEN = "flops-fit-test"
TOLERANCE_PX = 4  # a figure's width against its container's

# a cell the test appends to its copy of the notebook: an app whose mock runs take 0.5 s each, so that points
# can be seen arriving one by one (and a screenshot taken part way)
PACED_CELL = """paced = SweepDesigner(GPT, "d_model", model_kwargs={"n_layer": 4}, n_budgets=3, points_per_budget=9,
                      pace=0.5)
paced.widget.add_class("flops-fit-paced")
paced"""

# What the first monitor under a selector shows, read in one go (so the figure and the notes are read at the
# same moment). The IsoFLOP plot is the one with star traces; per budget (its legend group, "1.00e+17 FLOPs"):
# the run markers' x (not the stars, nor the hollow markers of runs not yet run, nor the hollow edge marker
# of a minimum not located), the stars' x and the edge markers' count. ``unlocated``: the budgets the notes
# name ("Budget 1.00e+17: minimum lies right of ...", "Budget 1.00e+17, 1.00e+19: its curve is fitted once ...");
# notes and legends write budgets with the one formatter (flops_fit._format.flops), so the two compare.
STATE = r"""(selector) => {
  const root = document.querySelector(selector || '.flops-fit-designer');
  const monitor = root && root.querySelector('.flops-fit-monitor');
  if (!monitor) return null;
  const text = monitor.textContent;
  const table = monitor.querySelector('.flops-fit-runs');
  const state = {points: -1, completed: table ? (table.textContent.match(/completed/g) || []).length : -1,
                 done: /done: \d+ completed/.test(text), runs: {}, stars: {}, edges: {}, unlocated: [], id: null};
  for (const m of text.matchAll(/Budgets? ((?:[0-9.]+e[+-]?[0-9]+)(?:(?:, | and )[0-9.]+e[+-]?[0-9]+)*): /g))
    state.unlocated.push(...m[1].split(/, | and /));
  state.unlocated = [...new Set(state.unlocated)].sort();
  if (!monitor.dataset.flopsFitTest) monitor.dataset.flopsFitTest = String(Math.random());
  state.id = monitor.dataset.flopsFitTest;  // a new monitor (a re-run) is a new element
  const plot = [...monitor.querySelectorAll('.js-plotly-plot')]
    .find(p => (p.data || []).some(t => t.marker && t.marker.symbol === 'star'));
  if (!plot) return state;
  state.points = 0;
  for (const t of plot.data) {
    const budget = String(t.legendgroup || t.name || '').replace(/ FLOPs$/, '');
    const xs = t.x ? Array.from(t.x).map(Number) : [];
    const symbol = t.marker && t.marker.symbol;
    if (symbol === 'star') state.stars[budget] = (state.stars[budget] || []).concat(xs);
    else if (t.mode === 'markers+text' || String(t.hovertemplate || '').includes('not located'))
      state.edges[budget] = (state.edges[budget] || 0) + xs.length;
    else if (t.mode === 'markers' && symbol !== 'circle-open') {
      state.runs[budget] = (state.runs[budget] || []).concat(xs);
      state.points += xs.length;
    }
  }
  return state;
}"""

# Every trace of the first monitor's IsoFLOP plot under a selector, as the page holds it: for a failure report.
TRACES = r"""(selector) => {
  const root = document.querySelector(selector || '.flops-fit-designer');
  const monitor = root && root.querySelector('.flops-fit-monitor');
  const plot = monitor && [...monitor.querySelectorAll('.js-plotly-plot')]
    .find(p => (p.data || []).some(t => t.marker && t.marker.symbol === 'star'));
  if (!plot) return null;
  return plot.data.map((t, i) => ({i, group: t.legendgroup || t.name, mode: t.mode,
    symbol: t.marker ? t.marker.symbol : undefined, n: t.x ? t.x.length : 0,
    x: t.x ? Array.from(t.x).slice(0, 12).map(v => Number(Number(v).toPrecision(4))) : [],
    hover: String(t.hovertemplate || '').slice(0, 24)}));
}"""

# Each figure of the first monitor under a selector: the width of plotly's drawing (its .main-svg) and of its
# container (the figure widget's element, what the dashboard's layout gives it), and the dashboard's width
# against its output area's. null until every figure is drawn.
WIDTHS = r"""(selector) => {
  const root = document.querySelector(selector || '.flops-fit-designer');
  const monitor = root && root.querySelector('.flops-fit-monitor');
  if (!monitor) return null;
  const plots = [...monitor.querySelectorAll('.js-plotly-plot')];
  if (!plots.length || plots.some(p => !p.querySelector('.main-svg'))) return null;
  const width = e => Math.round(e.getBoundingClientRect().width * 10) / 10;
  const right = e => Math.round(e.getBoundingClientRect().right);
  const output = monitor.closest('.jp-OutputArea-output');
  return {
    monitor: width(monitor), output: output ? width(output) : null, monitor_right: right(monitor),
    figures: plots.map(p => {
      const title = p._fullLayout && p._fullLayout.title && p._fullLayout.title.text;
      return {title: String(title || '').slice(0, 40), svg: width(p.querySelector('.main-svg')),
              container: width(p.parentElement), svg_right: right(p.querySelector('.main-svg'))};
    }),
  };
}"""

# Diagnostics: what the page spends its time on. Counted from page load: window 'resize' events, plotly
# figures rendered, websocket messages and bytes each way (kernel -> page: widget updates; page -> kernel:
# e.g. the plotly views' layout and trace deltas) and long tasks; with Chrome's own Performance metrics.
PROBE = r"""(() => {
  const ff = window.__ff = {resize: 0, rendered: 0, received: 0, receivedBytes: 0, sent: 0, sentBytes: 0,
                            longTasks: 0, longMs: 0, longest: 0};
  window.addEventListener('resize', () => { ff.resize++; }, true);
  document.addEventListener('plotlywidget-after-render', () => { ff.rendered++; });
  const size = d => (typeof d === 'string' ? d.length : (d && (d.byteLength || d.size)) || 0);
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) { ff.sent++; ff.sentBytes += size(data); return send.call(this, data); };
  const Socket = window.WebSocket;
  window.WebSocket = class extends Socket {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', e => { ff.received++; ff.receivedBytes += size(e.data); });
    }
  };
  try {
    new PerformanceObserver(list => list.getEntries().forEach(e => {
      ff.longTasks++; ff.longMs += e.duration; ff.longest = Math.max(ff.longest, e.duration);
    })).observe({entryTypes: ['longtask']});
  } catch (e) {}
})()"""
PAGE_NOW = r"""() => {
  const all = document.querySelectorAll('*');
  const animations = document.getAnimations().map(a => (a.animationName || a.transitionProperty || a.constructor.name)
    + ' on ' + (a.effect && a.effect.target ? (a.effect.target.className.baseVal ?? a.effect.target.className) : '?'));
  const counts = {};
  for (const a of animations) counts[a] = (counts[a] || 0) + 1;
  const plots = [...document.querySelectorAll('.js-plotly-plot')].map(p => {
    const classes = {};
    for (const e of p.querySelectorAll('svg *')) {
      const c = e.tagName + '.' + String(e.className.baseVal ?? e.className).split(' ')[0];
      classes[c] = (classes[c] || 0) + 1;
    }
    return Object.entries(classes).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([c, n]) => c + ':' + n).join(' ');
  });
  const big = {};
  for (const e of all) {
    const key = e.tagName + '.' + String(e.className.baseVal ?? e.className).split(' ')[0];
    big[key] = (big[key] || 0) + 1;
  }
  return {top: Object.entries(big).sort((a, b) => b[1] - a[1]).slice(0, 12), perPlot: plots, elements: all.length, svg: document.querySelectorAll('svg *').length, plots: document.querySelectorAll(
    '.js-plotly-plot').length, animations: counts, busy: document.querySelector('#jp-main-statusbar')?.textContent};
}"""
METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration", "LayoutCount",
           "RecalcStyleCount", "JSHeapUsedSize", "Nodes")


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set FLOPS_FIT_CHROMIUM)"
    for module in ("playwright", "jupyterlab", "ipywidgets", "anywidget", "nbformat"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[dev]')"
    return None


def _notebook() -> Any:
    """Notebook 06 up to "Driving the app from code" (the app, and a cell to run while it runs), then the paced
    app. The rest (a second app driven from code, the adaptive comparison, real training) adds nothing seen
    only in a browser, and runs in the suite's ``--nbmake`` pass."""
    with warnings.catch_warnings():  # the notebook's cells have no ids; its copy here gets them
        warnings.simplefilter("ignore", nbformat.validator.MissingIDFieldWarning)
        notebook = nbformat.read(NOTEBOOK, as_version=4)
    cut = next(i for i, cell in enumerate(notebook.cells)
               if cell.cell_type == "markdown" and cell.source.startswith("## Driving"))
    notebook.cells = [*notebook.cells[:cut], nbformat.v4.new_code_cell(PACED_CELL)]
    notebook.nbformat_minor = max(notebook.nbformat_minor, 5)
    for i, cell in enumerate(notebook.cells):  # ids, as nbformat 4.5 wants them
        cell.setdefault("id", f"cell-{i}")
    return notebook


def _settings(home: Path) -> None:
    def write(plugin: str, values: dict[str, Any]) -> None:
        path = home / ".settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))

    write("@jupyterlab/apputils-extension/notification", {"fetchNews": "false"})
    # draw every cell, on screen or not: what is checked does not depend on scrolling
    write("@jupyterlab/notebook-extension/tracker", {"windowingMode": "none"})
    # saving a notebook also saves its widget state (JupyterLab's own setting); no autosave, so the notebook
    # holds widget state only once the test saves it
    write("@jupyter-widgets/jupyterlab-manager/plugin", {"saveState": True})
    write("@jupyterlab/docmanager-extension/plugin", {"autosave": False})


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    reason = _missing()
    if reason:
        if os.environ.get("FLOPS_FIT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser test is required here but cannot run: {reason}")
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("lab")
    nbformat.write(_notebook(), home / NOTEBOOK.name)
    _settings(home)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / ".config"), "JUPYTER_RUNTIME_DIR": str(home / ".run"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / ".settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / ".ws"),
           "PYTHONPATH": str(ROOT)}
    log = open(home / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={home}", "--LabApp.news_url="],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(home / 'server.log').read_text()[-3000:]}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", home
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


class Session:
    """The one page every check drives, what it logged, and what earlier checks found."""

    def __init__(self, page: Any, url: str, home: Path, shots: Path) -> None:
        self.page, self.url, self.home, self.shots = page, url, home, shots
        self.phase = "opening"
        self.events: list[tuple[str, str, str]] = []  # (phase, kind, text): console errors and page errors
        self.console: list[str] = []  # every console message, for failure reports
        self.widths: dict[str, dict[str, Any]] = {}  # which monitor -> its widths on first render
        self.samples: dict[str, list[dict[str, Any]]] = {}  # which monitor -> the states seen while it ran
        self.done: set[str] = set()  # the steps that finished
        self.started = time.monotonic()
        self.browser: Any = None
        self.cdp: Any = None  # a Chrome DevTools session, for Performance metrics
        self._probed: tuple[float, dict[str, float]] | None = None
        page.on("pageerror", lambda exc: self.events.append((self.phase, "pageerror", str(exc))))
        page.on("console", self._console)
        page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" on reload: yes

    def _console(self, msg: Any) -> None:
        self.console.append(f"{self.phase}: {msg.type}: {msg.text[:300]}")
        if msg.type == "error":
            self.events.append((self.phase, "console error", msg.text[:500]))

    def mark(self, what: str) -> None:
        """Print how long the session has taken so far (pytest -s shows where the time goes)."""
        print(f"[{time.monotonic() - self.started:6.1f} s] {what}", flush=True)

    def probe(self, what: str) -> None:
        """Print what the page did since the previous probe: its counters (PROBE) and Chrome's metrics."""
        try:
            counters = self.page.evaluate("() => window.__ff || {}")
            if os.environ.get("FLOPS_FIT_BROWSER_TRACE") == "1":
                print(f"[probe] {what}: now " + json.dumps(self.page.evaluate(PAGE_NOW)), flush=True)
            metrics = {m["name"]: m["value"] for m in self.cdp.send("Performance.getMetrics")["metrics"]}
        except Exception as exc:  # a diagnostic: never the failure itself
            print(f"probe failed: {exc!r}")
            return
        now, values = time.monotonic(), {**counters, **{k: metrics.get(k, 0) for k in METRICS}}
        if self._probed is not None:
            span, before = now - self._probed[0], self._probed[1]
            delta = {k: round(v - before.get(k, 0), 2) for k, v in values.items() if k not in ("longest", "Nodes",
                                                                                            "JSHeapUsedSize")}
            print(f"[probe] {what}: over {span:.1f} s: {delta}; longest task so far {values.get('longest', 0):.0f} ms, "
                  f"{values.get('Nodes', 0):.0f} nodes, heap {values.get('JSHeapUsedSize', 0) / 1e6:.0f} MB", flush=True)
        self._probed = (now, values)

    def trace(self, what: str, seconds: float) -> None:
        """Record a Chrome trace for ``seconds`` and print where the page's main thread spent its time (self time
        by event, and by the script a function call ran)."""
        if os.environ.get("FLOPS_FIT_BROWSER_TRACE") != "1":
            return
        path = self.shots / "trace.json"
        try:
            self.browser.start_tracing(page=self.page, path=str(path), categories=[
                "devtools.timeline", "disabled-by-default-devtools.timeline", "v8", "blink.user_timing"])
            time.sleep(seconds)
            self.browser.stop_tracing()
            print(f"[trace] {what}: {_trace_summary(json.loads(path.read_text()))}", flush=True)
        except Exception as exc:  # a diagnostic: never the failure itself
            print(f"trace failed: {exc!r}")

    def need(self, *steps: str) -> None:
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.skip(f"needs the earlier step(s) {missing}, which did not finish")

    def shot(self, name: str, locator: Any = None) -> Path:
        """Screenshot the page, or with ``locator`` the notebook's visible area scrolled to show its top (an
        element screenshot of a tall output inside JupyterLab's own scrolling area comes out torn)."""
        path, clip = self.shots / name, None
        if locator is not None:
            locator.evaluate("e => e.scrollIntoView({block: 'start'})")
            clip = self.page.locator(".jp-NotebookPanel-notebook").bounding_box()
        self.page.screenshot(path=str(path), clip=clip)
        _shrink(path)
        return path

    def state(self, selector: str | None = None) -> dict[str, Any] | None:
        return self.page.evaluate(STATE, selector)


def _trace_summary(trace: Any) -> str:
    """The renderer main threads' self time in a Chrome trace, by event name (FunctionCall by script), top 25."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    main = {(e["pid"], e["tid"]) for e in events if e.get("name") == "thread_name"
            and e.get("args", {}).get("name") == "CrRendererMain"}
    spans = sorted(((e["ts"], e.get("dur", 0), e) for e in events if (e.get("pid"), e.get("tid")) in main
                    and e.get("ph") == "X"), key=lambda t: (t[0], -t[1]))
    selftime: dict[str, float] = {}
    stack: list[list[Any]] = []  # [end, key, child time]

    def close(until: float) -> None:
        while stack and stack[-1][0] <= until:
            end, key, child, dur = stack.pop()
            selftime[key] = selftime.get(key, 0) + dur - child

    total = 0.0
    for ts, dur, e in spans:
        close(ts)
        data = e.get("args", {}).get("data") or {}
        key = e["name"]
        if key in ("FunctionCall", "EvaluateScript", "TimerFire", "EventDispatch", "FireAnimationFrame"):
            where = data.get("url") or data.get("type") or ""
            key = f"{key} {data.get('functionName', '')} {where.rsplit('/', 1)[-1][:40]}"
        if stack:
            stack[-1][2] += dur
        else:
            total += dur
        stack.append([ts + dur, key, 0.0, dur])
    close(float("inf"))
    top = sorted(selftime.items(), key=lambda kv: -kv[1])[:25]
    return f"busy {total / 1e3:.0f} ms; " + "; ".join(f"{k}: {v / 1e3:.0f} ms" for k, v in top)


def _shrink(path: Path) -> None:
    """Store a screenshot as a 256-colour PNG (a dashboard is flat colours and text: a fraction of the size)."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


@pytest.fixture(scope="module")
def session(lab, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    url, home = lab
    shots = Path(os.environ.get("FLOPS_FIT_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.add_init_script(PROBE)
            session = Session(page, url, home, shots)
            session.browser = browser
            session.cdp = page.context.new_cdp_session(page)
            session.cdp.send("Performance.enable")
            yield session
            print(f"screenshots in {shots}; console errors and page errors: {session.events}")
        finally:
            browser.close()


def _wait_for(s: Session, done, timeout: float, what: str, selector: str | None = None,
              seen: list | None = None) -> dict[str, Any]:
    """Poll the monitor's state until ``done(state)``; every state read is appended to ``seen``."""
    deadline = time.monotonic() + timeout
    while True:
        state = s.state(selector)
        if seen is not None and state is not None:
            seen.append(state)
        if state is not None and done(state):
            return state
        if time.monotonic() > deadline:
            s.shot("timed_out.png")
            brief = None if state is None else {k: state[k] for k in ("points", "completed", "done", "unlocated")}
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last state {brief}; "
                                 f"page errors so far: {s.events[-8:]}")
        time.sleep(0.1)


def _first_render(s: Session, name: str, selector: str | None = None, settle: float = 3.0) -> None:
    """Record the widths of a new monitor's figures when they are first drawn, and as they stand ``settle``
    seconds later (or as soon as every figure matches its container): before any reload or resize."""
    deadline = time.monotonic() + 120
    while (first := s.page.evaluate(WIDTHS, selector)) is None:
        assert time.monotonic() < deadline, f"the {name} monitor's figures were not drawn within 120 s"
        time.sleep(0.05)
    settled, until = first, time.monotonic() + settle
    while not _fits(settled) and time.monotonic() < until:
        time.sleep(0.1)
        settled = s.page.evaluate(WIDTHS, selector) or settled
    s.widths[name] = {"first": first, "settled": settled}


def _fits(widths: dict[str, Any]) -> bool:
    return not _misfits(widths)


def _misfits(widths: dict[str, Any]) -> list[str]:
    out = []
    if widths["output"] is not None and abs(widths["monitor"] - widths["output"]) > TOLERANCE_PX:
        out.append(f"dashboard {widths['monitor']} px wide in a {widths['output']} px output area")
    for fig in widths["figures"]:
        if abs(fig["svg"] - fig["container"]) > TOLERANCE_PX:
            out.append(f"figure '{fig['title']}' drawn {fig['svg']} px wide in a {fig['container']} px container")
        if fig["svg_right"] > widths["monitor_right"] + TOLERANCE_PX:
            out.append(f"figure '{fig['title']}' runs {fig['svg_right'] - widths['monitor_right']} px past the "
                       "dashboard's right edge")
    return out


def _run_all(s: Session) -> None:
    page = s.page
    page.goto(f"{s.url}/lab/tree/{NOTEBOOK.name}?token={TOKEN}")
    page.wait_for_selector(".jp-Notebook", timeout=90_000)
    page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=90_000)
    s.mark("notebook open, kernel idle")
    _menu(page, "Run", "Run All Cells")
    page.wait_for_selector(".flops-fit-paced", timeout=120_000)  # the last cell's app is on the page
    page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=60_000)
    s.mark("every cell ran")


def _menu(page: Any, menu: str, item: str) -> None:
    page.click(f"li.lm-MenuBar-item >> text={menu}")
    page.click(f".lm-Menu-itemLabel >> text={item}")
    page.wait_for_selector(".lm-Menu", state="detached", timeout=10_000)


def _run_and_wait(s: Session, name: str, runs: int, selector: str = ".flops-fit-designer",
                  timeout: float = 120) -> list[dict[str, Any]]:
    """Press Run sweep in the app at ``selector``; wait for a new monitor to show ``runs`` points, ``runs``
    completed rows and its done line; return every state seen on the way (the figures' widths on first render
    are kept in ``s.widths[name]``)."""
    old = (s.state(selector) or {}).get("id")
    s.page.locator(selector).first.locator("button", has_text="Run sweep").click()
    _wait_for(s, lambda st: st["id"] != old, 60, f"the {name} monitor to appear", selector)
    s.mark(f"{name}: monitor on the page")
    _first_render(s, name, selector)
    s.mark(f"{name}: figures drawn")
    seen = s.samples.setdefault(name, [])
    _wait_for(s, lambda st: st["points"] == runs and st["completed"] == runs and st["done"], timeout,
              f"{runs} points, {runs} completed runs and 'done' in the {name} monitor", selector, seen)
    s.mark(f"{name}: done")
    return seen


def test_app_runs_and_draws_every_run(session):
    s = session
    _run_all(s)
    designer = s.page.locator(".flops-fit-designer").first
    assert "45 runs" in designer.text_content()
    assert s.state() is None  # nothing has run in the first app yet
    seen = _run_and_wait(s, "first", 45)
    s.probe("first: done")
    time.sleep(3)
    s.probe("first: done, idle 3 s")
    # 45 runs of 0.05 s: on a busy machine the sweep can end before the browser has drawn its first figure, so
    # seeing points arrive is the paced app's check, not this one's
    print(f"first app: point counts seen once its figures were drawn: {sorted({st['points'] for st in seen})}")
    s.shot("first_app_done.png", s.page.locator(".flops-fit-designer .flops-fit-monitor").first)
    s.done.add("first")


def test_points_arrive_run_by_run_while_the_kernel_answers(session):
    s = session
    s.need("first")
    page, paced = s.page, ".flops-fit-paced"
    page.locator(paced).scroll_into_view_if_needed()
    s.probe("paced: before Run sweep")
    page.locator(paced).locator("button", has_text="Run sweep").click()
    _wait_for(s, lambda st: st is not None, 60, "the paced monitor to appear", paced)
    # the page itself also records the monitor's state every 0.1 s, screenshots and the cell's run included: check 4
    # reads every stage of the sweep (budgets not yet located come and go within a second or two)
    page.evaluate("([state, selector]) => { const read = eval(state); window.__ffSeen = []; window.__ffRecording = "
                  "setInterval(() => { const st = read(selector); if (st) window.__ffSeen.push(st); }, 100); }",
                  [STATE, paced])
    s.mark("paced: monitor on the page")
    s.probe("paced: monitor on the page")
    _first_render(s, "paced", paced)
    s.mark("paced: figures drawn")
    seen = s.samples.setdefault("paced", [])
    s.probe("paced: figures drawn")
    s.trace("paced: running", 3.0)
    s.probe("paced: running, traced")
    # the kernel stays free: run another cell while the sweep goes on
    cell = page.locator(".jp-CodeCell", has_text="the kernel answered at").first
    before = cell.locator(".jp-InputPrompt").text_content()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    deadline = time.monotonic() + 30
    while True:
        seen.append(s.state(paced))  # the sweep's early states (few runs: budgets not located yet), for check 4
        now = cell.locator(".jp-InputPrompt").text_content()
        if now != before and "*" not in now:
            break
        assert time.monotonic() < deadline, f"the cell did not run while the sweep went on (prompt {now})"
        time.sleep(0.05)
    s.mark("a cell ran during the paced sweep")
    s.probe("paced: a cell ran")
    during = s.state(paced)
    assert not during["done"] and during["completed"] < 27, \
        f"the cell only ran after the sweep ended ({during['completed']} runs completed by then)"
    during = during["completed"]
    monitor = page.locator(f"{paced} .flops-fit-monitor")
    part = _wait_for(s, lambda st: st["points"] >= 9 or st["done"], 60, "9 points in the paced app", paced, seen)
    monitor.scroll_into_view_if_needed()
    s.shot("dashboard_running.png", monitor)
    part_points = part["points"]
    _wait_for(s, lambda st: st["points"] == 27 and st["completed"] == 27 and st["done"], 90,
              "27 points, 27 completed runs and 'done' in the paced app", paced, seen)
    s.mark("paced: done")
    recorded = page.evaluate("() => { clearInterval(window.__ffRecording); return window.__ffSeen; }")
    s.samples["paced, recorded in the page"] = recorded
    print(f"paced app: {len(recorded)} states recorded in the page, point counts "
          f"{sorted({st['points'] for st in recorded})}")
    s.probe("paced: done")
    s.shot("dashboard_done.png", monitor)
    counts = sorted({st["points"] for st in seen})
    print(f"paced app: a cell ran with {during} of 27 runs completed; the running screenshot at {part_points}; "
          f"point counts seen: {counts}")
    assert len([n for n in counts if 0 < n < 27]) >= 2, f"points did not arrive run by run: saw counts {counts}"
    assert part_points < 27, "the 'running' screenshot was taken after the sweep ended"
    if os.environ.get("FLOPS_FIT_UPDATE_SCREENSHOTS") == "1":
        for name in ("dashboard_running.png", "dashboard_done.png"):
            shutil.copyfile(s.shots / name, SCREENSHOTS / name)
    s.done.add("paced")


def test_figures_fill_their_container_on_first_render(session):
    s = session
    s.need("first")
    report = {name: {"first": w["first"], "settled": w["settled"]} for name, w in s.widths.items()}
    print("widths on first render:", json.dumps(report, indent=1))
    wrong = {name: _misfits(w["settled"]) for name, w in s.widths.items() if _misfits(w["settled"])}
    assert not wrong, f"figures do not fill their containers on first render: {json.dumps(wrong, indent=1)}"


def _star_problems(state: dict[str, Any], notes_too: bool) -> list[str]:
    """What is wrong with one state's stars: a star beside an edge marker (the same figure says the minimum is
    not located), a star outside the sizes run, and with ``notes_too`` a star for a budget the notes call
    unlocated."""
    problems = []
    for budget, xs in state["stars"].items():
        if not xs:
            continue
        if state["edges"].get(budget):
            problems.append(f"{budget}: a star and a 'minimum not located' marker")
        runs = state["runs"].get(budget) or []
        if not runs or any(not min(runs) * (1 - 1e-9) <= x <= max(runs) * (1 + 1e-9) for x in xs):
            problems.append(f"{budget}: a star at N={xs} outside the sizes run ({sorted(runs)[:1]}..{sorted(runs)[-1:]})")
        if notes_too and budget in state["unlocated"]:
            problems.append(f"{budget}: a star while the notes say its minimum is not located")
    return problems


def _settled_pairs(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """States whose next reading showed the same points and notes: the figure and the notes had both been
    redrawn from the same fit (a redraw sends the figure first and the notes last, a few messages apart)."""
    key = lambda st: (st["id"], st["points"], st["completed"], st["unlocated"], sorted(st["stars"].items()))
    return [a for a, b in zip(seen, seen[1:]) if key(a) == key(b)]


def test_no_star_where_the_minimum_is_not_located(session):
    s = session
    s.need("first")
    checked, unlocated_seen, problems = 0, 0, []
    for name, seen in s.samples.items():
        for state in seen:  # the figure alone: its traces change in one message
            problems += [f"{name}, {state['points']} points: {p}" for p in _star_problems(state, notes_too=False)]
        for state in _settled_pairs(seen):
            checked += 1
            unlocated_seen += bool(state["unlocated"])
            problems += [f"{name}, {state['points']} points: {p}" for p in _star_problems(state, notes_too=True)]
        final = seen[-1]
        problems += [f"{name}, at the end: {p}" for p in _star_problems(final, notes_too=True)]
    print(f"stars: {sum(map(len, s.samples.values()))} states read, {checked} settled, {unlocated_seen} of them "
          f"with a budget the notes call unlocated")
    assert unlocated_seen, "no state with an unlocated budget was seen: the check saw nothing to check"
    assert not problems, "stars where no minimum is located:\n" + "\n".join(dict.fromkeys(problems))


def _save(s: Session) -> None:
    """Save the notebook from the page and wait for the new file on disk, widget state and all."""
    path = s.home / NOTEBOOK.name
    before = path.stat().st_mtime_ns
    _menu(s.page, "File", "Save Notebook")
    deadline = time.monotonic() + 120
    while True:
        try:
            if path.stat().st_mtime_ns != before and "widgets" in json.loads(path.read_text())["metadata"]:
                break
        except ValueError:  # caught mid-write
            pass
        assert time.monotonic() < deadline, "saving the notebook did not finish in 120 s"
        time.sleep(0.1)
    s.mark("saved")


def test_reruns_and_a_reload_leave_no_console_error(session):
    s = session
    s.need("first")
    page = s.page
    for i in range(3):
        s.phase = f"re-run {i + 1}"
        _run_and_wait(s, f"re-run {i + 1}", 45)
    s.phase = "reloading with the kernel alive"
    _save(s)  # a reload reads the notebook from disk: unsaved, it would come back with no outputs at all
    s.mark("reloading")
    page.reload()
    page.wait_for_selector(".jp-Notebook", timeout=90_000)
    _wait_for(s, lambda st: st["points"] == 45 and st["completed"] == 45, 120,
              "the first app's 45 points and 45 completed runs after the reload")
    s.mark("reloaded: every point drawn")
    paced = ".flops-fit-paced"
    _wait_for(s, lambda st: st["points"] >= 27 and st["completed"] == 27, 120,
              "the paced app's 27 points and 27 completed runs after the reload", paced)
    time.sleep(1)  # a view is built at once from the saved state: a count seen now is what it shows
    after = s.state(paced)
    assert after["points"] == 27, (f"the paced app shows {after['points']} points for its 27 runs after the reload: "
                                   f"{json.dumps({k: len(v) for k, v in after['runs'].items()})}; its IsoFLOP traces: "
                                   + json.dumps(s.page.evaluate(TRACES, paced)))
    s.done.add("reload")
    errors = [f"{phase}: {kind}: {text}" for phase, kind, text in s.events]
    assert not errors, "errors on the page:\n" + "\n".join(errors) + "\nconsole:\n" + "\n".join(s.console[-30:])


def test_saved_widget_state_draws_after_the_kernel_shut_down(session):
    s = session
    s.need("first")
    page, path = s.page, s.home / NOTEBOOK.name
    s.phase = "saving and shutting the kernel down"
    _save(s)
    _menu(page, "Kernel", "Shut Down Kernel")
    deadline = time.monotonic() + 60
    while json.loads(urllib.request.urlopen(f"{s.url}/api/kernels?token={TOKEN}", timeout=5).read()):
        assert time.monotonic() < deadline, "the kernel did not shut down in 60 s"
        time.sleep(0.1)
    s.mark("kernel shut down")
    s.phase = "reopening from saved state"
    state = json.loads(path.read_text())["metadata"]["widgets"]
    assert state["application/vnd.jupyter.widget-state+json"]["state"]
    try:
        page.reload()
        page.wait_for_selector(".jp-Notebook", timeout=90_000)
        _wait_for(s, lambda st: st["points"] == 45, 120, "the first app's 45 points from the saved state")
    except AssertionError as first:
        # In about 1 full suite run in 3 the first reopen draws nothing at all (not slowly: the plot never
        # appears), while the same page reloaded once more draws every point from the file. Our reading: the
        # reopened notebook starts a new kernel, and when it connects after the saved models were restored,
        # the widget manager clears them. The second reload still has no models in the kernel, so what it draws
        # comes from the saved state all the same; both tries are reported.
        s.shot("saved_state_first_try.png")
        print(f"saved state, first reopen: {first}")
        s.phase = "reopening from saved state, second try"
        page.reload()
        page.wait_for_selector(".jp-Notebook", timeout=90_000)
        _wait_for(s, lambda st: st["points"] == 45, 120, "the first app's 45 points from the saved state")
    s.mark("reopened: every point drawn from the saved state")
    # Here each model is built both from the file and from the new kernel; anywidget (0.11) reports a model
    # whose start took over 2 s ("Failed to initialize model", a fixed timeout) as a page error, and on a
    # busy machine loading plotly's 4.9 MB widget module takes that long. Every figure is drawn (checked
    # above), so after this reopen that one message is not a failure; any other error is.
    errors = [f"{phase}: {kind}: {text}" for phase, kind, text in s.events if phase.startswith("reopening")
              and not text.endswith("[anywidget] Failed to initialize model.")]
    assert not errors, "errors on the reopened page:\n" + "\n".join(errors)
