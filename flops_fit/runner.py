"""run_sweep(): execute a plan, durably and resumably, here or on any concurrent.futures executor."""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import pickle
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from ._checks import check_choice, check_seed, param_error, warn
from .mock import CURVE_COLUMNS, PlantedLaw, check_law, simulate_run
from .store import FINISHED, SweepStore
from .trainer import Callback, RunAbandoned, TrainConfig, emitter

logger = logging.getLogger(__name__)

MODES = ("mock", "local")
RESULT_COLUMNS = ["loss", "tokens_trained", "epochs", "steps", "wall_time", "tokens_per_second", "flops_per_second",
                  "utilisation", "device", "error"]
_PLAN_REQUIRED = ["run_id", "budget", "size", "params", "flops_per_token", "tokens"]


@dataclass
class RunJob:
    """Everything one run needs, picklable so that any executor can run it: ``job(row) -> (outcome, curve)``."""

    mode: str
    law: PlantedLaw
    seed: int
    model_cls: Any = None
    train_data: Any = None
    eval_data: Any = None
    loss_fn: Any = None
    config: TrainConfig | None = None
    param: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    sample_tokens: int = 1  # tokens one sample counts for, read once from the dataset the user gave

    def identity(self) -> dict[str, Any]:
        """What, besides the run_id, decides a run's outcome; a stored record must match it to be reused."""
        if self.mode == "mock":
            return {"mode": "mock", "seed": self.seed, "law": asdict(self.law)}
        from .trainer import describe

        return {"mode": "local", "training": describe(self.config), "tokens_per_sample": self.sample_tokens}

    def build(self, size: int) -> Any:
        import torch

        torch.manual_seed(self.config.seed if self.config else 0)  # the same init for a size whatever ran before
        return self.model_cls(**{**self.model_kwargs, self.param: int(size)})

    def __call__(self, row: Mapping[str, Any], callbacks: Sequence[Callback] = (),
                 should_stop: Callable[[], bool] | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
        start = time.perf_counter()
        if self.mode == "mock":
            loss, curve = simulate_run(row["run_id"], row["params"], int(row["tokens"]), row["flops_per_token"],
                                       self.law, self.seed)
            return {"status": "completed", "loss": loss, "tokens_trained": int(row["tokens"]),
                    "wall_time": time.perf_counter() - start, "device": "mock"}, curve
        from .trainer import train_run

        try:
            return train_run(self.build(row["size"]), self.train_data, self.eval_data, self.loss_fn,
                             tokens=int(row["tokens"]), flops_per_token=float(row["flops_per_token"]),
                             config=self.config, run_id=row["run_id"], callbacks=callbacks, should_stop=should_stop,
                             sample_tokens=self.sample_tokens)
        except RunAbandoned:
            raise
        except Exception as exc:  # out of memory, a bug in the model...: recorded, and the sweep goes on
            logger.warning("run %s (size %s) failed: %s", row["run_id"], row["size"], exc)
            return {"status": "failed", "loss": float("nan"), "tokens_trained": 0,
                    "error": f"{type(exc).__name__}: {exc}", "wall_time": time.perf_counter() - start}, \
                pd.DataFrame(columns=CURVE_COLUMNS)


def _run_remote(job: RunJob, row: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame]:
    """The function executors run: module-level, so process pools and clusters can pickle it."""
    return job(row)


class _Sweep:
    """Runs the pending rows of a plan, records each as it finishes, and assembles the results."""

    def __init__(self, plan: pd.DataFrame, job: RunJob, store: SweepStore | None, retry_failed: bool,
                 executor: Any, callbacks: Sequence[Callback], progress: bool) -> None:
        self.plan, self.job, self.store, self.executor = plan, job, store, executor
        self.callbacks = list(callbacks)
        self.emit = emitter(self.callbacks)  # reaches callbacks appended later (progress bars, a handle)
        self.progress = progress
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.curves: dict[str, pd.DataFrame] = {}
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.identity = json.dumps(job.identity(), sort_keys=True, default=str)
        if store is not None:
            store.add_plan(plan)
            done = store.finished()
            keep = ("completed",) if retry_failed else FINISHED
            if not done.empty:
                planned = plan.set_index("run_id")
                for record in done[done["run_id"].isin(plan["run_id"]) & done["status"].isin(keep)].to_dict("records"):
                    self._check_reusable(record, planned.loc[record["run_id"]], store)
                    self.outcomes[record["run_id"]] = record
        self.todo = [row for row in plan.to_dict("records") if row["run_id"] not in self.outcomes]
        if store is not None and len(self.todo) < len(plan):
            logger.info("resuming: %d of %d runs already finished in %s", len(plan) - len(self.todo), len(plan),
                        store.path)

    def _check_reusable(self, record: Mapping[str, Any], row: pd.Series, store: SweepStore) -> None:
        """A stored run is reused only if it ran the same way on the same plan row; else say so."""
        stored = record.get("identity")
        if stored is not None and stored != self.identity:
            raise param_error(
                "store", "run_sweep", "a directory whose finished runs were made the same way as this sweep",
                str(store.path), f"Run {record['run_id']} there was made with {stored}, this sweep uses "
                f"{self.identity}. Use another directory for a different mode, seed, law or training setting.")
        for column in ("budget", "size", "tokens"):
            if column in record and record[column] is not None and float(record[column]) != float(row[column]):
                raise param_error(
                    "plan", "run_sweep", f"rows whose run_id matches their content ({column} differs)",
                    record["run_id"], f"The stored run has {column}={record[column]}, the plan {row[column]}: "
                    "an edited row keeps its old run_id. Re-plan with plan_sweep() instead of editing.")

    # -- bookkeeping ----------------------------------------------------------------------------
    def record(self, row: Mapping[str, Any], outcome: dict[str, Any], curve: pd.DataFrame) -> None:
        full = {**row, **outcome, "identity": self.identity}
        full["flops"] = float(row["flops_per_token"]) * float(outcome.get("tokens_trained") or 0)
        if self.store is not None:
            self.store.write_run(full, curve)
        with self.lock:
            self.outcomes[row["run_id"]] = full
            self.curves[row["run_id"]] = curve

    # -- running ------------------------------------------------------------------------------------
    def run(self) -> None:
        bars = None
        if self.progress and self.todo:
            from .progress import TqdmProgress

            bars = TqdmProgress(len(self.todo))
            self.callbacks.append(bars)
        try:
            if self.executor is None:
                self._run_here()
            else:
                self._run_on_executor()
        finally:
            if bars is not None:
                bars.close()

    def _run_here(self) -> None:
        for row in self.todo:
            if self.stop_event.is_set():
                break
            try:
                outcome, curve = self.job(row, [self.emit], self.stop_event.is_set)
            except RunAbandoned:
                break
            self.record(row, outcome, curve)
            if self.job.mode == "mock" or outcome["status"] == "failed":  # else the trainer emitted run_end
                self.emit({"type": "run_end", "run_id": row["run_id"], **outcome})

    def _run_on_executor(self) -> None:
        """Keep a few runs in flight, record each as it completes; stop() submits no more and keeps what runs.

        Nothing is ever cancelled: some engines (Dask, submitit) cannot tell a queued task
        from a running one, and cancelling a running one would lose it.
        """
        limit = int(getattr(self.executor, "_max_workers", 0) or 8)
        queue = list(self.todo)
        in_flight: dict[Any, Mapping[str, Any]] = {}
        while queue or in_flight:
            while queue and len(in_flight) < limit and not self.stop_event.is_set():
                row = queue.pop(0)
                try:
                    in_flight[self.executor.submit(_run_remote, self.job, row)] = row
                except Exception as exc:  # the executor is gone: what is in flight still lands
                    logger.warning("could not submit run %s: %s", row["run_id"], exc)
                    queue.clear()
            if self.stop_event.is_set():
                queue.clear()
            finished = [f for f in in_flight if f.done()]
            if not finished:
                if in_flight and all(isinstance(f, cf.Future) for f in in_flight):
                    cf.wait(list(in_flight), timeout=0.5, return_when=cf.FIRST_COMPLETED)
                else:  # e.g. submitit jobs: poll
                    time.sleep(0.05)
                continue
            for future in finished:
                row = in_flight.pop(future)
                try:
                    outcome, curve = future.result()
                except Exception as exc:  # the executor failed, not the run: leave it pending to run again
                    logger.warning("run %s did not come back from the executor (%s: %s); it stays pending",
                                   row["run_id"], type(exc).__name__, exc)
                    continue
                self.record(row, outcome, curve)
                self.emit({"type": "run_end", "run_id": row["run_id"], **outcome})

    # -- assembling -------------------------------------------------------------------------------------
    def results(self) -> pd.DataFrame:
        """The plan's rows with every outcome so far; runs not finished are ``pending``."""
        with self.lock:
            outcomes = dict(self.outcomes)
        results = self.plan.copy()
        table = pd.DataFrame([outcomes.get(rid, {}) for rid in results["run_id"]], index=results.index)
        for column in ["status", *RESULT_COLUMNS]:
            results[column] = table[column] if column in table.columns else None
        results["status"] = results["status"].fillna("pending")
        spent = results["flops_per_token"] * pd.to_numeric(results["tokens_trained"])
        results["flops"] = spent.where(results["status"] != "pending", results.get("flops"))
        results.attrs.update(self.plan.attrs, mode=self.job.mode)
        if self.job.mode == "mock":
            results.attrs.update(seed=self.job.seed, law=self.job.law)
        return results

    def curve_frame(self) -> pd.DataFrame:
        if self.store is not None:
            curves = self.store.curves()
            return curves[curves["run_id"].isin(self.plan["run_id"])].reset_index(drop=True)
        with self.lock:
            frames = [self.curves[rid] for rid in self.plan["run_id"] if rid in self.curves]
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CURVE_COLUMNS)


class SweepHandle:
    """A sweep running in a background thread (``run_sweep(..., background=True)``).

    The notebook stays responsive: ``results()`` gives the frame so far at any time,
    ``events`` collects every progress event (thread-safe), ``stop()`` ends the sweep
    after (or, in local mode, part-way through) the current run, keeping what
    finished, and ``wait()`` blocks until it is over.
    """

    def __init__(self, sweep: _Sweep) -> None:
        self._sweep = sweep
        self.events: list[dict[str, Any]] = []
        self._events_lock = threading.Lock()
        sweep.callbacks.append(self._collect)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="flops_fit-sweep", daemon=True)
        self._thread.start()

    def _collect(self, event: dict[str, Any]) -> None:
        with self._events_lock:
            self.events.append(event)

    def events_since(self, index: int) -> list[dict[str, Any]]:
        """The events after the first ``index`` (a reader keeps its own count and polls)."""
        with self._events_lock:
            return self.events[index:]

    def _main(self) -> None:
        try:
            self._sweep.run()
        except BaseException as exc:  # surfaced by wait()
            self.error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    @property
    def store(self) -> SweepStore | None:
        """The sweep directory finished runs are written to (None without ``store=``)."""
        return self._sweep.store

    def stop(self) -> None:
        """Stop: in this process after the current step (local) or run (mock); with an executor, submit
        nothing more and keep the runs already in flight. What finished is kept."""
        self._sweep.stop_event.set()

    def wait(self, timeout: float | None = None) -> pd.DataFrame:
        """Block until the sweep ends (or ``timeout`` seconds pass); returns :meth:`results`."""
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.results()

    def results(self) -> pd.DataFrame:
        """The results frame so far; unfinished runs have status ``pending``."""
        return self._sweep.results()

    def curves(self) -> pd.DataFrame:
        return self._sweep.curve_frame()

    def progress(self) -> dict[str, int]:
        """How many runs have each status right now."""
        return self.results()["status"].value_counts().to_dict()

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"SweepHandle({state}, {self.progress()})"


def run_sweep(
    plan: pd.DataFrame,
    model_cls: Callable[..., Any] | None = None,
    dataset: Any = None,
    loss_fn: Callable[..., Any] | None = None,
    *,
    mode: str = "mock",
    law: PlantedLaw | None = None,
    seed: int = 0,
    return_curves: bool = False,
    train_config: TrainConfig | None = None,
    eval_dataset: Any = None,
    model_size_param: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool | None = None,
    store: Any = None,
    retry_failed: bool = False,
    executor: Any = None,
    background: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame] | SweepHandle:
    """Run every planned run and return the results frame.

    Parameters
    ----------
    plan : pandas.DataFrame
        As returned by :func:`plan_sweep` (at least ``run_id, budget, size, params,
        flops_per_token, tokens``).
    model_cls : callable
        The model factory (``mode="local"``); built for real, one run at a time.
    dataset : torch Dataset of (inputs, targets)
        Training data (``mode="local"``), cycled when a run needs more than it holds.
    loss_fn : callable
        ``loss_fn(model(inputs), targets) -> scalar tensor`` (``mode="local"``).
    mode : {"mock", "local"}
        ``"mock"`` simulates each run from ``law``; ``"local"`` trains (cuda, then
        mps, then cpu), here or on ``executor``'s workers.
    law : PlantedLaw, optional
        The law mock mode simulates (default ``PlantedLaw()``, Chinchilla's fit).
    seed : int, default 0
        Makes mock noise reproducible; each run's noise depends on the seed and its
        ``run_id`` only. (Local training takes its seed from ``train_config``.)
    return_curves : bool, default False
        Also return the curves frame (``run_id, step, tokens, flops, loss, lr``).
    train_config : TrainConfig, optional
        Optimiser, schedule and evaluation settings for ``mode="local"``.
    eval_dataset : torch Dataset, optional
        Held-out data; by default the last ``train_config.eval_fraction`` of ``dataset``.
    model_size_param, model_kwargs
        How to build each size; default: what :func:`plan_sweep` recorded in ``plan.attrs``.
    callbacks : sequence of callables
        Each receives the trainer's events (dicts with ``type`` ``run_start``,
        ``step``, ``eval``, ``run_end``); with an executor, only ``run_end``.
    progress : bool, optional
        Show tqdm progress bars; by default when running in a terminal.
    store : path, optional
        A sweep directory (see :class:`~flops_fit.store.SweepStore`): the plan and
        each finished run are written there as they finish. Running the same plan
        into it again skips what finished (matched by ``run_id``).
    retry_failed : bool, default False
        With ``store``: run again the runs recorded as ``failed`` or ``diverged``.
    executor : concurrent.futures.Executor, optional
        Runs go to its workers (a process pool, ``dask`` ``client.get_executor()``,
        submitit...); each is recorded as it completes. Model, data and loss must
        pickle.
    background : bool, default False
        Return a :class:`SweepHandle` at once and run in a background thread.

    Returns
    -------
    results : pandas.DataFrame
        The plan's columns with ``status`` (``completed``, ``diverged``, ``failed``,
        or ``pending`` if stopped), plus ``loss, tokens_trained, epochs, steps,
        wall_time, tokens_per_second, flops_per_second, utilisation, device,
        error``; ``flops`` is what was spent.
    curves : pandas.DataFrame
        Only with ``return_curves=True``.
    handle : SweepHandle
        Instead of both, with ``background=True``.

    Examples
    --------
    >>> from flops_fit import plan_sweep
    >>> from flops_fit.examples import GPT
    >>> plan = plan_sweep(GPT, "d_model", [1e16, 1e17], model_kwargs={"vocab_size": 256})
    >>> results = run_sweep(plan, mode="mock", seed=0)
    >>> results["status"].unique().tolist()
    ['completed']
    """
    func = "run_sweep"
    mode = check_choice(mode, "mode", func, MODES)
    _check_plan(plan, func)
    if plan["run_id"].dtype != object or not all(isinstance(v, str) for v in plan["run_id"]):
        plan = plan.assign(run_id=plan["run_id"].astype(str))  # ids are file names and JSON strings
    job = RunJob(mode=mode, law=check_law(law, func), seed=check_seed(seed, func))
    if mode == "local":
        _prepare_local(job, plan, model_cls, dataset, loss_fn, train_config, eval_dataset, model_size_param,
                       model_kwargs)
    if executor is not None:
        if not callable(getattr(executor, "submit", None)):
            raise param_error("executor", func, "a concurrent.futures.Executor (or anything with submit())",
                              executor)
        try:
            pickle.dumps(job)
        except Exception as exc:
            raise param_error("executor", func, "given only with a picklable model, dataset and loss",
                              type(executor).__name__,
                              f"Pickling the run failed ({type(exc).__name__}: {exc}); define the model class and "
                              "loss function at module level, not as lambdas or in a notebook cell.") from None
    for name, flag in (("retry_failed", retry_failed), ("background", background)):
        if not isinstance(flag, bool):
            raise param_error(name, func, "True or False", flag)
    show = progress if progress is not None else (mode == "local" and not background and sys.stderr.isatty())
    sweep = _Sweep(plan, job, SweepStore(store, writer=True) if store is not None else None, retry_failed, executor,
                   callbacks, show)
    if background:
        return SweepHandle(sweep)
    sweep.run()
    results = sweep.results()
    logger.info("%s sweep: %d runs, %s", mode, len(results), results["status"].value_counts().to_dict())
    return (results, sweep.curve_frame()) if return_curves else results


def _check_plan(plan: object, func: str) -> None:
    if not isinstance(plan, pd.DataFrame):
        raise param_error("plan", func, "a DataFrame from plan_sweep()", type(plan).__name__)
    missing = [c for c in _PLAN_REQUIRED if c not in plan.columns]
    if missing:
        raise param_error("plan", func, f"a DataFrame with columns {_PLAN_REQUIRED}", list(plan.columns),
                          f"Missing: {missing}. Build it with plan_sweep().")
    if plan.empty:
        raise param_error("plan", func, "a plan with at least one run", "an empty DataFrame")
    if plan["run_id"].duplicated().any():
        dupes = plan.loc[plan["run_id"].duplicated(), "run_id"].tolist()
        raise param_error("plan", func, "a plan with unique run_id values", dupes[:5], "Drop the duplicated rows.")


def _prepare_local(job: RunJob, plan: pd.DataFrame, model_cls: Any, dataset: Any, loss_fn: Any,
                   train_config: TrainConfig | None, eval_dataset: Any, model_size_param: str | None,
                   model_kwargs: Mapping[str, Any] | None) -> None:
    """Fill in the job for real training, and try one tiny batch before any compute is spent."""
    from .trainer import check_setup, split_eval, tokens_per_sample

    func = "run_sweep"
    if not callable(model_cls):
        raise param_error("model_cls", func, "the model factory the plan was made for (mode='local' trains it)",
                          model_cls)
    if dataset is None or loss_fn is None:
        raise param_error("dataset" if dataset is None else "loss_fn", func, "given when mode='local'", None,
                          "Pass the training data and the loss, or use mode='mock'.")
    config = train_config if train_config is not None else TrainConfig()
    if not isinstance(config, TrainConfig):
        raise param_error("train_config", func, "a flops_fit.TrainConfig", config)
    param = model_size_param or plan.attrs.get("model_size_param")
    if not param:
        raise param_error("model_size_param", func, "the plan's size knob (plan.attrs lost it)", None)
    job.model_cls, job.loss_fn, job.config, job.param = model_cls, loss_fn, config, param
    job.model_kwargs = dict(model_kwargs if model_kwargs is not None else plan.attrs.get("model_kwargs", {}))
    job.sample_tokens = tokens_per_sample(dataset)  # before split_eval: a Subset hides the attribute
    planned = plan.attrs.get("tokens_per_sample")
    if planned is not None and int(planned) != job.sample_tokens:
        raise param_error("dataset", func, f"samples of {int(planned)} tokens, as the plan was made for",
                          f"{job.sample_tokens} tokens per sample",
                          "Plan with this dataset (find_optimal does), or pass tokens_per_sample= to plan_sweep.")
    job.train_data, job.eval_data = split_eval(dataset, eval_dataset, config.eval_fraction)
    smallest = plan.loc[plan["params"].idxmin(), "size"]
    check_setup(job.build(smallest), job.train_data, job.eval_data, loss_fn, config,
                eval_name="eval_dataset" if eval_dataset is not None else "dataset (its held-out tail)")
    per_step = config.batch_size * job.sample_tokens
    steps = (plan["tokens"] / per_step).round().clip(lower=1)
    short = plan.loc[steps < 20, "run_id"].tolist()
    if short:
        warn(f"run_sweep: {len(short)} run(s) get fewer than 20 optimiser steps at batch_size={config.batch_size} "
             f"({per_step} tokens a step), too few to warm up and decay; their budgets are honoured only to "
             "within a step. Lower batch_size or raise the budgets.", UserWarning)
