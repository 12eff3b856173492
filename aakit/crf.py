"""Dense CRF (Kraehenbuehl & Koltun 2011) and a persistent pool of CRF worker processes.

The dense CRF refines per-pixel class scores with two pairwise kernels: a Gaussian on position
(smoothness) and a bilateral one on position + colour (pixels of similar colour that are close
should share a label). Two back-ends compute the same mean-field inference: ``pydensecrf``
(C++, CPU; this module only prepares its inputs) and ``torch`` (:mod:`aakit.crf_torch`, a
permutohedral lattice in PyTorch, batched, on any device; it agrees with pydensecrf to float
precision). :func:`dense_crf_batch` runs a whole batch on the tensors' device;
:func:`resolve_backend` turns a config's ``auto`` into one of the two.

Mean-field inference is single-threaded C++ and cannot use the GPU, so the pseudo-labeller
spreads the images of a batch over :class:`CRFPool` workers. The pool lives as long as the
training run (starting processes per step would cost more than the CRF itself).
:meth:`CRFPool.submit_map` hands the jobs to the workers and returns at once, so the training
process can run the backward pass of the classification loss while the CRFs run.

This module imports only numpy and the standard library (plus the light config schema) at load
time; pydensecrf when a CRF first runs on it (it is optional: the ``densecrf`` extra) and torch
only for the torch back-end, so worker processes never import torch through it.

Example::

    q = dense_crf(image, prob, CRFParams())          # (C, H, W), sums to 1 over C
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

import importlib.util
from typing import TYPE_CHECKING, Literal

import numpy as np

from aakit.config import CRFParams

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
R = TypeVar("R")

# Probabilities are clipped before the log so that a zero score gives a large but finite energy
# (the value pydensecrf's own ``unary_from_softmax`` uses, as RRM does).
PROB_CLIP = 1e-5

# Thread-count variables of the common numeric runtimes: CRF workers are single-threaded jobs,
# one per core, so any library they load must not start a thread pool of its own.
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


CRFBackend = Literal["pydensecrf", "torch"]


def pydensecrf_available() -> bool:
    """Whether pydensecrf (the ``densecrf`` extra) is installed."""
    try:
        return importlib.util.find_spec("pydensecrf") is not None
    except (ImportError, ValueError):  # hidden or half-installed
        return False


def resolve_backend(backend: str, device: str = "cpu") -> CRFBackend:
    """``auto`` -> ``torch`` on CUDA, else ``pydensecrf`` when installed, else ``torch``.

    Raises:
        ValueError: an unknown back-end name.
    """
    if backend == "auto":
        if str(device).startswith("cuda") or not pydensecrf_available():
            return "torch"
        return "pydensecrf"
    if backend not in ("pydensecrf", "torch"):
        raise ValueError(f"unknown CRF back-end {backend!r} (auto, pydensecrf or torch)")
    return backend  # type: ignore[return-value]


def _pydensecrf() -> Any:
    """The ``pydensecrf.densecrf`` module, imported on first use.

    Raises:
        ImportError: pydensecrf is not installed (with how to get it or avoid it).
    """
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as exc:
        raise ImportError(
            "the pydensecrf CRF back-end needs pydensecrf: pip install 'aakit[densecrf]' "
            "(needs a C++ compiler), or set pseudo.crf_backend / eval.crf_backend to torch"
        ) from exc
    return dcrf


def dense_crf(image: np.ndarray, prob: np.ndarray, params: CRFParams, *,
              backend: CRFBackend = "pydensecrf", device: str = "cpu") -> np.ndarray:
    """Refine class scores with a fully connected CRF.

    Args:
        image: (H, W, 3) uint8 RGB image the bilateral kernel compares colours on.
        prob: (C, H, W) scores in [0, 1], one channel per label. They need not sum to 1 over C:
            the unary is ``-log(clip(prob, 1e-5, 1))`` and a per-pixel constant does not change
            the CRF's distribution (RRM feeds raw background/CAM scores the same way).
        params: iterations and kernel parameters.
        backend: ``pydensecrf`` (C++) or ``torch`` (:mod:`aakit.crf_torch`).
        device: where the torch back-end runs (the result comes back as numpy).

    Returns:
        (C, H, W) float32 marginals Q: a distribution over the C labels at every pixel.

    Raises:
        ValueError: shapes disagree, the image is not (H, W, 3) or the back-end is unknown.
        ImportError: ``backend="pydensecrf"`` without pydensecrf installed.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"dense_crf: image must be (H, W, 3), got {image.shape}")
    if prob.ndim != 3 or prob.shape[1:] != image.shape[:2]:
        raise ValueError(f"dense_crf: prob {prob.shape} does not match image {image.shape}")
    if backend == "torch":
        return _dense_crf_torch(image, prob, params, device)
    if backend != "pydensecrf":
        raise ValueError(f"dense_crf: unknown back-end {backend!r} (pydensecrf or torch)")
    n_labels, h, w = prob.shape
    crf = _pydensecrf().DenseCRF2D(w, h, n_labels)
    unary = -np.log(np.clip(prob, PROB_CLIP, 1.0)).reshape(n_labels, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    rgb = np.ascontiguousarray(image, dtype=np.uint8)  # pydensecrf reads raw C-ordered bytes
    crf.addPairwiseBilateral(
        sxy=params.bilateral_sxy, srgb=params.bilateral_srgb, rgbim=rgb, compat=params.bilateral_compat
    )
    q = crf.inference(params.iterations)
    return np.asarray(q, dtype=np.float32).reshape(n_labels, h, w)


def _dense_crf_torch(image: np.ndarray, prob: np.ndarray, params: CRFParams, device: str) -> np.ndarray:
    """:func:`dense_crf` on the torch back-end (one image, on ``device``)."""
    import torch

    images = torch.from_numpy(np.ascontiguousarray(image, dtype=np.uint8)).permute(2, 0, 1)[None]
    probs = torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32))[None]
    return dense_crf_batch(images.to(device), probs.to(device), params)[0].cpu().numpy()


def dense_crf_batch(images: torch.Tensor, probs: torch.Tensor, params: CRFParams) -> torch.Tensor:
    """The torch back-end on a batch: (B, 3, H, W) uint8 and (B, C, H, W) float on any device
    -> (B, C, H, W) float32 marginals on that device (see :func:`aakit.crf_torch.dense_crf_batch`)."""
    from aakit.crf_torch import dense_crf_batch as run

    return run(images, probs, params)


def dense_crf_job(args: tuple[Any, ...]) -> np.ndarray:
    """``dense_crf(image, prob, params[, backend])``: a one-argument job for :meth:`CRFPool.map`."""
    image, prob, params, *rest = args
    return dense_crf(image, prob, params, backend=rest[0] if rest else "pydensecrf")


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
