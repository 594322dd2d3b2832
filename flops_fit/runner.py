"""run_sweep(): execute a plan, durably and resumably, here or on any concurrent.futures executor."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from ._checks import check_choice, check_run_timeout, check_seed, param_error, warn
from .events import Callback
from .adaptive import AdaptiveExecution
from .execution import SweepExecution
from .handle import SweepHandle
from .ids import unreadable
from .jobs import Job, MockJob, TrainJob
from .mock import PlantedLaw, check_law, check_pace
from .planning.adaptive import REASONS, AdaptiveDesign, check_resumable
from .planning.planner import plan_rows
from .planning.rows import PlanRows
from .schema import MODES, PLAN_REQUIRED
from .shipping import Shipment
from .spec import PlanSpec
from .store import SweepStore
from .training.config import TrainConfig, steps_for
from .training.data import sample_pair, split_eval, tokens_per_sample
from .training.preflight import check_setup
from .worker import TrainingWorker

logger = logging.getLogger(__name__)


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
    spec: PlanSpec | None = None,
    pace: float | None = None,
    run_timeout: float | None = 3600.0,
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
        How to build each size; default: what :func:`plan_sweep` recorded in the plan's ``size_param``
        and ``model_kwargs`` columns.
    callbacks : sequence of callables
        Each receives the sweep's events (dicts with ``type`` ``sweep_start``, ``run_start``,
        ``step``, ``eval``, ``run_end``, ``sweep_end``; see :mod:`flops_fit.events`), also from an executor's
        workers on this host (:mod:`flops_fit.channel`); from workers on other hosts, ``run_end`` only.
        Experiment trackers: :class:`flops_fit.integrations.MLflowCallback` and ``WandbCallback``.
    progress : bool, optional
        Show tqdm progress bars; by default when running in a terminal.
    store : path, optional
        A sweep directory (see :class:`~flops_fit.store.SweepStore`): the plan and
        each finished run are written there as they finish. Running the same plan
        into it again skips what finished (matched by ``run_id``).
    retry_failed : bool, default False
        With ``store``: run again the runs recorded as ``failed`` or ``diverged``.
    executor : concurrent.futures.Executor, optional
        Runs go to its workers (:func:`~flops_fit.process_pool` for this machine's cores, ``dask``
        ``client.get_executor()``, submitit...); each is recorded as it completes, and workers on this host
        stream their runs' events back. The model, data and loss go to each process-pool or Dask worker once
        (:mod:`flops_fit.shipping`) and must pickle (with ``cloudpickle``: notebook classes are fine). A
        pool that forks its workers is refused for ``mode="local"`` (a process forked after torch has
        loaded hangs): use :func:`~flops_fit.process_pool`.
    run_timeout : float or None, default 3600
        Seconds a run on a worker (an executor's, or the background worker process) may go without a word
        (its start, a logged step) before it is recorded ``failed`` ("no progress for N s") and the sweep
        goes on; a stuck process-pool or background worker is killed. A run logs about 50 steps, so the
        default allows runs of two days. None: wait forever.
    background : bool, default False
        Return a :class:`SweepHandle` at once and run in a background thread. With ``mode="local"`` and no
        ``executor``, runs train in a worker process started with ``spawn`` (:mod:`flops_fit.worker`), as
        fast as in a script's main thread; events stream back, Stop ends the run after its step, and a
        worker that dies costs only its run. What cannot be sent to another process trains in the
        thread instead, with a warning.
    spec : PlanSpec, optional
        How the plan was made; with ``store``, kept there beside the plan (``spec.json``).
    pace : float, optional
        Mock mode only: seconds each simulated run takes, so a live view shows points arriving (a demo; the
        designer's mock mode uses 0.05). None or 0 (the default): as fast as possible. A non-zero pace with
        ``mode="local"`` is refused (ValueError), not ignored.

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
    law, seed, pace = check_law(law, func), check_seed(seed, func), check_pace(pace, mode, func)
    job: Job = (MockJob(law, seed, pace) if mode == "mock" else
                _train_job(plan, model_cls, dataset, loss_fn, train_config, eval_dataset, model_size_param,
                           model_kwargs))
    run_timeout = check_run_timeout(run_timeout, func)
    shipment = None
    if executor is not None:
        if not callable(getattr(executor, "submit", None)):
            raise param_error("executor", func, "a concurrent.futures.Executor (or anything with submit())",
                              executor)
        shipment = Shipment(executor, job, func, local=mode == "local")  # refuses a fork pool, an unpicklable job
    if spec is not None and not isinstance(spec, PlanSpec):
        raise param_error("spec", func, "a flops_fit.PlanSpec", spec)
    for name, flag in (("retry_failed", retry_failed), ("background", background)):
        if not isinstance(flag, bool):
            raise param_error(name, func, "True or False", flag)
    show = progress if progress is not None else (mode == "local" and not background and sys.stderr.isatty())
    opened = SweepStore(store, writer=True) if store is not None else None
    sweep: SweepExecution
    if spec is not None and spec.strategy == "adaptive":
        design, plan = _adaptive_design(plan, spec, opened, model_cls, dataset, mode, train_config, model_size_param,
                                        model_kwargs)
        sweep = AdaptiveExecution(plan, job, opened, retry_failed, executor, callbacks, show, design.spec,
                                  design=design, shipment=shipment, run_timeout=run_timeout)
    else:
        sweep = SweepExecution(plan, job, opened, retry_failed, executor, callbacks, show, spec, shipment=shipment,
                               run_timeout=run_timeout)
    if background:
        if mode == "local" and executor is None:
            # torch in a thread of this process would train about 2x slower
            sweep.worker = TrainingWorker(job, run_timeout=run_timeout)
        return SweepHandle(sweep)
    sweep.execute()
    results = sweep.results()
    logger.info("%s sweep: %d runs, %s", mode, len(results), results["status"].value_counts().to_dict())
    return (results, sweep.curve_frame()) if return_curves else results


def training_facts(dataset: Any, mode: str, train_config: TrainConfig | None) -> dict[str, Any]:
    """What :func:`plan_sweep` reads from the data and training settings of a ``"local"`` sweep: an
    example input (for FLOP conventions), tokens per sample, and the settings that enter each run_id."""
    if mode != "local" or dataset is None:
        return {}
    return {"example_input": sample_pair(dataset, 0, "dataset")[0], "tokens_per_sample": tokens_per_sample(dataset),
            "train_config": train_config or TrainConfig()}


def _adaptive_design(plan: pd.DataFrame, spec: PlanSpec, store: SweepStore | None, model_cls: Any, dataset: Any,
                     mode: str, train_config: TrainConfig | None, model_size_param: str | None,
                     model_kwargs: Mapping[str, Any] | None) -> tuple[AdaptiveDesign, pd.DataFrame]:
    """The design that proposes an adaptive sweep's next runs, and the plan to start from: ``plan`` (its start
    design, from plan_sweep) with the runs the sweep directory holds from an earlier start of the same sweep."""
    func = "run_sweep"
    if not callable(model_cls):
        raise param_error("model_cls", func, "the model factory (an adaptive sweep builds new sizes as it goes)",
                          model_cls)
    param, settings = _model_settings(plan, model_size_param, model_kwargs)
    if dict(settings) != dict(spec.model_kwargs):
        spec = PlanSpec.from_options(spec, {"model_kwargs": settings}, func)
    facts = training_facts(dataset, mode, train_config)
    if not facts:  # mock: what the plan recorded
        planned = _plan_setting(plan, "tokens_per_sample")
        facts = {"tokens_per_sample": None if planned is None else int(planned)}
    budgets = sorted(plan["budget"].astype(float).unique())
    rows = plan_rows(model_cls, param, budgets, spec, facts.get("example_input"), facts["tokens_per_sample"],
                     facts.get("train_config"), func)
    design = AdaptiveDesign(rows, budgets)
    if "reason" not in plan.columns or not plan["reason"].isin(REASONS).all():
        raise param_error("plan", func, "the start design of plan_sweep(..., strategy='adaptive')",
                          "a plan with other rows", "Plan with the same spec you run with.")
    if not _rows_of(plan, rows).all():
        raise param_error("plan", func, "a plan made with the settings this adaptive sweep runs with", "another plan",
                          "Its run ids differ from what these settings make (model, FLOP convention or training "
                          "settings changed): plan again with them, e.g. find_optimal(..., strategy='adaptive').")
    if store is not None:
        check_resumable(store.spec(), spec, str(store.path))
        stored = store.plan()
        if not stored.empty and "reason" in stored.columns:
            stored = stored[stored["reason"].isin(REASONS) & ~stored["run_id"].isin(plan["run_id"])]
            if not stored.empty:
                ours = stored[_rows_of(stored, rows).to_numpy()]
                plan = pd.concat([plan, ours[plan.columns.intersection(ours.columns)]], ignore_index=True)
    return design, plan


def _rows_of(plan: pd.DataFrame, rows: PlanRows) -> pd.Series:
    """Which of ``plan``'s rows these settings would make with the same run_id."""
    return pd.Series([rows.row(float(r.budget), int(r.size), int(r.repeat or 0), str(r.reason))["run_id"] == r.run_id
                      for r in plan.itertuples()], index=plan.index)


def _check_plan(plan: object, func: str) -> None:
    if not isinstance(plan, pd.DataFrame):
        fix = (f"A {type(plan).__name__} holds its plan as .plan: pass {func}(plan.plan, ...), or call "
               "plan.run(mode=...)." if isinstance(getattr(plan, "plan", None), pd.DataFrame) else "")
        raise param_error("plan", func, "a DataFrame from plan_sweep()", type(plan).__name__, fix)
    missing = [c for c in PLAN_REQUIRED if c not in plan.columns]
    if missing:
        raise param_error("plan", func, f"a DataFrame with columns {PLAN_REQUIRED}", list(plan.columns),
                          f"Missing: {missing}. Build it with plan_sweep().")
    if plan.empty:
        raise param_error("plan", func, "a plan with at least one run", "an empty DataFrame")
    if plan["run_id"].duplicated().any():
        dupes = plan.loc[plan["run_id"].duplicated(), "run_id"].tolist()
        raise param_error("plan", func, "a plan with unique run_id values", dupes[:5], "Drop the duplicated rows.")


def _plan_setting(plan: pd.DataFrame, column: str) -> Any:
    """The one value a plan column holds for every run (None when the column is absent or empty)."""
    if column not in plan.columns:
        return None
    found = plan[column].dropna().unique()
    if len(found) > 1:
        raise param_error("plan", "run_sweep", f"runs of one model family (one '{column}')", list(found),
                          "Run each family's plan on its own.")
    return found[0] if len(found) else None


def _model_settings(plan: pd.DataFrame, model_size_param: str | None,
                    model_kwargs: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The knob and the fixed settings to build each run with: given, else as the plan recorded them."""
    func = "run_sweep"
    param = model_size_param or _plan_setting(plan, "size_param")
    if not param:
        raise param_error("model_size_param", func, "the plan's size knob", None,
                          "This plan has no 'size_param' column; pass model_size_param='d_model' (say).")
    if model_kwargs is not None:
        return str(param), dict(model_kwargs)
    stored = _plan_setting(plan, "model_kwargs")
    settings = json.loads(stored) if stored else {}
    objects = unreadable(settings)
    if objects:
        raise param_error("model_kwargs", func, "given when the plan's settings are objects a table cannot hold",
                          None, f"{objects} are recorded only by name; pass model_kwargs= as plan_sweep got it.")
    return str(param), settings


def _train_job(plan: pd.DataFrame, model_cls: Any, dataset: Any, loss_fn: Any, train_config: TrainConfig | None,
               eval_dataset: Any, model_size_param: str | None, model_kwargs: Mapping[str, Any] | None) -> TrainJob:
    """The job that trains each run here, after one tiny batch has gone through before any compute is spent."""
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
    param, settings = _model_settings(plan, model_size_param, model_kwargs)
    sample_tokens = tokens_per_sample(dataset)  # before split_eval: a Subset hides the attribute
    planned = _plan_setting(plan, "tokens_per_sample")
    if planned is not None and int(planned) != sample_tokens:
        raise param_error("dataset", func, f"samples of {int(planned)} tokens, as the plan was made for",
                          f"{sample_tokens} tokens per sample",
                          "Plan with this dataset (find_optimal does), or pass tokens_per_sample= to plan_sweep.")
    train_data, eval_data = split_eval(dataset, eval_dataset, config.eval_fraction)
    job = TrainJob(model_cls, param, train_data, eval_data, loss_fn, config, settings, sample_tokens)
    smallest = plan.loc[plan["params"].idxmin(), "size"]
    check_setup(job.build(smallest), train_data, eval_data, loss_fn, config,
                eval_name="eval_dataset" if eval_dataset is not None else "dataset (its held-out tail)")
    steps = plan["tokens"].map(lambda tokens: steps_for(int(tokens), config, sample_tokens))
    short = plan.loc[steps < 20, "run_id"].tolist()
    if short:
        per_step = config.batch_size * sample_tokens
        warn(f"run_sweep: {len(short)} run(s) get fewer than 20 optimiser steps at batch_size={config.batch_size} "
             f"({per_step} tokens a step), too few to warm up and decay; their budgets are honoured only to "
             "within a step. Lower batch_size or raise the budgets.", UserWarning)
    return job
