"""The sweep directory: where a sweep's plan, its spec and every finished run are kept, durably.

A sweep directory holds::

    plan.csv              every run ever planned into it (new plans add rows; none are dropped)
    spec.json             the PlanSpec the latest plan was made with
    sweep.json            the sweep's identity: how its runs are made (mode, seed and law, or training
                          settings) and the model settings; one directory holds one sweep
    runs/<run_id>.json    one record per finished run: completed, diverged or failed
    curves/<run_id>.csv   that run's loss curve
    claims/<run_id>.claim which worker is running it now (host, pid), refreshed while it runs

Guarantees of :class:`SweepStore`:

- A record appears only when whole (written to a temporary file, flushed to disk, then
  renamed over its final name, which is atomic on POSIX and Windows), and the curve is
  written before the record, so a run with a record has its curve. A run without a
  record has not finished and will run again.
- One sweep per directory: a sweep made another way (another seed, law, mode, training
  setting or model setting) is refused, so a fit never mixes settings.
- Each run is claimed before it runs (:class:`~flops_fit.claims.Claims`), so workers that
  share the directory (several processes, hosts on a shared filesystem) each run it once.
- A record or curve that cannot be read is named in a warning and moved to ``corrupt/``
  beside it, and its run runs again. Only the store's own temporary files are removed.
- Records are JSON and CSV, never pickle, and nothing read from the directory is run as code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._checks import param_error, warn
from .claims import Claims, alive
from .ids import bad_run_ids
from .spec import PlanSpec
from .schema import CURVE_COLUMNS, Status

logger = logging.getLogger(__name__)
# the temporary files write_atomic makes: .<final name>.<writer pid>.<8 random characters>.tmp
_OUR_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp")
_OUR_FILES = {"": ("plan.csv", "spec.json", "sweep.json"), "runs": (".json",), "curves": (".csv",)}


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
            raise param_error("store", "run_sweep", "a directory path (created if missing)", os.fspath(path),
                              "A file of that name is in the way; give a directory.")
        self.claims = Claims(self.path / "claims")
        if writer:
            for folder in ("runs", "curves", "claims"):
                (self.path / folder).mkdir(parents=True, exist_ok=True)
            self._remove_dead_writers_files()

    def _remove_dead_writers_files(self) -> None:
        """Delete temporary files that write_atomic left in this store's own folders when its writer died
        mid-write; never a live writer's, never another tool's."""
        for folder, finals in _OUR_FILES.items():
            for stale in (self.path / folder).glob(".*.tmp"):
                match = _OUR_TEMP.fullmatch(stale.name)
                name = match["name"] if match else ""
                if not match or not (name in finals if folder == "" else name.endswith(finals)):
                    continue  # not ours
                if not alive(int(match["pid"])):
                    stale.unlink(missing_ok=True)

    # -- one sweep per directory ------------------------------------------------------------------
    def check_identity(self, identity: Mapping[str, Any], func: str = "run_sweep") -> None:
        """Make this directory the home of the sweep ``identity`` describes, or refuse: a directory holds
        one sweep. ``identity`` is ``{"run": how each run is made, "model": the model settings}``; a record's
        ``identity`` column holds its ``"run"`` part as JSON."""
        wanted = json.loads(json.dumps(identity, sort_keys=True, default=str))
        with _locked(self.path / ".plan.lock"):
            path = self.path / "sweep.json"
            if path.exists():
                stored = _read_json(path, "sweep.json")
            else:  # a directory from before sweep.json: what its records and plan say
                stored = self._found_identity(wanted)
            differ = _differences(stored, wanted)
            if differ:
                raise param_error(
                    "store", func, "a directory for this sweep alone", os.fspath(self.path),
                    f"It holds a sweep made another way ({'; '.join(differ)}). One directory keeps one sweep, "
                    "so a fit never mixes settings: give this one its own directory (store=...), or delete "
                    "that one to start over.")
            if not path.exists():
                write_atomic(path, json.dumps(wanted, indent=1, sort_keys=True))

    def _found_identity(self, wanted: Mapping[str, Any]) -> dict[str, Any]:
        """The identity an older directory's records and plan show (parts they do not show are taken as
        ``wanted``'s); a directory that already mixes sweeps raises."""
        found: dict[str, Any] = {}
        runs, models = record_kinds(self.finished()), plan_models(self.plan())
        if len(runs) == 1:
            found["run"] = json.loads(runs[0])
        if len(models) == 1:
            found["model"] = models[0]
        self._refuse_mixed(runs, models)
        return {**wanted, **found}

    def _refuse_mixed(self, runs: list[str], models: list[dict[str, Any]]) -> None:
        if len(runs) > 1 or len(models) > 1:
            kinds = runs if len(runs) > 1 else [json.dumps(m, sort_keys=True) for m in models]
            raise ValueError(
                f"The sweep directory {os.fspath(self.path)} holds runs made {len(kinds)} different ways "
                f"({' | '.join(kinds)}); written before flops_fit kept one sweep per directory. A fit would mix "
                "them, so none is made. Move each kind's runs/<run_id>.json and curves/<run_id>.csv (their "
                "'identity', 'size_param' and 'model_kwargs' say which) into a directory of its own.")

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
        _check_run_ids(plan["run_id"])
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
        return PlanSpec.from_dict(_read_json(path, "spec.json"), "SweepStore.spec")

    # -- records ------------------------------------------------------------------------------
    def write_run(self, record: Mapping[str, Any], curve: pd.DataFrame | None = None) -> None:
        """Store one finished run: its curve first, then its record (the record marks it finished)."""
        run_id = str(record["run_id"])
        _check_run_ids([run_id])
        if curve is not None:
            write_atomic(self.path / "curves" / f"{run_id}.csv", curve.to_csv(index=False))
        write_atomic(self.path / "runs" / f"{run_id}.json",
                      json.dumps({k: _plain(v) for k, v in record.items()}, indent=1, default=str))

    def record(self, run_id: str) -> dict[str, Any] | None:
        """The record of one run, or None when it has none (not finished, or unreadable and set aside)."""
        path = self.path / "runs" / f"{run_id}.json"
        return self._read_record(path) if path.exists() else None

    def record_version(self, run_id: str) -> int | None:
        """When the run's record was last written (ns), or None: tells a rewritten record from the old one."""
        try:
            return (self.path / "runs" / f"{run_id}.json").stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def _read_record(self, path: Path) -> dict[str, Any] | None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or not record.get("run_id") or "status" not in record:
                raise ValueError("not a run record (no run_id or status)")
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError) as exc:
            self._set_aside(path, exc)
            return None
        return record

    def finished(self) -> pd.DataFrame:
        """One row per stored record, with whatever columns the records hold; unreadable ones are set aside."""
        records = [r for r in map(self._read_record, sorted((self.path / "runs").glob("*.json"))) if r is not None]
        frame = pd.DataFrame(records)
        if "run_id" in frame.columns:
            frame["run_id"] = frame["run_id"].astype(str)
            curves = {p.stem for p in (self.path / "curves").glob("*.csv")}
            lost = sorted(set(frame["run_id"]) - curves)
            if lost:
                warn(f"Sweep directory {os.fspath(self.path)}: {len(lost)} finished run(s) have no curve in curves/ "
                     f"(removed by hand?): {lost[:5]}. Their losses are used; their curves are missing.")
        return frame

    def results(self) -> pd.DataFrame:
        """The plan with each finished run's outcome; runs without a record have status ``pending``.

        A directory written before one sweep was kept per directory, that mixes runs made different
        ways, raises instead: a fit must not mix them."""
        plan, done = self.plan(), self.finished()
        self._refuse_mixed(record_kinds(done), plan_models(plan))
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

    def curve(self, run_id: str) -> pd.DataFrame:
        """One finished run's curve (empty when it has none, or it cannot be read)."""
        try:
            return pd.read_csv(self.path / "curves" / f"{run_id}.csv", dtype={"run_id": str})
        except (OSError, ValueError, UnicodeDecodeError):
            return pd.DataFrame(columns=CURVE_COLUMNS)

    def curves(self) -> pd.DataFrame:
        """Every finished run's curve; unreadable ones are set aside (with their record, so they run again),
        and curves of runs with no record (stopped part-way, not running now) are left out with a warning."""
        recorded = {p.stem for p in (self.path / "runs").glob("*.json")}
        running = self.claims.held()
        frames, orphans = [], []
        for path in sorted((self.path / "curves").glob("*.csv")):
            if path.stem not in recorded:
                if path.stem not in running:
                    orphans.append(path.stem)
                continue
            try:
                frame = pd.read_csv(path, dtype={"run_id": str})
                missing = [c for c in CURVE_COLUMNS if c not in frame.columns]
                if missing:
                    raise ValueError(f"not a curve (no columns {missing})")
            except FileNotFoundError:
                continue
            except (ValueError, UnicodeDecodeError) as exc:  # pandas' parser errors are ValueErrors
                self._set_aside(path, f"{exc}; its record is moved aside with it")
                self._set_aside(self.path / "runs" / f"{path.stem}.json", None)
                continue
            if not frame.empty:
                frames.append(frame)
        if orphans:
            warn(f"Sweep directory {os.fspath(self.path)}: {len(orphans)} curve(s) have no record in runs/ (runs "
                 f"stopped part-way; they run again): {orphans[:5]}. Left out.")
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CURVE_COLUMNS)

    def _set_aside(self, path: Path, why: object) -> None:
        """Move an unreadable file to ``corrupt/`` beside it, so its run runs again; warn, naming it (unless
        ``why`` is None: a record that goes with its unreadable curve)."""
        target = path.parent / "corrupt" / path.name
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
            where = f"moved it to {target}; its run will run again"
        except FileNotFoundError:
            return
        except OSError as exc:  # a read-only directory: leave it, skip it
            where = f"could not move it aside ({exc}); it is skipped"
        if why is not None:
                warn(f"Sweep directory file {path} cannot be read ({why}); {where}.")

def model_identity(size_param: str, model_kwargs: Any) -> dict[str, Any]:
    """The model part of a sweep's identity: the size knob and the fixed settings (as a plan records them)."""
    settings = model_kwargs
    if isinstance(settings, str):
        with contextlib.suppress(ValueError):
            settings = json.loads(settings)
    return {"size_param": size_param or None, "model_kwargs": settings}


def plan_models(plan: pd.DataFrame) -> list[dict[str, Any]]:
    """The distinct model settings (:func:`model_identity`) a plan's rows record; none when it records none."""
    columns = [c for c in ("size_param", "model_kwargs") if c in plan.columns]
    if plan.empty or not columns:
        return []
    rows = plan[columns].astype(object).where(plan[columns].notna(), None).drop_duplicates()
    return [model_identity(str(r.get("size_param") or ""), r.get("model_kwargs")) for r in rows.to_dict("records")]


def record_kinds(done: pd.DataFrame) -> list[str]:
    """The distinct ways (``identity`` JSON) the records of a sweep directory were made."""
    return [] if "identity" not in done.columns else sorted(done["identity"].dropna().astype(str).unique())


def _check_run_ids(run_ids: Any) -> None:
    bad = bad_run_ids(run_ids)
    if bad:
        raise param_error("plan", "run_sweep", "a plan whose run_id values can name files (letters, digits, '_', "
                          "'-', '.'; not starting with '.')", bad[:5],
                          "Run ids become file names in the sweep directory; make them with plan_sweep().")


def _read_json(path: Path, name: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} cannot be read ({exc}). Restore it, or delete the sweep directory's {name} "
                         "if you know which sweep it holds (the next run writes it again).") from None


def _differences(stored: Any, wanted: Any, prefix: str = "") -> list[str]:
    """``key: there … here …`` for each part where two identities differ (None, unknown, matches anything)."""
    if isinstance(stored, dict) and isinstance(wanted, dict) and set(stored) == set(wanted):
        return [d for key in sorted(stored)
                for d in _differences(stored[key], wanted[key], f"{prefix}{key}.")]
    if stored is None or wanted is None or stored == wanted:
        return []
    return [f"{prefix.rstrip('.')}: {stored!r} there, {wanted!r} here"]


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
