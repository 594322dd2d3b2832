"""A fitted result on disk as plain JSON and CSV, with what it takes to check it: never a pickle.

A saved result is a directory::

    result.json    the format, the package version, the estimator and its options, the targets,
                   the planted law and plan spec when known, the SHA-256 of each data file, and the
                   fitted constants (each budget's optimum; each power law with its covariance)
    results.csv    the runs the fit was made from
    curves.csv     their loss curves, when there were any

Reading it back checks the data against its hashes; :meth:`flops_fit.Result.load` then refits
and checks that the refit reproduces the stored constants.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from ._checks import param_error
from .store import write_atomic

FORMAT = "flops_fit.result/1"
RESULT_FILE = "result.json"
# the constants a refit must reproduce, per frame
OPTIMA_CONSTANTS = ["budget", "params_opt", "tokens_opt", "loss_opt", "usable"]
LAW_CONSTANTS = ["quantity", "coefficient", "exponent", "floor", "covariance", "dof"]
FIT_CONSTANTS = ["E", "A", "B", "alpha", "beta", "sigma", "dof", "covariance"]  # the VPNLS law, when it made the fit


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def constants(optima: pd.DataFrame, laws: pd.DataFrame, fit: pd.DataFrame | None = None) -> dict[str, Any]:
    """The fitted constants as JSON-ready records (with the VPNLS ``fit``'s constants and covariance when given)."""
    def records(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
        shown = frame[[c for c in columns if c in frame.columns]]
        return json.loads(shown.to_json(orient="records", double_precision=15))

    found = {"optima": records(optima, OPTIMA_CONSTANTS), "laws": records(laws, LAW_CONSTANTS)}
    if fit is not None:
        found["law"] = records(fit, FIT_CONSTANTS)
    return found


def write(path: str | os.PathLike[str], results: pd.DataFrame, curves: pd.DataFrame | None,
          header: dict[str, Any], fitted: dict[str, Any]) -> Path:
    """Write a saved result into directory ``path`` (created; a file of that name is refused)."""
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise param_error("path", "Result.save", "a directory path (created if missing)", os.fspath(path))
    root.mkdir(parents=True, exist_ok=True)
    data = {"results": results.to_csv(index=False)}
    if curves is not None and len(curves):
        data["curves"] = curves.to_csv(index=False)
    for name, text in data.items():
        write_atomic(root / f"{name}.csv", text)
    record = {"format": FORMAT, "flops_fit_version": __version__, **header,
              "data": {name: {"file": f"{name}.csv", "sha256": _sha256(text)} for name, text in data.items()},
              "fit": fitted}
    write_atomic(root / RESULT_FILE, json.dumps(record, indent=1))  # last: its presence marks a whole save
    return root


def is_saved_result(path: str | os.PathLike[str]) -> bool:
    return os.path.isfile(os.path.join(path, RESULT_FILE))


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame | None]:
    """(the record, the runs, the curves) of a saved result, each data file checked against its hash."""
    root = Path(path)
    record = json.loads((root / RESULT_FILE).read_text(encoding="utf-8"))
    if record.get("format") != FORMAT:
        raise ValueError(f"{root / RESULT_FILE} is not a saved flops_fit result of a format this version reads "
                         f"({record.get('format')!r}, expected {FORMAT!r}).")
    frames: dict[str, pd.DataFrame] = {}
    for name, entry in record["data"].items():
        text = (root / entry["file"]).read_text(encoding="utf-8")
        if _sha256(text) != entry["sha256"]:
            raise ValueError(f"{root / entry['file']} has changed since the result was saved (its SHA-256 no "
                             "longer matches result.json); refit it with Result.from_results instead.")
        frames[name] = pd.read_csv(root / entry["file"], dtype={"run_id": str})
    return record, frames["results"], frames.get("curves")


def differences(saved: dict[str, Any], fresh: dict[str, Any], rel: float = 1e-6) -> list[str]:
    """Where the refit's constants differ from the saved ones (beyond ``rel`` relative error).

    1e-6: the law's least-squares fit converges to about 1e-8, and another machine's arithmetic
    moves it by as much; a constant the data does not support differs by far more."""
    found = []
    for frame in ("optima", "laws", "law"):
        old_rows, new_rows = saved.get(frame, []), fresh.get(frame, [])
        if len(old_rows) != len(new_rows):
            found.append(f"{frame}: {len(old_rows)} rows saved, {len(new_rows)} refitted")
            continue
        for i, (old, new) in enumerate(zip(old_rows, new_rows)):
            for key, value in old.items():
                if not _same(value, new.get(key), rel):
                    found.append(f"{frame}[{i}].{key}: saved {value!r}, refitted {new.get(key)!r}")
    return found


def _same(a: Any, b: Any, rel: float) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return bool(np.isclose(a, b, rtol=rel, atol=0.0))
    return a == b
