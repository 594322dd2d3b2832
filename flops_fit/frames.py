"""Results frames from anywhere: a DataFrame, anyone's CSV/JSON/Parquet, or a sweep directory.

:func:`load_results` reads them and recognises the names other tools give our columns;
:func:`prepare_results` checks a frame and keeps the rows a fit can use; noisy FLOP counts
are snapped to budgets by :func:`snap_budgets`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from ._checks import param_error, warn
from .errors import FitWarning
from .integrations.mlflow import read_mlflow
from .integrations.wandb import read_wandb
from .schema import Status
from .store import SweepStore

logger = logging.getLogger(__name__)
_READERS = {
    ".csv": pd.read_csv,
    ".json": pd.read_json,
    ".jsonl": lambda path: pd.read_json(path, lines=True),
    ".parquet": pd.read_parquet,
}
# names other tools give our columns (lower-cased, spaces and dashes as underscores), tried when ours is absent
ALIASES = {
    "params": ["n", "n_params", "num_params", "nparams", "parameters", "model_size", "model_params", "size_params"],
    "tokens": ["d", "n_tokens", "num_tokens", "tokens_seen", "train_tokens", "training_tokens", "dataset_size"],
    "flops": ["c", "compute", "training_flop", "training_flops", "train_flops", "total_flops", "flop"],
    "loss": ["val_loss", "eval_loss", "validation_loss", "final_loss", "test_loss"],
    "budget": ["compute_budget", "flops_budget", "target_flops"],
}


def load_results(
    source: str | os.PathLike[str] | pd.DataFrame | None = None, *, columns: Mapping[str, str] | None = None,
    completed_only: bool = True, mlflow: str | None = None, wandb: str | os.PathLike[str] | None = None,
    tracking_uri: str | None = None, sweep: str | None = None,
) -> pd.DataFrame:
    """Load sweep results for analysis.

    Parameters
    ----------
    source : path or DataFrame
        A DataFrame; a ``.csv``, ``.json``, ``.jsonl`` or ``.parquet`` file with
        ``params``, ``tokens``, ``loss`` and ``budget`` or ``flops``; or a sweep
        directory written by ``run_sweep(..., store=PATH)`` (readable while it runs).
        Or, instead of ``source``, an experiment tracker:
    mlflow : str, optional
        The name or id of an MLflow experiment (at ``tracking_uri``): each run is a row, its
        parameters and final metrics the columns (see :mod:`flops_fit.integrations`).
    wandb : str or path, optional
        ``"entity/project"`` (read through W&B's API: needs an account and the network), a
        W&B runs export ``.csv``, or a local ``wandb`` directory of offline runs.
    tracking_uri : str, optional
        With ``mlflow``: the tracking server, e.g. ``"http://127.0.0.1:5000"``; default MLflow's own.
    sweep : str, optional
        With a tracker that holds several flops_fit sweeps: the name of the one to read.
    columns : mapping, optional
        Renames applied first, from your names to ours, e.g. ``{"n_params": "params"}``.
        Common names are recognised without it (``N``, ``n_params``, ``Model Size``
        for params; ``D``, ``tokens_seen`` for tokens; ``C``, ``compute``, ``Training
        FLOP`` for flops; ``val_loss``, ``eval_loss`` for loss), and without a tokens
        column D is taken as flops / (6 params).
    completed_only : bool, default True
        Keep only completed runs with valid numbers (what the fits use), warning
        about the rest. False returns every run with its ``status`` (``pending``,
        ``failed``...), untouched. With True, a sweep directory where no run has
        completed yet is an error that says how many runs are planned and still to run.

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
    tracker = _tracker_of(source, mlflow, wandb, tracking_uri, sweep, func)
    if tracker is not None:
        frame = tracker
    elif isinstance(source, pd.DataFrame):
        frame = source
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            if not os.path.exists(os.path.join(path, "plan.csv")):
                raise param_error("source", func, "a sweep directory (with plan.csv) or a results file", path)
            frame = SweepStore(path).results()  # reads only: safe while a sweep writes
            if completed_only:
                _require_finished(frame, path, func)
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
    if tracker is not None:
        _require_columns(frame, "mlflow" if mlflow is not None else "wandb", func)
    return prepare_results(frame, func) if completed_only else frame


def _tracker_of(source: object, mlflow: str | None, wandb: object, tracking_uri: str | None, sweep: str | None,
                func: str) -> pd.DataFrame | None:
    """The runs of the experiment tracker named by ``mlflow`` or ``wandb`` (None when neither is given)."""
    given = [name for name, value in (("source", source), ("mlflow", mlflow), ("wandb", wandb)) if value is not None]
    if len(given) != 1:
        raise param_error("source", func, "given alone, or replaced by one of mlflow= or wandb=", given or None,
                          "Pass a DataFrame or path as source, or mlflow='experiment', or wandb='entity/project'.")
    if tracking_uri is not None and mlflow is None:
        raise param_error("tracking_uri", func, "given only with mlflow=", tracking_uri)
    if sweep is not None and source is not None:
        raise param_error("sweep", func, "given only with mlflow= or wandb=", sweep,
                          "A sweep directory or file holds one sweep; filter a DataFrame yourself.")
    if mlflow is not None:
        return read_mlflow(mlflow, tracking_uri, sweep=sweep, func=func)
    if wandb is not None:
        return read_wandb(wandb, sweep=sweep, func=func)
    return None


def _require_columns(frame: pd.DataFrame, parameter: str, func: str) -> None:
    """Tracker runs without what a fit needs: name the missing columns and what the runs do hold."""
    missing = _missing_columns(frame)
    if missing:
        held = sorted(str(c) for c in frame.columns)
        raise param_error(parameter, func, "runs that log params, tokens, loss and budget (or flops)",
                          f"{len(frame)} runs without {missing}",
                          f"They hold: {held[:40]}{' ...' if len(held) > 40 else ''}. Log these as parameters or "
                          "final metrics, or map your names: load_results(..., columns={'val/loss': 'loss'}).")


def _missing_columns(frame: pd.DataFrame, budgets: bool = True) -> list[str]:
    """What a fit needs that ``frame`` lacks: ``params``, ``tokens``, ``loss`` and (with ``budgets``) ``budget`` or
    ``flops``."""
    missing = [c for c in ("params", "tokens", "loss") if c not in frame.columns]
    if budgets and "budget" not in frame.columns and "flops" not in frame.columns:
        missing.append("budget (or flops)")
    return missing


def _require_finished(frame: pd.DataFrame, path: str, func: str) -> None:
    """A sweep directory with no completed run yet: say so, and how many runs wait, instead of a missing column."""
    status = frame["status"].astype("string").str.strip().str.lower() if "status" in frame.columns else None
    if status is not None and (status == Status.COMPLETED.value).any():
        return
    counts = {} if status is None else status.value_counts().to_dict()
    waiting = sum(counts.get(s.value, 0) for s in (Status.PENDING, Status.RUNNING))
    others = {k: v for k, v in counts.items() if k not in (Status.PENDING.value, Status.RUNNING.value)}
    raise param_error(
        "source", func, "a sweep directory with at least one finished run", path,
        f"{'No run has completed' if others else 'Nothing has finished'} yet in that sweep directory: "
        f"{len(frame)} run(s) planned, 0 completed"
        f"{f' ({others})' if others else ''}{f', {waiting} still to run' if waiting else ''}. Run the sweep first "
        f"(ff-train, or run_sweep(plan, ..., store={path!r})), or pass completed_only=False to see the plan.")


def _apply_aliases(frame: pd.DataFrame) -> pd.DataFrame:
    """Rename columns known under other names (``Model Size``, ``val_loss``, ``FLOPs``...) when ours are missing.

    Our own names match in any case (``Loss``, ``FLOPs``) and win over the other names; a name
    that two columns could mean (``Loss`` and ``LOSS``, or ``val_loss`` and ``eval_loss``) is
    left alone, so the missing column is reported rather than guessed.
    """
    normal: dict[str, list[object]] = {}
    for c in frame.columns:
        normal.setdefault(str(c).strip().lower().replace(" ", "_").replace("-", "_"), []).append(c)
    renames: dict[object, str] = {}
    for ours, names in ALIASES.items():
        if ours in frame.columns:
            continue
        own = [c for c in normal.get(ours, []) if c not in renames]
        found = own if own else [c for n in names for c in normal.get(n, []) if c not in renames]
        if len(found) == 1:
            renames[found[0]] = ours
    if renames:
        logger.info("load_results: read columns %s", renames)
        frame = frame.rename(columns=renames)
    if "tokens" not in frame.columns and {"params", "flops"} <= set(frame.columns):
        frame = frame.assign(tokens=frame["flops"] / (6 * frame["params"]))  # D = C / 6N
        logger.info("load_results: no tokens column; took D = flops / (6 params)")
    return frame


def snap_budgets(flops: Iterable[float], tolerance: float = 0.1, *, warn_func: str = "snap_budgets") -> np.ndarray:
    """Group noisy FLOP counts into budgets.

    Values within ``tolerance`` decades of their neighbour (after sorting) belong to one
    budget when the whole group spans no more than ``tolerance`` decades. Its value is the
    group's geometric mean, rounded to the fewest significant figures (1, 2 or 3) that stay
    within 5 %, 2 % or any distance of it, so runs planned for 1e19 FLOPs that logged
    9.8e18 snap back to 1e19. Neighbours that chain across more than ``tolerance`` decades
    (1e18, 1.2e18, 1.5e18) are not one budget: they are split wherever two differ by more
    than a quarter of ``tolerance`` (about 6 % by default, far above the noise of a logged
    count), with a :class:`FitWarning` naming them.

    Examples
    --------
    >>> snap_budgets([0.98e18, 1.03e18, 1.01e19, 0.99e19, 3.3e19]).tolist()
    [1e+18, 1e+18, 1e+19, 1e+19, 3.3e+19]
    """
    values = np.asarray(list(flops), dtype=float)
    logs = np.log10(values)
    order = np.argsort(logs)
    gaps = np.diff(logs[order])
    group = np.empty(len(values), dtype=int)
    group[order] = np.concatenate([[0], np.cumsum(gaps > tolerance)]) if len(values) else []
    out = np.empty(len(values))
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        spread = float(np.ptp(logs[members]))
        if spread <= tolerance:
            out[members] = _round_budget(10 ** logs[members].mean())
            continue
        # chained neighbours: split where they part by more than noise, and say so
        ranked = members[np.argsort(logs[members], kind="stable")]
        parts = np.concatenate([[0], np.cumsum(np.diff(logs[ranked]) > tolerance / 4)])
        for p in np.unique(parts):  # 3 figures: coarser rounding could merge pieces only 6 % apart again
            out[ranked[parts == p]] = float(f"{10 ** logs[ranked[parts == p]].mean():.3g}")
        distinct = np.unique(values[members])
        named = ", ".join(f"{v:.3g}" for v in distinct[:8]) + (f" ... ({len(distinct)} values)"
                                                                if len(distinct) > 8 else "")
        budgets = np.unique(out[members])
        warn(f"{warn_func}: FLOP counts {named} lie within {tolerance:g} decades of their neighbours but span "
             f"{spread:.2f} decades, so they were not grouped into one budget: they became {len(budgets)} "
             f"budget(s) ({', '.join(f'{b:.3g}' for b in budgets[:8])}{' ...' if len(budgets) > 8 else ''}), "
             "split where neighbours differ by more than "
             f"{100 * (10 ** (tolerance / 4) - 1):.0f} %. Give each run its planned 'budget' column instead.",
             FitWarning)
    return out


def _round_budget(centre: float) -> float:
    for digits, rtol in ((1, 0.05), (2, 0.02)):
        rounded = float(f"{centre:.{digits}g}")
        if abs(rounded / centre - 1) <= rtol:
            return rounded
    return float(f"{centre:.3g}")


def prepare_results(results: pd.DataFrame, func: str = "fit_isoflops", *, budgets: bool = True,
                    allow_empty: bool = False) -> pd.DataFrame:
    """Validate a results frame and return the usable rows with a ``budget`` column.

    Needs ``params``, ``tokens``, ``loss`` and ``budget`` or ``flops``. Rows whose
    ``status`` is not ``completed``, or whose numbers are missing or not positive,
    are left out with a :class:`FitWarning` that says how many and why. With
    ``budgets=False`` (fits that do not group runs by budget) no budget is needed. With
    ``allow_empty=True`` a frame with no usable row (a sweep that has just started) gives an
    empty frame instead of an error.
    """
    if not isinstance(results, pd.DataFrame):
        raise param_error("results", func, "a pandas DataFrame", type(results).__name__,
                          "Load a CSV with flops_fit.load_results(path).")
    required = ["params", "tokens", "loss"]
    missing = _missing_columns(results, budgets)
    if missing:
        raise param_error(
            "results", func, "a DataFrame with columns params, tokens, loss and budget or flops",
            list(results.columns), f"Missing: {missing}. Rename your columns, e.g. "
            "load_results(df, columns={'n_params': 'params'}).",
        )
    frame = results.copy()
    if "status" in frame.columns:
        status = frame["status"].astype("string").str.strip().str.lower()
        bad = (status.notna() & (status != "") & (status != Status.COMPLETED.value)).to_numpy(dtype=bool)
        unfinished = status.isin([Status.PENDING.value, Status.RUNNING.value]).to_numpy(dtype=bool)
        if (bad & ~unfinished).any():  # runs still to come are no surprise while a sweep runs
            counts = status[bad & ~unfinished].value_counts().to_dict()
            warn(f"{func}: left out {int((bad & ~unfinished).sum())} run(s) that did not complete: {counts}.",
                 FitWarning)
        frame = frame.loc[~bad]
    if "run_id" in frame.columns and frame["run_id"].duplicated().any():
        repeated = int(frame["run_id"].duplicated().sum())
        warn(f"{func}: {repeated} run(s) appear more than once (same run_id); kept the last record of each.",
                      FitWarning)
        frame = frame.drop_duplicates("run_id", keep="last")
    for column in [*required, "budget", "flops"]:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    if "run_id" not in frame.columns:
        frame = _drop_copies(frame, func)
    needs_budget = budgets and ("budget" not in frame.columns or frame["budget"].isna().any())
    if needs_budget and "flops" in frame.columns:
        snapped = pd.Series(np.nan, index=frame.index)
        valid = frame["flops"].gt(0) & np.isfinite(frame["flops"])
        if valid.any():
            snapped[valid] = snap_budgets(frame.loc[valid, "flops"], warn_func=func)
        # budgets the user gave win; runs without one get theirs from the FLOPs they spent
        frame["budget"] = frame["budget"].fillna(snapped) if "budget" in frame.columns else snapped
    checked = [*required, "budget"] if budgets else required
    numbers = frame[checked].to_numpy(dtype=float)
    ok = np.isfinite(numbers).all(axis=1) & (numbers > 0).all(axis=1)
    if not ok.all():
        warn(f"{func}: left out {int((~ok).sum())} run(s) with missing, infinite or non-positive "
             f"{'/'.join(checked)}.", FitWarning)
        frame = frame.loc[ok]
    if frame.empty and not allow_empty:
        raise param_error("results", func, "a DataFrame with at least one completed run", "no usable rows")
    return frame.reset_index(drop=True)


def _drop_copies(frame: pd.DataFrame, func: str) -> pd.DataFrame:
    """Without a ``run_id``, rows equal in params, tokens, loss and budget/flops are one run listed twice
    (a concatenated or re-exported file): keep one, and say how many were dropped. Repeats that are real
    runs differ in loss, or carry their own ``run_id``."""
    key = [c for c in ("params", "tokens", "loss", "budget", "flops") if c in frame.columns]
    copies = frame.duplicated(subset=key, keep="first") & frame[key].notna().all(axis=1)  # blanks: left out below
    if copies.any():
        warn(f"{func}: dropped {int(copies.sum())} row(s) identical to another in {', '.join(key)}, so they would "
             "count one run twice. Real repeats (another seed) differ in loss; give runs a 'run_id' to keep "
             "rows as they are.", FitWarning)
        frame = frame.loc[~copies]
    return frame


def require_sizes(frame: pd.DataFrame, func: str, min_points: int) -> None:
    """Every budget needs ``min_points`` distinct sizes for its minimum to show; else the error says which."""
    for budget, group in frame.groupby("budget", sort=True):
        n_sizes = group["params"].nunique()
        if n_sizes < min_points:
            raise param_error("results", func, f"at least {min_points} distinct model sizes at every budget",
                              f"{n_sizes} at budget {budget:.4g}",
                              f"Add runs at that budget or drop it: results[results['budget'] != {budget:.6g}].")


def drop_thin_budgets(frame: pd.DataFrame, func: str, min_sizes: int = 3) -> pd.DataFrame:
    """The usable runs without the budgets that have fewer than ``min_sizes`` distinct sizes (a sweep part-way
    through, or runs that failed), with a :class:`FitWarning` naming them."""
    sizes = frame.groupby("budget")["params"].nunique()
    thin = sizes[sizes < min_sizes].index.tolist()
    if thin:
        warn(f"{func}: left out budget(s) {', '.join(f'{b:.3g}' for b in thin)} with fewer than {min_sizes} "
             "usable sizes.", FitWarning)
    return frame[~frame["budget"].isin(thin)].reset_index(drop=True)


def incomplete_runs(results: pd.DataFrame) -> str:
    """Which planned runs did not complete, and why, in a sentence ("" when all did).

    Examples
    --------
    >>> frame = pd.DataFrame({"status": ["completed", "failed", "pending"], "error": [None, "OOM", None]})
    >>> incomplete_runs(frame)
    '2 of 3 planned runs did not complete: 1 failed (OOM), 1 pending (not run). The fit uses the 1 that did.'
    """
    if "status" not in results.columns or results.empty:
        return ""
    status = results["status"].astype("string").fillna("pending")
    left = status[status != "completed"]
    if left.empty:
        return ""
    parts = []
    for kind, count in left.value_counts().items():
        why = "not run" if kind in ("pending", "running") else ""
        if "error" in results.columns and not why:
            errors = results.loc[left.index[left == kind], "error"].dropna().astype(str)
            if len(errors):
                top = errors.value_counts()
                why = top.index[0][:160] + (f"; {len(top) - 1} other cause(s)" if len(top) > 1 else "")
        parts.append(f"{count} {kind}" + (f" ({why})" if why else ""))
    return (f"{len(left)} of {len(results)} planned runs did not complete: {', '.join(parts)}. "
            f"The fit uses the {len(results) - len(left)} that did.")
