"""A persistent pool of CRF worker processes.

Mean-field inference on the pydensecrf back-end is single-threaded C++ and cannot use the GPU, so
the pseudo-labeller spreads the images of a batch over :class:`CRFPool` workers. The pool lives as
long as the training run (starting processes per step would cost more than the CRF itself).
:meth:`CRFPool.submit_map` hands the jobs to the workers and returns at once, so the training
process can run the backward pass of the classification loss while the CRFs run.

This module imports only the standard library: worker processes never import torch through it.

Example::

    with CRFPool(workers=2) as pool:
        qs = pool.map(dense_crf_job, [(image, prob, params), (image2, prob2, params)])
        pending = pool.submit_map(dense_crf_job, [(image, prob, params)])
        ...                                          # other work while the workers run
        qs = pending.result()
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Generic, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Thread-count variables of the common numeric runtimes: CRF workers are single-threaded jobs,
# one per core, so any library they load must not start a thread pool of its own.
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _init_worker() -> None:
    """Runs once in each worker: ignore Ctrl-C, and keep any numeric library single-threaded.

    Ctrl-C at a terminal reaches the whole process group; the training process handles it
    (checkpoint, one line, exit) and shuts the pool down, so a worker must not die of it
    mid-job (which left the parent waiting on a broken pool, or printing the workers'
    tracebacks).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in _THREAD_ENV:
        os.environ[var] = "1"
    torch = sys.modules.get("torch")
    if torch is not None:  # imported by the parent's main module under "spawn"
        torch.set_num_threads(1)


class CRFPool:
    """A pool of worker processes that stays alive across calls.

    ``workers=0`` runs every job in the calling process (no pickling, easiest to debug).
    Jobs must be picklable module-level functions; results come back in input order.

    Args:
        workers: number of processes (0 = in-process).
        context: multiprocessing start method. "spawn" (default) starts clean interpreters,
            safe whatever threads the parent runs (torch, data loaders); "fork" and
            "forkserver" also work on Linux.
    """

    def __init__(self, workers: int, context: str = "spawn") -> None:
        if workers < 0:
            raise ValueError(f"CRFPool: workers must be >= 0, got {workers}")
        self.workers = workers
        self.context = context
        self._executor: ProcessPoolExecutor | None = None
        if workers > 0:
            self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # Children inherit the environment at start-up: with one thread per library they never
        # oversubscribe the cores, even if the parent's main module imports torch under spawn.
        saved = {var: os.environ.get(var) for var in _THREAD_ENV}
        os.environ.update({var: "1" for var in _THREAD_ENV})
        try:
            executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context(self.context),
                initializer=_init_worker,
            )
            # Start every worker now, while the thread variables are set.
            list(executor.map(_noop, range(self.workers)))
        finally:
            for var, value in saved.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value
        return executor

    def map(self, fn: Callable[[T], R], args: Iterable[T]) -> list[R]:
        """Apply ``fn`` to every item of ``args`` (spread over the workers) in order.

        If a worker process died (e.g. killed by the OOM killer), the pool is restarted and
        the jobs are tried once more; a second failure raises.
        """
        return self.submit_map(fn, args).result()

    def submit_map(self, fn: Callable[[T], R], args: Iterable[T]) -> PendingMap[R]:
        """Start ``map(fn, args)`` on the workers and return at once.

        The caller does other work, then takes the ordered results with
        :meth:`PendingMap.result`; the retry-once-on-a-dead-worker rule of :meth:`map` holds.
        With ``workers=0`` nothing runs in the background: the jobs run in this process
        when the result is asked for.
        """
        items = list(args)
        if self._executor is None:
            if self.workers > 0:
                raise RuntimeError("CRFPool: map() called after close()")
            return PendingMap(self, fn, items, None, retried=False)
        try:
            return PendingMap(self, fn, items, self._submit_all(fn, items), retried=False)
        except BrokenProcessPool:  # the pool died between two calls: restart, that is the retry
            self._restart()
            return PendingMap(self, fn, items, self._submit_all(fn, items), retried=True)

    def _submit_all(self, fn: Callable[[T], R], items: list[T]) -> list[Future[R]]:
        assert self._executor is not None
        return [self._executor.submit(fn, a) for a in items]

    def _restart(self) -> None:
        """Replace a broken executor by a fresh one."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._start()

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> CRFPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class PendingMap(Generic[R]):
    """The results of a :meth:`CRFPool.submit_map` call, in input order, once ready.

    Args:
        pool: the pool the jobs were given to.
        fn, items: the job function and its arguments (kept to run them again after a crash).
        futures: one future per item, or None to run the jobs in-process in :meth:`result`.
        retried: the one restart allowed was already spent at submission.
    """

    def __init__(self, pool: CRFPool, fn: Callable[[Any], R], items: list[Any],
                 futures: list[Future[R]] | None, *, retried: bool) -> None:
        self._pool, self._fn, self._items = pool, fn, items
        self._futures, self._retried = futures, retried
        self._executor = pool._executor  # the executor the futures belong to
        self._done: list[R] | None = None

    def result(self) -> list[R]:
        """Wait for every job; return the results in input order (the same list on a 2nd call).

        Raises:
            BrokenProcessPool: a worker died again after the pool had been restarted once.
            Exception: whatever a job raised.
        """
        if self._done is not None:
            return self._done
        if self._futures is None:
            self._done = [self._fn(a) for a in self._items]
            return self._done
        try:
            self._done = [f.result() for f in self._futures]
        except BrokenProcessPool:
            if self._retried:
                raise
            # Another pending map may have restarted the pool already: restart only the
            # executor these futures came from.
            if self._pool._executor is self._executor:
                self._pool._restart()
            if self._pool._executor is None:
                raise
            self._done = [f.result() for f in self._pool._submit_all(self._fn, self._items)]
        return self._done


def _noop(x: int) -> int:
    """Trivial job used to start the workers eagerly."""
    return x
