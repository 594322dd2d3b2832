"""Reading results: a DataFrame, or a CSV / JSON / Parquet file of anyone's runs."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pandas as pd

from ._checks import param_error
from .analyzer import prepare_results

_READERS = {
    ".csv": pd.read_csv,
    ".json": pd.read_json,
    ".jsonl": lambda path: pd.read_json(path, lines=True),
    ".parquet": pd.read_parquet,
}


def load_results(
    source: str | os.PathLike[str] | pd.DataFrame, *, columns: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Load sweep results for analysis.

    Parameters
    ----------
    source : path or DataFrame
        A DataFrame, or a ``.csv``, ``.json``, ``.jsonl`` or ``.parquet`` file, with
        ``params``, ``tokens``, ``loss`` and ``budget`` or ``flops``.
    columns : mapping, optional
        Renames applied first, from your names to ours, e.g. ``{"n_params": "params"}``.

    Returns
    -------
    pandas.DataFrame
        The completed runs with valid numbers and a ``budget`` column (noisy
        ``flops`` snapped to budgets when no ``budget`` is given). Other columns
        are kept.

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
        if not os.path.exists(path):
            raise param_error("source", func, "a DataFrame or the path of an existing results file", path)
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in _READERS:
            raise param_error("source", func, f"a file ending in one of {sorted(_READERS)}", path)
        frame = _READERS[suffix](path)
    else:
        raise param_error("source", func, "a DataFrame or a path to a .csv/.json/.jsonl/.parquet file",
                          type(source).__name__)
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
    return prepare_results(frame, func)
