"""The sweep directory: where a sweep's plan, its spec and every finished run are kept, durably.

A sweep directory holds::

    plan.csv              every run ever planned into it (new plans add rows; none are dropped)
    spec.json             the PlanSpec the latest plan was made with
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
from .spec import PlanSpec
from .schema import CURVE_COLUMNS, Status

logger = logging.getLogger(__name__)


def write_atomic(path: Path, text: str) -> None:
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
        """Every run planned into this directory (empty when none), as :func:`~flops_fit.plan_sweep` made it."""
        path = self.path / "plan.csv"
        if not path.exists():
            return pd.DataFrame()
        # run ids are hex strings: one made only of digits must not turn into a number; settings stay text
        plan = pd.read_csv(path, dtype={"run_id": str, "size_param": str, "model_kwargs": str})
        if "tokens_per_sample" in plan.columns:
            plan["tokens_per_sample"] = plan["tokens_per_sample"].astype("Int64")
        return plan

    def add_plan(self, plan: pd.DataFrame, spec: PlanSpec | None = None) -> None:
        """Add the plan's runs to ``plan.csv`` (runs already there keep their row) and store ``spec``.

        Two sweeps adding plans at once take turns (a lock file), so neither's rows are lost.
        """
        with _locked(self.path / ".plan.lock"):
            old = self.plan()
            merged = plan if old.empty else pd.concat([old, plan[~plan["run_id"].isin(old["run_id"])]],
                                                       ignore_index=True)
            write_atomic(self.path / "plan.csv", merged.to_csv(index=False))
            if spec is not None:
                write_atomic(self.path / "spec.json", json.dumps(spec.to_dict(), indent=1))

    def spec(self) -> PlanSpec | None:
        """The :class:`~flops_fit.PlanSpec` the plan was made with (None when none was stored)."""
        path = self.path / "spec.json"
        if not path.exists():
            return None
        return PlanSpec.from_dict(json.loads(path.read_text(encoding="utf-8")), "SweepStore.spec")

    # -- records ------------------------------------------------------------------------------
    def write_run(self, record: Mapping[str, Any], curve: pd.DataFrame | None = None) -> None:
        """Store one finished run: its curve first, then its record (the record marks it finished)."""
        run_id = str(record["run_id"])
        if curve is not None:
            write_atomic(self.path / "curves" / f"{run_id}.csv", curve.to_csv(index=False))
        write_atomic(self.path / "runs" / f"{run_id}.json",
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
            return plan.assign(status=Status.PENDING.value)
        own = ("status", "flops")  # what a record says about these wins over the plan
        outcome = done[["run_id", *[c for c in done.columns if c not in plan.columns or c in own]]]
        merged = plan.merge(outcome, on="run_id", how="outer", suffixes=("_planned", ""))
        merged["status"] = merged["status"].fillna(Status.PENDING.value)
        if "flops_planned" in merged.columns:  # a pending run shows the FLOPs it is planned to spend
            merged["flops"] = merged["flops"].fillna(merged.pop("flops_planned"))
        return merged.drop(columns=["status_planned"], errors="ignore")

    def curves(self) -> pd.DataFrame:
        frames = [pd.read_csv(path, dtype={"run_id": str}) for path in sorted((self.path / "curves").glob("*.csv"))]
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CURVE_COLUMNS)


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
