"""Tracker runs back into a results frame: one sweep's runs, numbers as numbers, in the plan's order.

The tags (MLflow) or config keys (W&B) that say which sweep and which planned run a tracker run
is are written here once, for the callbacks and the readers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .._checks import param_error

SWEEP_KEY, RUN_KEY, IDENTITY_KEY = "flops_fit.sweep", "flops_fit.run_id", "flops_fit.identity"


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"training": {"lr": 3e-3}}`` -> ``{"training.lr": 3e-3}``; lists and other values stay whole."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# what a tracker's own run states mean in flops_fit's words, for runs without a flops_fit status
TRACKER_STATUS = {"finished": "completed", "failed": "failed", "crashed": "failed", "killed": "failed",
                  "running": "running", "scheduled": "pending", "pending": "pending"}


# columns that stay text even when every value looks like a number (a run_id can be all digits), and those that
# are always floats
_TEXT = {"run_id", "sweep", "identity", "status", "error", "size_param", "model_kwargs", "reason", "mode",
         "flop_convention", "mlflow_run_id", "wandb_id"}
_NUMBERS = {"budget", "flops", "params", "tokens", "loss", "flops_per_token", "tokens_per_param"}


def results_frame(rows: Iterable[dict[str, Any]], *, sweep: str | None, source: str, func: str,
                  parameter: str) -> pd.DataFrame:
    """Tracker runs (one dict each: parameters, final metrics, and ``status``/``sweep``/``identity`` when
    flops_fit logged them) as a results frame of one sweep.

    Parameters come back as numbers where they are numbers. An experiment that holds several
    flops_fit sweeps (other names, or other settings under one name) is an error naming them,
    unless ``sweep`` picks one.
    """
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        raise param_error(parameter, func, "a tracker location holding runs", source,
                          "It holds no runs (deleted runs are not read). Log a sweep to it first, e.g. "
                          "run_sweep(plan, callbacks=[MLflowCallback(...)]).")
    for column in frame.columns:
        if column in _TEXT:
            continue
        if column in _NUMBERS:  # floats, as a sweep directory gives them (W&B keeps 1e17 as an integer)
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        elif frame[column].dtype == object or str(frame[column].dtype).startswith(("string", "str")):
            numbers = pd.to_numeric(frame[column], errors="coerce")
            if numbers.notna().sum() == frame[column].notna().sum():
                frame[column] = numbers
    order = [c for c in ("budget", "params", "size", "repeat", "run_id") if c in frame.columns]
    if order:  # the plan's order (trackers list newest first), so a fit sees the runs as the sweep made them
        frame = frame.sort_values(order, kind="stable", na_position="last")
    if "sweep" in frame.columns:
        frame = _one_sweep(frame, sweep, source, func, parameter)
    elif sweep is not None:
        raise param_error("sweep", func, "the name of a flops_fit sweep logged there", sweep,
                          f"{source} holds no runs logged by flops_fit (no '{SWEEP_KEY}' tag); leave sweep=None.")
    return frame.reset_index(drop=True)


def _one_sweep(frame: pd.DataFrame, sweep: str | None, source: str, func: str, parameter: str) -> pd.DataFrame:
    names = frame["sweep"].fillna("(not logged by flops_fit)")
    if sweep is not None:
        if sweep not in set(names):
            raise param_error("sweep", func, f"one of the sweeps logged to {source}", sweep,
                              f"There: {sorted(set(names))}.")
        frame = frame[names == sweep]
        names = names[names == sweep]
    identities = frame["identity"].fillna("") if "identity" in frame.columns else pd.Series("", index=frame.index)
    groups = (names + "\x00" + identities).value_counts()
    if len(groups) > 1:
        settings = {key: _settings(str(key).split("\x00", 1)[1]) for key in groups.index}
        keys = sorted({k for flat in settings.values() for k in flat})
        differ = [k for k in keys if len({repr(flat.get(k)) for flat in settings.values()}) > 1]
        parts = []
        for key, count in groups.items():
            name = str(key).split("\x00", 1)[0]
            shown = ", ".join(f"{k} {settings[key].get(k)}" for k in differ[:4] if k in settings[key])
            parts.append(f"'{name}' ({count} runs{', ' + shown if shown else ''})")
        fix = ("Pass sweep=<one of the names> to read one of them." if names.nunique() > 1 else
               "Runs under one name were made with different settings (another mode, seed, law or training "
               "setting); log each setting under its own sweep name, e.g. MLflowCallback(sweep='lr-3e-3').")
        raise param_error(parameter if sweep is None else "sweep", func, "one sweep's runs", source,
                          f"It mixes {len(groups)} sweeps: {'; '.join(parts)}. Fitting them together would mix "
                          f"runs made differently. {fix}")
    return frame


def _settings(identity: str) -> dict[str, Any]:
    """A sweep's identity (JSON) flattened, ``{}`` when there is none or it is not JSON."""
    try:
        value = json.loads(identity) if identity else {}
    except ValueError:
        return {"identity": identity[:80]}
    return flatten(value) if isinstance(value, Mapping) else {"identity": identity[:80]}
