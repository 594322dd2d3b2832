"""Reading results (a DataFrame, anyone's CSV/JSON/Parquet, or a sweep directory) and writing sweeps durably.

A sweep directory holds::

    plan.csv              every run ever planned into it (new plans add rows; none are dropped)
    runs/<run_id>.json    one record per finished run: completed, diverged or failed
    curves/<run_id>.csv   that run's loss curve

Guarantees of :class:`SweepStore`: a record appears only when whole (written to a
temporary file, flushed to disk, then renamed over its final name, which is atomic
on POSIX and Windows), and the curve is written before the record, so a run with a
record has its curve. A run without a record has not finished and will run again.
Records are JSON and CSV, never pickle.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._checks import param_error
from .analyzer import prepare_results

_READERS = {
    ".csv": pd.read_csv,
    ".json": pd.read_json,
    ".jsonl": lambda path: pd.read_json(path, lines=True),
    ".parquet": pd.read_parquet,
}
logger = logging.getLogger(__name__)
FINISHED = ("completed", "diverged", "failed")
# names other tools give our columns (lower-cased, spaces and dashes as underscores), tried when ours is absent
ALIASES = {
    "params": ["n", "n_params", "num_params", "nparams", "parameters", "model_size", "model_params", "size_params"],
    "tokens": ["d", "n_tokens", "num_tokens", "tokens_seen", "train_tokens", "training_tokens", "dataset_size"],
    "flops": ["c", "compute", "training_flop", "training_flops", "train_flops", "total_flops", "flop"],
    "loss": ["val_loss", "eval_loss", "validation_loss", "final_loss", "test_loss"],
    "budget": ["compute_budget", "flops_budget", "target_flops"],
}


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    # the writer's pid is in the name, so a later sweep can tell a dead writer's leftovers from a live one's
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN and missing to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value


class SweepStore:
    """A sweep directory: the plan, a record and a curve per finished run (see the module docstring).

    Examples
    --------
    >>> import tempfile
    >>> store = SweepStore(tempfile.mkdtemp())
    >>> store.finished().empty
    True
    """

    def __init__(self, path: str | os.PathLike[str], *, writer: bool = False) -> None:
        """Open a sweep directory; only a ``writer`` (a running sweep) creates or cleans anything."""
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise param_error("store", "run_sweep", "a directory path (created if missing)", os.fspath(path))
        if writer:
            (self.path / "runs").mkdir(parents=True, exist_ok=True)
            (self.path / "curves").mkdir(exist_ok=True)
            self._remove_dead_writers_files()

    def _remove_dead_writers_files(self) -> None:
        """Delete temporary files left by writers that no longer run (a crash mid-write); never a live one's."""
        for stale in self.path.rglob(".*.tmp"):
            parts = stale.name.rsplit(".", 3)  # .<name>.<pid>.<random>.tmp
            try:
                pid = int(parts[-3])
                os.kill(pid, 0)
            except (ValueError, IndexError):
                continue  # not ours
            except ProcessLookupError:
                stale.unlink(missing_ok=True)
            except PermissionError:
                continue  # alive, owned by someone else

    # -- the plan ---------------------------------------------------------------------------
    def plan(self) -> pd.DataFrame:
        """Every run planned into this directory (empty when none)."""
        path = self.path / "plan.csv"
        # run ids are hex strings: one made only of digits must not turn into a number
        return pd.read_csv(path, dtype={"run_id": str}) if path.exists() else pd.DataFrame()

    def add_plan(self, plan: pd.DataFrame) -> None:
        """Add the plan's runs to ``plan.csv``; runs already there keep their row.

        Two sweeps adding plans at once take turns (a lock file), so neither's rows are lost.
        """
        with _locked(self.path / ".plan.lock"):
            old = self.plan()
            merged = plan if old.empty else pd.concat([old, plan[~plan["run_id"].isin(old["run_id"])]],
                                                       ignore_index=True)
            _write_atomic(self.path / "plan.csv", merged.to_csv(index=False))
        settings = {k: v for k, v in plan.attrs.items() if isinstance(v, (str, int, float, bool, dict, list))}
        _write_atomic(self.path / "settings.json", json.dumps(settings, indent=1, default=str))

    # -- records ------------------------------------------------------------------------------
    def write_run(self, record: Mapping[str, Any], curve: pd.DataFrame | None = None) -> None:
        """Store one finished run: its curve first, then its record (the record marks it finished)."""
        run_id = str(record["run_id"])
        if curve is not None:
            _write_atomic(self.path / "curves" / f"{run_id}.csv", curve.to_csv(index=False))
        _write_atomic(self.path / "runs" / f"{run_id}.json",
                      json.dumps({k: _plain(v) for k, v in record.items()}, indent=1, default=str))

    def finished(self) -> pd.DataFrame:
        """One row per stored record, with whatever columns the records hold."""
        records = []
        for path in sorted((self.path / "runs").glob("*.json")):
            records.append(json.loads(path.read_text(encoding="utf-8")))
        frame = pd.DataFrame(records)
        if "run_id" in frame.columns:
            frame["run_id"] = frame["run_id"].astype(str)
        return frame

    def results(self) -> pd.DataFrame:
        """The plan with each finished run's outcome; runs without a record have status ``pending``."""
        plan, done = self.plan(), self.finished()
        if plan.empty:
            return done
        if done.empty:
            return plan.assign(status="pending")
        own = ("status", "flops")  # what a record says about these wins over the plan
        outcome = done[["run_id", *[c for c in done.columns if c not in plan.columns or c in own]]]
        merged = plan.merge(outcome, on="run_id", how="outer", suffixes=("_planned", ""))
        merged["status"] = merged["status"].fillna("pending")
        if "flops_planned" in merged.columns:  # a pending run shows the FLOPs it is planned to spend
            merged["flops"] = merged["flops"].fillna(merged.pop("flops_planned"))
        return merged.drop(columns=["status_planned"], errors="ignore")

    def curves(self) -> pd.DataFrame:
        frames = [pd.read_csv(path, dtype={"run_id": str}) for path in sorted((self.path / "curves").glob("*.csv"))]
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["run_id", "step", "tokens", "flops", "loss", "lr"])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX; elsewhere no lock is taken)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_results(
    source: str | os.PathLike[str] | pd.DataFrame, *, columns: Mapping[str, str] | None = None,
    completed_only: bool = True,
) -> pd.DataFrame:
    """Load sweep results for analysis.

    Parameters
    ----------
    source : path or DataFrame
        A DataFrame; a ``.csv``, ``.json``, ``.jsonl`` or ``.parquet`` file with
        ``params``, ``tokens``, ``loss`` and ``budget`` or ``flops``; or a sweep
        directory written by ``run_sweep(..., store=PATH)`` (readable while it runs).
    columns : mapping, optional
        Renames applied first, from your names to ours, e.g. ``{"n_params": "params"}``.
        Common names are recognised without it (``N``, ``n_params``, ``Model Size``
        for params; ``D``, ``tokens_seen`` for tokens; ``C``, ``compute``, ``Training
        FLOP`` for flops; ``val_loss``, ``eval_loss`` for loss), and without a tokens
        column D is taken as flops / (6 params).
    completed_only : bool, default True
        Keep only completed runs with valid numbers (what the fits use), warning
        about the rest. False returns every run with its ``status`` (``pending``,
        ``failed``...), untouched.

    Returns
    -------
    pandas.DataFrame
        With a ``budget`` column (noisy ``flops`` snapped to budgets when no
        ``budget`` is given). Other columns are kept.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"N": [1e6, 2e6, 4e6], "D": [1.7e11, 8.3e10, 4.2e10],
    ...                    "flops": [1.02e18, 0.99e18, 1.0e18], "loss": [3.1, 3.0, 3.05]})
    >>> load_results(df, columns={"N": "params", "D": "tokens"})["budget"].tolist()
    [1e+18, 1e+18, 1e+18]
    """
    func = "load_results"
    if isinstance(source, pd.DataFrame):
        frame = source
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            if not os.path.exists(os.path.join(path, "plan.csv")):
                raise param_error("source", func, "a sweep directory (with plan.csv) or a results file", path)
            frame = SweepStore(path).results()  # reads only: safe while a sweep writes
        elif not os.path.exists(path):
            raise param_error("source", func, "a DataFrame or the path of an existing results file", path)
        else:
            suffix = os.path.splitext(path)[1].lower()
            if suffix not in _READERS:
                raise param_error("source", func, f"a file ending in one of {sorted(_READERS)}", path)
            frame = _READERS[suffix](path)
    else:
        raise param_error("source", func, "a DataFrame, a sweep directory or a path to a .csv/.json/.jsonl/.parquet "
                          "file", type(source).__name__)
    if columns is not None:
        if not isinstance(columns, Mapping):
            raise param_error("columns", func, "a mapping from your column names to flops_fit's", columns)
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise param_error("columns", func, f"names of existing columns ({list(frame.columns)})", absent)
        renamed = [columns.get(c, c) for c in frame.columns]
        clashes = sorted({c for c in renamed if renamed.count(c) > 1})
        if clashes:
            raise param_error("columns", func, "renames that leave column names unique", dict(columns),
                              f"After renaming, {clashes} would appear twice; drop or rename the existing column.")
        frame = frame.rename(columns=dict(columns))
    frame = _apply_aliases(frame)
    return prepare_results(frame, func) if completed_only else frame


def _apply_aliases(frame: pd.DataFrame) -> pd.DataFrame:
    """Rename columns known under other names (``Model Size``, ``val_loss``...) when ours are missing."""
    normal = {str(c).strip().lower().replace(" ", "_").replace("-", "_"): c for c in frame.columns}
    renames = {}
    for ours, names in ALIASES.items():
        if ours in frame.columns:
            continue
        found = [normal[n] for n in names if n in normal and normal[n] not in renames]
        if len(found) == 1:
            renames[found[0]] = ours
    if renames:
        logger.info("load_results: read columns %s", renames)
        frame = frame.rename(columns=renames)
    if "tokens" not in frame.columns and {"params", "flops"} <= set(frame.columns):
        frame = frame.assign(tokens=frame["flops"] / (6 * frame["params"]))  # D = C / 6N
        logger.info("load_results: no tokens column; took D = flops / (6 params)")
    return frame


def load(path: str | os.PathLike[str], **fit_options: Any) -> Any:
    """The :class:`Result` of a sweep directory, at any moment (also while the sweep runs)."""
    from .result import Result

    if not os.path.isdir(path) or not os.path.exists(os.path.join(path, "plan.csv")):
        raise param_error("path", "load", "a sweep directory written by run_sweep(..., store=PATH)", os.fspath(path))
    store = SweepStore(path)
    results = store.results()
    return Result.from_results(results, curves=store.curves(), plan=store.plan(), **fit_options)
