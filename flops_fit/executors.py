"""Executors for scale-out: runs are independent, so any ``concurrent.futures.Executor`` can take them.

flops_fit schedules nothing itself. Use a process pool, ``dask.distributed``
(``client.get_executor()``), submitit on SLURM, or :func:`gpu_pool` below for one run
per GPU on a multi-GPU machine.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from collections.abc import Sequence

from . import _deps


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
