"""Weights & Biases, both ways: :class:`WandbCallback` logs a sweep's runs; :func:`read_wandb` reads them back.

Each sweep run becomes a W&B run (grouped by the sweep's name, with a fixed id made from it and
the ``run_id``, so a resumed sweep writes into the same runs): the plan row and how runs are
made go to its config, the loss curve to its history (``train_loss``, ``lr`` and
``tokens_so_far`` against ``step``), the final held-out ``loss``, ``status``, ``error`` and
the other outcome numbers to its summary. With ``WANDB_MODE=offline`` (or ``mode="offline"``)
nothing leaves the machine, and :func:`read_wandb` reads the offline runs from their directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import netrc
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pandas as pd

from .. import _deps
from .._checks import param_error
from .runs import IDENTITY_KEY, RUN_KEY, SWEEP_KEY, TRACKER_STATUS, results_frame
from .tracker import TrackerCallback, run_name

logger = logging.getLogger(__name__)
_MODES = ("online", "offline", "disabled")
_RENAMES = {SWEEP_KEY: "sweep", IDENTITY_KEY: "identity", RUN_KEY: "run_id"}


class WandbCallback(TrackerCallback):
    """Log every run of a sweep to Weights & Biases: pass it as ``callbacks=[WandbCallback(...)]`` to
    :func:`~flops_fit.run_sweep`, :func:`~flops_fit.find_optimal` or the sweep designer.

    Parameters
    ----------
    project : str, default "flops_fit"
        The W&B project.
    entity : str, optional
        The W&B team or user; default your default entity.
    sweep : str, optional
        The sweep's name: the W&B group of its runs, and part of each run's fixed id. Default
        the sweep directory's name, or ``sweep-`` and a hash of the sweep's settings.
    mode : {"online", "offline", "disabled"}, optional
        Default ``WANDB_MODE``, else online. Online needs a W&B login (``wandb login`` or
        ``WANDB_API_KEY``), checked here so a sweep never waits on a login prompt.
    dir : path, optional
        Where W&B writes its run directories (``<dir>/wandb/``); default W&B's.
    flush_timeout_s, batch_s : float
        How long the end of a sweep waits for the logging; how often step metrics are sent.
    """

    def __init__(self, project: str = "flops_fit", *, entity: str | None = None, sweep: str | None = None,
                 mode: str | None = None, dir: str | os.PathLike[str] | None = None, flush_timeout_s: float = 60.0,
                 batch_s: float = 1.0) -> None:
        func = "WandbCallback"
        super().__init__(sweep=sweep, flush_timeout_s=flush_timeout_s, batch_s=batch_s, func=func)
        if not isinstance(project, str) or not project.strip():
            raise param_error("project", func, "the name of a W&B project", project)
        mode = mode if mode is not None else os.environ.get("WANDB_MODE", "online")
        if mode not in _MODES:
            raise param_error("mode", func, f"one of {_MODES}", mode)
        self._wandb = _deps.tracker("wandb")
        if mode == "online":
            _require_login(func, "mode", "or log offline: WandbCallback(mode='offline') / WANDB_MODE=offline")
        self.project, self.entity, self.mode = project, entity, mode
        self.dir = None if dir is None else os.fspath(dir)
        if self.dir is not None:
            os.makedirs(self.dir, exist_ok=True)

    def _open(self, row: dict[str, Any], params: dict[str, Any], tags: dict[str, str]) -> Any:
        wandb = self._wandb
        key = f"{tags[SWEEP_KEY]}\x00{tags.get(IDENTITY_KEY, '')}\x00{row['run_id']}"
        run = wandb.init(project=self.project, entity=self.entity, name=run_name(row), group=tags[SWEEP_KEY],
                         job_type="flops_fit", id="ff-" + hashlib.sha1(key.encode()).hexdigest()[:20],
                         resume="allow", reinit="create_new", config={**params, **tags}, dir=self.dir,
                         mode=self.mode, settings=wandb.Settings(silent=True, console="off"))
        for name in ("train_loss", "lr", "tokens_so_far"):
            run.define_metric(name, step_metric="step")
        return run

    def _log(self, run: Any, metrics: list[tuple[str, float, int]]) -> None:
        by_step: dict[int, dict[str, float]] = {}
        for name, value, step in metrics:
            if name != "loss_by_tokens":  # W&B draws loss by tokens_so_far itself
                by_step.setdefault(step, {})[name] = value
        for step in sorted(by_step):
            run.log({**by_step[step], "step": step})

    def _end(self, run: Any, final: dict[str, float], tags: dict[str, str], ended: str) -> None:
        run.summary.update({**final, "status": tags.get("flops_fit.status", ""),
                            **({"error": tags["flops_fit.error"]} if "flops_fit.error" in tags else {})})
        run.finish(exit_code=0 if ended == "FINISHED" else 1)


def read_wandb(source: str | os.PathLike[str], *, sweep: str | None = None, func: str = "load_results",
               timeout_s: float = 10.0) -> pd.DataFrame:
    """W&B runs as a results frame: config and summary as columns, ``status`` from flops_fit's summary (or W&B's
    run state). ``source`` is a local ``wandb`` directory of offline runs, a W&B runs export ``.csv``, or
    ``"entity/project"`` (read through W&B's API, which needs a login and the network)."""
    path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    if not path or not path.strip():
        raise param_error("wandb", func, "'entity/project', a W&B runs export .csv, or a wandb directory", source)
    if path.lower().endswith(".csv"):
        if not os.path.isfile(path):
            raise param_error("wandb", func, "the path of an existing W&B runs export .csv", path)
        rows = [_row(r, {}, r.get("State"), r.get("ID")) for r in pd.read_csv(path).to_dict("records")]
        where = f"the W&B export {path}"
    elif os.path.isdir(path):
        rows, where = _offline_rows(path, func), f"the offline W&B runs in {path}"
    elif path.count("/") > 1 or os.path.exists(path):
        raise param_error("wandb", func, "'entity/project', a W&B runs export .csv, or a wandb directory", path)
    else:
        rows, where = _api_rows(path, func, timeout_s), f"W&B project {path}"
    return results_frame(rows, sweep=sweep, source=where, func=func, parameter="wandb")


def _row(config: dict[str, Any], summary: dict[str, Any], state: Any, wandb_id: Any) -> dict[str, Any]:
    """One run's row: config, then summary (without W&B's own ``_`` keys), flops_fit's tags renamed."""
    row = {k: v for k, v in {**config, **summary}.items() if not str(k).startswith("_")}
    for key, column in _RENAMES.items():
        if key in row:
            row[column] = row.pop(key)
    if not row.get("status"):
        row["status"] = TRACKER_STATUS.get(str(state).lower(), "failed") if state is not None else None
    row["wandb_id"] = wandb_id
    return row


def _offline_rows(path: str, func: str) -> list[dict[str, Any]]:
    """Each offline run's config, summary and state, read by W&B's own reader of its ``.wandb`` logs
    (``wandb leet inspect``); a run logged in several attempts (a resumed sweep) counts once, its last."""
    wandb = _deps.tracker("wandb")
    try:
        core = wandb.util.get_core_path()
    except Exception as exc:
        raise ImportError(f"{func}: reading offline W&B runs needs wandb's own reader (wandb-core, wandb>=0.19): "
                          f"{exc}") from exc
    files = sorted(os.path.join(root, name) for root, _, names in os.walk(path) for name in names
                   if name.startswith("run-") and name.endswith(".wandb"))
    if not files:
        raise param_error("wandb", func, "a wandb directory holding offline runs (run-*.wandb files)", path,
                          "W&B writes them to ./wandb (or WandbCallback(dir=...)/wandb) when WANDB_MODE=offline.")
    latest: dict[str, tuple[str, dict[str, Any]]] = {}
    for file in files:
        run_dir = os.path.dirname(file)
        done = subprocess.run([core, "leet", "inspect", "--no-observability", "--summary", "--json", "--run-file",
                               file, os.path.dirname(run_dir)], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            logger.warning("%s: could not read %s: %s", func, file, done.stderr.strip()[:300])
            continue
        run = json.loads(done.stdout)
        key = run.get("run_id") or file
        if key not in latest or str(run.get("start_time", "")) >= latest[key][0]:
            latest[key] = (str(run.get("start_time", "")), run)
    return [_row(run.get("config") or {}, run.get("summary") or {}, run.get("state"), run.get("run_id"))
            for _, run in latest.values()]


def _api_rows(project: str, func: str, timeout_s: float) -> list[dict[str, Any]]:
    """The runs of ``entity/project`` through W&B's public API, after checking for a login and the network."""
    wandb = _deps.tracker("wandb")
    _require_login(func, "wandb", "or read offline runs from their directory: load_results(wandb='./wandb')")
    base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    try:
        urllib.request.urlopen(base, timeout=timeout_s).close()
    except urllib.error.HTTPError:
        pass  # it answered
    except (OSError, ValueError) as exc:
        raise ConnectionError(str(param_error(
            "wandb", func, "a W&B project reachable over the network", project,
            f"{base} did not answer within {timeout_s:g} s ({getattr(exc, 'reason', exc)}): reading a project needs "
            "the network. Offline, read the runs from their directory (load_results(wandb='./wandb')) or from a "
            "runs export .csv."))) from None
    runs = wandb.Api(timeout=int(timeout_s)).runs(project)
    return [_row(dict(run.config), dict(run.summary._json_dict), run.state, run.id) for run in runs]


def _require_login(func: str, parameter: str, alternative: str) -> None:
    """W&B online needs an API key (``WANDB_API_KEY`` or ``wandb login``'s netrc entry); without one say so
    rather than let W&B prompt for it, which would hang a notebook or a sweep."""
    if os.environ.get("WANDB_API_KEY"):
        return
    host = urllib.parse.urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""
    try:
        if netrc.netrc().authenticators(host):
            return
    except (OSError, netrc.NetrcParseError):
        pass
    raise param_error(parameter, func, "used with a W&B login for online use", "no W&B API key",
                      f"Run `wandb login` (or set WANDB_API_KEY) with your W&B account, {alternative}.")
