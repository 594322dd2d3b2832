"""Executors for scale-out: runs are independent, so any ``concurrent.futures.Executor`` can take them.

flops_fit schedules nothing itself. Use :func:`process_pool` below to run a local sweep in
parallel on one machine's cores, :func:`gpu_pool` for one run per GPU on a multi-GPU machine,
``dask.distributed`` (``client.get_executor()``) for a cluster, or submitit on SLURM. Both pools
start their workers with ``spawn``: a process forked after torch has loaded hangs in torch, so
:func:`~flops_fit.run_sweep` refuses a fork-started pool for a local sweep.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from collections.abc import Sequence

from . import _deps
from ._checks import param_error


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                     "NUMEXPR_NUM_THREADS")


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _share_cores(threads: int) -> None:  # runs once in each worker process, before any run
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    torch = _deps.torch()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set, or parallel work already started in this process
        pass


def process_pool(workers: int | None = None, threads_per_worker: int | None = None) -> cf.ProcessPoolExecutor:
    """A process pool for a local sweep on this machine's cores: runs train side by side, none oversubscribed.

    Workers are started with ``spawn`` (a worker forked after torch has loaded hangs), and each
    gets a fair share of the cores: its torch thread count and the OpenMP/BLAS thread variables
    are set to ``threads_per_worker`` before its first run. A sweep's model, dataset and loss go
    to each worker once, not with every run (:mod:`flops_fit.shipping`), and each run's ``step``
    events come back live.

    Parameters
    ----------
    workers : int, optional
        Runs trained at once; default one per core.
    threads_per_worker : int, optional
        Threads each run's torch uses; default the cores divided among the workers (at least 1).

    Examples
    --------
    >>> with process_pool(2) as pool:          # doctest: +SKIP
    ...     run_sweep(plan, GPT, data, lm_loss, mode="local", executor=pool, store="sweep/")
    """
    available = cores()
    for name, value in (("workers", workers), ("threads_per_worker", threads_per_worker)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            default = "one worker per core" if name == "workers" else "the cores shared out among the workers"
            raise param_error(name, "process_pool", "a whole number of at least 1", value,
                              f"Leave it None for {default}; this machine has {available} cores.")
    workers = workers or available
    threads = threads_per_worker or max(1, available // workers)
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_share_cores,
                                  initargs=(threads,))


def _pin_gpu(free: mp.Queue) -> None:  # runs once in each worker process, before any run
    os.environ["CUDA_VISIBLE_DEVICES"] = str(free.get())


def gpu_pool(gpus: int | Sequence[int] | None = None) -> cf.ProcessPoolExecutor:
    """A process pool with one worker per GPU, each worker seeing only its own GPU.

    Every run then trains on ``cuda:0`` of its worker, so runs never share a GPU and
    as many run at once as there are GPUs. Workers are started with ``spawn``, as
    CUDA requires.

    Parameters
    ----------
    gpus : int or sequence of int, optional
        How many GPUs (ids 0..n-1), or which ids; default every GPU torch sees.

    Examples
    --------
    >>> with gpu_pool([0, 1]) as pool:          # doctest: +SKIP
    ...     run_sweep(plan, GPT, data, lm_loss, mode="local", executor=pool, store="sweep/")
    """
    if gpus is None:
        gpus = _deps.torch().cuda.device_count()
    ids = list(range(gpus)) if isinstance(gpus, int) else [int(g) for g in gpus]
    if not ids:
        raise ValueError("The 'gpus' parameter of gpu_pool must name at least one GPU. Got none (is CUDA visible?).")
    context = mp.get_context("spawn")
    free: mp.Queue = context.Queue()
    for gpu in ids:
        free.put(gpu)
    return cf.ProcessPoolExecutor(max_workers=len(ids), mp_context=context, initializer=_pin_gpu, initargs=(free,))
