"""Screenshots of the live monitor in JupyterLab while an adaptive sweep runs, and after it stopped.

Starts JupyterLab on a free port with a temporary home and settings directory, writes a notebook whose
one cell builds a ``SweepDesigner`` with ``strategy="adaptive"`` (mock GPT runs, each held 0.6 s by a
callback so that the sweep can be seen part way) and presses Run sweep, opens it in headless Chromium
driven by Playwright, runs all cells and saves two screenshots of the monitor:

* ``benchmarks/screenshots/adaptive_monitor.png``: part way, with the adaptive status line showing and
  hollow markers in the IsoFLOP plot for the runs proposed but not yet run;
* ``benchmarks/screenshots/adaptive_monitor_done.png``: once the adaptive line says why it stopped.

Needs ``/usr/bin/chromium`` (or ``FLOPS_FIT_CHROMIUM``), Playwright, JupyterLab, ipywidgets, anywidget and
nbformat (``pip install -e '.[dev]'``); Playwright never downloads a browser.

Run: .venv/bin/python benchmarks/screenshot_adaptive.py
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "benchmarks" / "screenshots"
CHROMIUM = os.environ.get("FLOPS_FIT_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "flops-fit-screenshot"
NOTEBOOK = "adaptive.ipynb"

CELL = """import time
from flops_fit.examples import GPT
from flops_fit.widgets import SweepDesigner
app = SweepDesigner(GPT, "d_model", model_kwargs={"n_layer": 4}, n_budgets=3, strategy="adaptive",
                    target_precision=0.12, parallel=3, seed=3,
                    callbacks=[lambda event: time.sleep(0.6) if event["type"] == "run_end" else None])
app.run_button.click()
app"""

# the monitor's state as drawn: its adaptive line, and how many points of finished runs and of proposed runs
# (hollow markers) its IsoFLOP plot shows, and where (N, loss) those hollow markers are
MONITOR_STATE = """() => {
  const monitor = document.querySelector('.flops-fit-monitor');
  if (!monitor) return null;
  const line = monitor.querySelector('.flops-fit-adaptive');
  const plot = monitor.querySelector('.js-plotly-plot');
  const count = (keep) => (plot && plot.data ? plot.data : [])
    .filter(t => t.mode === 'markers' && keep(t.marker ? t.marker.symbol : undefined))
    .reduce((n, t) => n + (t.x ? t.x.length : 0), 0);
  return {adaptive: line ? line.textContent : null,
          finished: count(s => !['star', 'circle-open'].includes(s)),
          proposed: count(s => s === 'circle-open'),
          where: (plot && plot.data ? plot.data : []).filter(t => t.marker && t.marker.symbol === 'circle-open')
                   .flatMap(t => Array.from(t.x || [], (x, i) => [x, t.y[i]]))};
}"""


def start_lab(home: Path, token: str) -> tuple[subprocess.Popen, str]:
    """JupyterLab serving ``home``, with notifications off, every cell drawn and widget state saved."""
    for folder, name, setting in [("@jupyterlab/apputils-extension", "notification", {"fetchNews": "false"}),
                                  ("@jupyterlab/notebook-extension", "tracker", {"windowingMode": "none"}),
                                  ("@jupyter-widgets/jupyterlab-manager", "plugin", {"saveState": True})]:
        path = home / ".settings" / folder
        path.mkdir(parents=True)
        (path / f"{name}.jupyterlab-settings").write_text(json.dumps(setting))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / ".config"), "JUPYTER_RUNTIME_DIR": str(home / ".run"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / ".settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / ".ws"),
           "PYTHONPATH": str(ROOT)}
    log = open(home / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={home}", "--LabApp.news_url="],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                stop_lab(server)
                raise RuntimeError(f"JupyterLab did not start:\n{(home / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)


def stop_lab(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def wait_for(page, done, timeout: float, what: str) -> dict:
    """Poll the monitor's state until ``done(state)``; return that state."""
    deadline = time.monotonic() + timeout
    while True:
        state = page.evaluate(MONITOR_STATE)
        if state is not None and done(state):
            return state
        if time.monotonic() > deadline:
            page.screenshot(path=str(SHOTS / "adaptive_timed_out.png"))
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; last state {state}")
        time.sleep(0.1)


def show_monitor(page) -> None:
    """Scroll so that the monitor's top (progress bar, adaptive line, IsoFLOP plot) is near the top of the view."""
    page.locator(".flops-fit-monitor").first.evaluate("""el => {
      el.scrollIntoView({block: 'start'});
      const scroller = el.closest('.jp-WindowedPanel-outer') || el.closest('.jp-Notebook');
      if (scroller) scroller.scrollBy(0, -30);
    }""")
    page.wait_for_timeout(300)


def part_way(state: dict | None) -> bool:
    """The adaptive line is up and not stopped, some runs have finished, and proposed runs show hollow markers."""
    return (state is not None and state["adaptive"] is not None and "stopped:" not in state["adaptive"]
            and state["finished"] > 0 and state["proposed"] > 0)


def shoot_part_way(page, timeout: float) -> dict:
    """Screenshot the monitor part way through the sweep. Proposed runs show as hollow markers only while their
    batch runs (about a second), so take shots until one starts and ends on the same part-way state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = page.evaluate(MONITOR_STATE)
        if before is not None and before["adaptive"] is not None and "stopped:" in before["adaptive"]:
            break
        if not part_way(before):
            time.sleep(0.05)
            continue
        image = page.screenshot()
        if page.evaluate(MONITOR_STATE) == before:
            (SHOTS / "adaptive_monitor.png").write_bytes(image)
            return before
    raise RuntimeError("could not catch the sweep part way, with proposed runs showing, before it stopped")


def main() -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="flops-fit-lab-"))
    try:
        notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {
            "display_name": "Python 3", "language": "python", "name": "python3"}})  # else JupyterLab asks which
        notebook.cells.append(nbformat.v4.new_code_cell(CELL))
        nbformat.write(notebook, home / NOTEBOOK)
        server, base = start_lab(home, TOKEN)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={TOKEN}")
                page.wait_for_selector(".jp-Notebook", timeout=90_000)
                page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=90_000)
                page.click("li.lm-MenuBar-item >> text=Run")
                page.click(".lm-Menu-itemLabel >> text=Run All Cells")

                wait_for(page, lambda s: s["adaptive"] is not None, 240, "the monitor's adaptive line")
                show_monitor(page)
                state = shoot_part_way(page, 240)
                print(f"part way: {state}")

                state = wait_for(page, lambda s: "stopped:" in (s["adaptive"] or ""), 240,
                                 "'stopped:' in the adaptive line")
                page.wait_for_timeout(2000)  # let the last redraw land
                state = page.evaluate(MONITOR_STATE)
                show_monitor(page)
                page.screenshot(path=str(SHOTS / "adaptive_monitor_done.png"))
                print(f"stopped: {state}")
                browser.close()
        finally:
            stop_lab(server)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"saved {SHOTS / 'adaptive_monitor.png'} and {SHOTS / 'adaptive_monitor_done.png'}")


if __name__ == "__main__":
    main()
