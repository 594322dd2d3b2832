"""JupyterLab for browser checks: a server on a free port with a temporary home, shared by
``tests/test_browser.py`` and ``benchmarks/screenshot_adaptive.py``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
