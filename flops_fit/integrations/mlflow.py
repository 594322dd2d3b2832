"""MLflow, both ways: :class:`MLflowCallback` logs a sweep's runs; :func:`read_mlflow` reads an experiment back.

Each sweep run becomes an MLflow run of the experiment, named ``d_model=64 @ 1e+17``, with
the plan row and how runs are made as parameters, the loss curve as metrics (``train_loss``
and ``lr`` by step, ``loss_by_tokens`` by tokens), the final held-out ``loss`` and the other
outcome numbers as final metrics, and ``flops_fit.run_id``, ``flops_fit.sweep``,
``flops_fit.status`` (and ``flops_fit.error``) as tags. Only :class:`mlflow.MlflowClient` is
used, never MLflow's global active run, so a user's own MLflow logging is left alone.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pandas as pd

from .. import _deps
from .._checks import param_error
from .runs import IDENTITY_KEY, RUN_KEY, SWEEP_KEY, TRACKER_STATUS, results_frame
from .tracker import TrackerCallback, run_name

logger = logging.getLogger(__name__)
_MAX_PARAMS, _MAX_METRICS, _MAX_PARAM_CHARS = 100, 1000, 6000  # MLflow's limits per log_batch / value
_NO_LINKS = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
_QUIET = threading.Lock()


class MLflowCallback(TrackerCallback):
    """Log every run of a sweep to MLflow: pass it as ``callbacks=[MLflowCallback(...)]`` to
    :func:`~flops_fit.run_sweep`, :func:`~flops_fit.find_optimal` or the sweep designer.

    Parameters
    ----------
    experiment : str, default "flops_fit"
        The experiment's name (made if it does not exist) or id.
    tracking_uri : str, optional
        The tracking server (``http://127.0.0.1:5000``) or store; default MLflow's own
        (``MLFLOW_TRACKING_URI``). A server that does not answer within
        ``connect_timeout_s`` is an error here, before any run trains.
    sweep : str, optional
        The name the sweep's runs are tagged with (``flops_fit.sweep``); default the sweep
        directory's name, or ``sweep-`` and a hash of the sweep's settings. A sweep run
        again (resumed, or failures retried) finds its runs by this name and their
        ``run_id``: a run trained again replaces its earlier MLflow run (deleted to MLflow's
        trash, where it can be restored), runs that finished before are not logged twice, and
        finished runs the experiment lacks (a first part run without this callback) are logged
        from the sweep directory.
    flush_timeout_s : float, default 60
        How long the end of a sweep waits for the logging to catch up.
    batch_s : float, default 1
        Step metrics are sent in batches at most this often.
    connect_timeout_s : float, default 5
        How long to wait for the server to answer when the callback is made.

    Examples
    --------
    >>> import tempfile
    >>> from flops_fit import load_results, plan_sweep, run_sweep
    >>> from flops_fit.examples import GPT
    >>> uri = "sqlite:///" + tempfile.mkdtemp() + "/mlflow.db"  # or a server: "http://127.0.0.1:5000"
    >>> plan = plan_sweep(GPT, "d_model", [1e15, 1e16], model_kwargs={"vocab_size": 256})
    >>> results = run_sweep(plan, callbacks=[MLflowCallback("demo", tracking_uri=uri)])  # doctest: +SKIP
    >>> back = load_results(mlflow="demo", tracking_uri=uri)  # doctest: +SKIP
    >>> sorted(back["run_id"]) == sorted(results["run_id"])  # doctest: +SKIP
    True

    (Skipped here: MLflow's first SQLite store takes 15 s to create; tests/test_trackers_mlflow.py runs
    the same against a real tracking server.)
    """

    def __init__(self, experiment: str = "flops_fit", *, tracking_uri: str | None = None, sweep: str | None = None,
                 flush_timeout_s: float = 60.0, batch_s: float = 1.0, connect_timeout_s: float = 5.0) -> None:
        func = "MLflowCallback"
        super().__init__(sweep=sweep, flush_timeout_s=flush_timeout_s, batch_s=batch_s, func=func)
        self._client, self.tracking_uri = connect(tracking_uri, connect_timeout_s, func)
        self.experiment_id = find_experiment(self._client, experiment, self.tracking_uri, func, "experiment",
                                             create=True)
        self._found: dict[str, str] | None = None  # run_id -> the MLflow run this sweep logged for it before
        self._ended: set[str] = set()  # the run_ids whose MLflow run ended (finished or failed)

    def _begin(self) -> None:
        self._found, self._ended = {}, set()
        for run in all_runs(self._client, self.experiment_id, f"tags.`{SWEEP_KEY}` = '{_quote(self._name)}'"):
            tags = run.data.tags
            if tags.get(IDENTITY_KEY, "") == self._identity_text() and RUN_KEY in tags:
                self._found[tags[RUN_KEY]] = run.info.run_id
                if run.info.status in ("FINISHED", "FAILED"):
                    self._ended.add(tags[RUN_KEY])

    def _holds(self, run_id: str) -> bool:
        return run_id in self._ended

    def _open(self, row: dict[str, Any], params: dict[str, Any], tags: dict[str, str]) -> str:
        if self._found is None:
            self._begin()
        earlier = self._found.pop(str(row["run_id"]), None)
        if earlier is not None:  # trained again (resumed after a stop, or a failure retried): one run per run_id
            self._client.delete_run(earlier)
            tags = {**tags, "flops_fit.replaces": earlier}
            logger.info("MLflowCallback: run %s is trained again; its earlier MLflow run %s went to the trash",
                        row["run_id"], earlier)
        handle = self._client.create_run(self.experiment_id, tags=tags, run_name=run_name(row)).info.run_id
        entities = _deps.tracker("mlflow").entities
        texts = [entities.Param(key, _text(value)) for key, value in params.items()]
        for start in range(0, len(texts), _MAX_PARAMS):
            self._client.log_batch(handle, params=texts[start:start + _MAX_PARAMS])
        return handle

    def _log(self, handle: str, metrics: list[tuple[str, float, int]]) -> None:
        entities = _deps.tracker("mlflow").entities
        now = int(time.time() * 1000)
        values = [entities.Metric(key, value, now, step) for key, value, step in metrics]
        for start in range(0, len(values), _MAX_METRICS):
            self._client.log_batch(handle, metrics=values[start:start + _MAX_METRICS])

    def _end(self, handle: str, final: dict[str, float], tags: dict[str, str], ended: str) -> None:
        entities = _deps.tracker("mlflow").entities
        now = int(time.time() * 1000)
        self._client.log_batch(handle, metrics=[entities.Metric(k, v, now, 0) for k, v in final.items()],
                               tags=[entities.RunTag(k, v) for k, v in tags.items()])
        with _QUIET:  # MLflow prints a link per ended run to stdout; one sweep would print dozens into a cell
            before = os.environ.get(_NO_LINKS)
            os.environ[_NO_LINKS] = "true"
            try:
                self._client.set_terminated(handle, status=ended)
            finally:
                if before is None:
                    os.environ.pop(_NO_LINKS, None)
                else:
                    os.environ[_NO_LINKS] = before


def read_mlflow(experiment: str, tracking_uri: str | None = None, *, sweep: str | None = None,
                func: str = "load_results", connect_timeout_s: float = 5.0) -> pd.DataFrame:
    """The runs of an MLflow experiment as a results frame: parameters and final metrics as columns, plus
    ``run_id``, ``status``, ``error``, ``sweep`` and ``identity`` from flops_fit's tags (runs that flops_fit
    did not log keep their own names, for :func:`~flops_fit.load_results` to recognise). Deleted runs are
    left out; an experiment with several flops_fit sweeps needs ``sweep``."""
    client, uri = connect(tracking_uri, connect_timeout_s, func)
    experiment_id = find_experiment(client, experiment, uri, func, "mlflow", create=False)
    rows = []
    for run in all_runs(client, experiment_id, ""):
        tags = run.data.tags
        row: dict[str, Any] = {**run.data.params, **run.data.metrics, "mlflow_run_id": run.info.run_id}
        row["run_id"] = tags.get(RUN_KEY, row.get("run_id", run.info.run_id))
        for key, column in ((SWEEP_KEY, "sweep"), (IDENTITY_KEY, "identity"), ("flops_fit.error", "error")):
            if key in tags:
                row[column] = tags[key]
        if "status" not in row:
            row["status"] = tags.get("flops_fit.status", TRACKER_STATUS.get(str(run.info.status).lower(), "failed"))
        rows.append(row)
    return results_frame(rows, sweep=sweep, source=f"MLflow experiment {experiment!r} at {uri}", func=func,
                         parameter="mlflow")


# -- connecting ---------------------------------------------------------------------------------------------
def connect(tracking_uri: str | None, timeout: float, func: str) -> tuple[Any, str]:
    """An :class:`mlflow.MlflowClient` and its URI, after making sure an HTTP server answers within ``timeout``
    seconds (MLflow's own client retries for minutes before it gives up)."""
    mlflow = _deps.tracker("mlflow")
    if tracking_uri is not None and (not isinstance(tracking_uri, str) or not tracking_uri.strip()):
        raise param_error("tracking_uri", func, "an MLflow tracking URI such as 'http://127.0.0.1:5000', or None",
                          tracking_uri)
    uri = tracking_uri or mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        except urllib.error.HTTPError:
            pass  # it answered (a proxy in front may not serve /health)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConnectionError(str(param_error(
                "tracking_uri", func, "the address of a running MLflow tracking server", uri,
                f"Nothing answered there within {timeout:g} s ({reason}). Start one, e.g. `mlflow server "
                "--backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000`, or check the address."))
            ) from None
    return mlflow.MlflowClient(tracking_uri=uri), uri


def find_experiment(client: Any, experiment: Any, uri: str, func: str, parameter: str, *, create: bool) -> str:
    """The id of ``experiment`` (a name or an id); made when ``create``, else an error listing what exists."""
    if not isinstance(experiment, str) or not experiment.strip():
        raise param_error(parameter, func, "the name (or id) of an MLflow experiment", experiment)
    try:
        found = client.get_experiment_by_name(experiment)
    except Exception as exc:  # something answered that is not an MLflow server (a proxy, another service)
        raise ConnectionError(str(param_error(
            "tracking_uri", func, "the address of an MLflow tracking server", uri,
            f"Something answered there, but not as MLflow does ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}). Check "
            "the address and port."))) from None
    if found is None and experiment.isdigit():
        try:
            found = client.get_experiment(experiment)
        except Exception:  # MLflow raises for an unknown id
            found = None
    if found is not None and found.lifecycle_stage == "deleted":
        raise param_error(parameter, func, "an experiment that is not deleted", experiment,
                          f"It is in MLflow's trash at {uri}: restore it (`mlflow experiments restore "
                          f"--experiment-id {found.experiment_id}`) or use another name.")
    if found is not None:
        return str(found.experiment_id)
    if create:
        return str(client.create_experiment(experiment))
    names = [e.name for e in client.search_experiments(max_results=20)]
    raise param_error(parameter, func, "the name or id of an existing MLflow experiment", experiment,
                      f"The tracking server at {uri} has: {names}.")


def all_runs(client: Any, experiment_id: str, filter_string: str) -> list[Any]:
    """Every active run of the experiment that matches ``filter_string``, page by page."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _quote(text: str | None) -> str:
    return (text or "").replace("\\", "\\\\").replace("'", "\\'")


def _text(value: Any) -> str:
    """A parameter as MLflow keeps it: floats in full (``repr``), containers as JSON, at most 6000 characters."""
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    return text[:_MAX_PARAM_CHARS]
