"""A sweep's model, dataset and loss reach each executor worker once, not with every run.

A job (:class:`~flops_fit.jobs.TrainJob`: the model factory, the dataset, the loss) can be large: a
real token corpus is hundreds of megabytes. Submitted with every run, it would be pickled and
copied once per run. :class:`Shipment` sends it once, by the engine's own means where it has them:

- **A process pool** (``concurrent.futures.ProcessPoolExecutor``, :func:`~flops_fit.process_pool`):
  the job is pickled once, with ``cloudpickle`` (so models defined in a notebook or a script's
  ``__main__`` travel by value), to a file; each run carries only a :class:`JobFile` (a path and a
  digest), and each worker process loads the file on its first run and keeps the job for the rest.
- **Dask** (``client.get_executor()``): the job is scattered to every worker once
  (``client.scatter(..., broadcast=True)``) and each run carries the Dask future, which Dask resolves
  on the worker from its own memory.
- **Any other executor** (submitit, a thread pool) gets the job with each run, as before; a thread
  pool shares it without copying.

Before any run, a :class:`Shipment` refuses what would hang or fail later, saying why and how to
fix it: a process pool that forks after torch has loaded (forked workers deadlock in torch), and a
job that cannot be pickled (it names the object: the model, the dataset, the loss...).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import logging
import multiprocessing as mp
import os
import pickle
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from typing import Any

logger = logging.getLogger(__name__)

# What a TrainJob's fields are called where the user gave them (run_sweep's parameters)
PARAMETERS = {"model_cls": "model_cls", "train_data": "dataset", "eval_data": "eval_dataset", "loss_fn": "loss_fn",
              "model_kwargs": "model_kwargs", "config": "train_config"}


class _Capped:
    """Writes to ``out`` up to ``limit`` bytes, hashing them; past that it raises OverflowError."""

    def __init__(self, out: Any, limit: int) -> None:
        self.out, self.limit, self.size, self.hash = out, limit, 0, hashlib.sha256()

    def write(self, data: Any) -> int:
        self.size += len(data)
        self.hash.update(data)
        if self.size > self.limit:
            raise OverflowError(f"they pickle to more than {self.limit / 2**20:,.0f} MiB (a quarter of the memory "
                                "free now); a dataset of tensor views pickles each view's whole storage: keep "
                                "one tensor and slice it in __getitem__, as flops_fit.examples.TokenDataset does")
        return self.out.write(data)


def payload_limit() -> int:
    """The most bytes a job may pickle to: a quarter of the memory free now (each worker holds a copy too)."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on Linux
        free = 16 * 2**30
    return int(free // 4)


def pack(job: Any, out: Any, limit: int | None = None) -> str:
    """Write ``job`` to the file ``out`` as bytes a spawned process can load with plain pickle: by value where
    pickle goes by reference to something the worker cannot import (a class or function defined in a notebook
    or a script's ``__main__``). Past ``limit`` bytes (default :func:`payload_limit`) it stops, rather than fill
    the memory or the disk. Returns the bytes' SHA-256 digest."""
    import cloudpickle

    capped = _Capped(out, payload_limit() if limit is None else limit)
    cloudpickle.CloudPickler(capped, protocol=pickle.HIGHEST_PROTOCOL).dump(job)
    return capped.hash.hexdigest()


def culprit(job: Any) -> str:
    """Which of a job's parts cannot be pickled, named as the user passed it (``'dataset'``, ``'loss_fn'``...)."""
    import cloudpickle

    for field, name in PARAMETERS.items():
        if not hasattr(job, field):
            continue
        try:
            cloudpickle.dumps(getattr(job, field))
        except Exception:
            return f"the '{name}' ({type(getattr(job, field)).__name__})"
    return "the model, dataset or loss"


def unpicklable(func: str, job: Any, exc: BaseException, where: str) -> ValueError:
    """The error for a job that cannot go to ``where``: what failed, and the fixes."""
    return ValueError(
        f"{func}: {culprit(job)} cannot be sent to {where}: pickling it failed ({type(exc).__name__}: {exc}). "
        "Define the model class, dataset class and loss at module level (in a notebook they travel by value), "
        "and keep open files, locks and connections out of the dataset: a dataset factory, a class whose "
        "__getitem__ opens its file on first use in the worker, pickles as what makes it, not as the open "
        "handle.")


def start_method(executor: Any) -> str | None:
    """How a ``concurrent.futures.ProcessPoolExecutor`` starts its workers ('fork', 'spawn', 'forkserver');
    None for any other executor."""
    if not isinstance(executor, cf.ProcessPoolExecutor):
        return None
    context = getattr(executor, "_mp_context", None) or mp.get_context()
    return context.get_start_method()


def is_dask(executor: Any) -> bool:
    """Whether ``executor`` is a ``dask.distributed`` client's executor (``client.get_executor()``)."""
    return type(executor).__module__.split(".")[0] == "distributed" and hasattr(executor, "_client")


class JobFile:
    """A job pickled once to a file: what each run on a process pool carries instead of the job itself.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     ref = JobFile.write({"model": "gpt"}, os.path.join(folder, "job.pkl"))
    ...     ref.load(), len(pickle.dumps(ref)) < 300
    ({'model': 'gpt'}, True)
    """

    def __init__(self, path: str, digest: str) -> None:
        self.path, self.digest = path, digest

    @classmethod
    def write(cls, job: Any, path: str, limit: int | None = None) -> JobFile:
        with open(path, "wb") as out:
            return cls(path, pack(job, out, limit))

    def load(self) -> Any:
        """The job: read from the file on this process's first run of it, from memory after that."""
        with _lock:
            job = _loaded.get(self.digest)
            if job is None:
                with open(self.path, "rb") as source:
                    job = pickle.load(source)
                _loaded[self.digest] = job
                while len(_loaded) > 2:  # a worker keeps the jobs of its last two sweeps
                    _loaded.popitem(last=False)
            _loaded.move_to_end(self.digest)
            return job

    def __repr__(self) -> str:
        return f"JobFile({self.path!r})"


_loaded: OrderedDict[str, Any] = OrderedDict()
_lock = threading.Lock()


def unpack(job: Any) -> Any:
    """In a worker: the job a run carries, loaded from its :class:`JobFile` if it carries one."""
    return job.load() if isinstance(job, JobFile) else job


class Shipment:
    """How one sweep's job travels to ``executor``'s workers: :attr:`ref` is what each run carries.

    Made before any run (``func`` names the caller in errors); :meth:`close` when the sweep is over frees
    the file or the scattered data.
    """

    def __init__(self, executor: Any, job: Any, func: str = "run_sweep", local: bool = True) -> None:
        self.ref: Any = job
        self._release: Any = None
        method = start_method(executor)
        if method == "fork" and local:
            raise ValueError(
                f"{func}: the 'executor' starts its workers with fork, and a process forked after torch has loaded "
                "hangs in torch (its workers would wait forever, with no error). Use flops_fit.process_pool("
                "workers) (spawn-started, each worker with a fair share of the cores), or "
                "ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('spawn')).")
        if method is not None:
            self._to_file(job, func)
        elif is_dask(executor):
            self._scatter(executor._client, job, func)
        elif not isinstance(executor, cf.ThreadPoolExecutor):
            try:  # most engines pickle with cloudpickle: say now, not in every run, what cannot go
                pack(job, _Discard())
            except Exception as exc:
                raise unpicklable(func, job, exc, f"the executor's workers ({type(executor).__name__})") from None

    def _to_file(self, job: Any, func: str) -> None:
        folder = tempfile.mkdtemp(prefix="flops_fit-job-")
        self._release = weakref.finalize(self, shutil.rmtree, folder, True)
        try:
            self.ref = JobFile.write(job, os.path.join(folder, "job.pkl"))
        except Exception as exc:
            self.close()
            raise unpicklable(func, job, exc, "the pool's worker processes") from None

    def _scatter(self, client: Any, job: Any, func: str) -> None:
        try:
            self.ref = client.scatter(job, broadcast=True, hash=False)
        except Exception as exc:
            raise unpicklable(func, job, exc, "the Dask workers") from None
        self._release = self.ref.release

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class _Discard:
    def write(self, data: Any) -> int:
        return len(data)

