"""Worker processes for grids and searches: one per GPU (or CPU share), started with spawn.

``--workers N --gpus 0,1`` pins worker ``i`` to GPU ``gpus[i % len(gpus)]`` through
``CUDA_VISIBLE_DEVICES``, set in the child before anything imports torch. Without ``--gpus``,
several workers run on the CPU (``CUDA_VISIBLE_DEVICES=""``) and share its cores
(``OMP_NUM_THREADS = cores // N`` unless the user set it). Spawn, not fork: a forked child of a
process that already started torch's thread pools can deadlock.
"""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue
import traceback
from typing import Any, Callable, Sequence

from aakit.errors import AakitError
from aakit.experiment.lifecycle import WorkerSpec


class WorkerError(AakitError):
    """A worker process stopped on an error (its message is passed on)."""


def parse_gpus(gpus: str | Sequence[str | int] | None) -> list[str] | None:
    """``"0,1"`` or ``[0, 1]`` -> ``["0", "1"]``; None or "" -> None."""
    if gpus is None:
        return None
    items = gpus.split(",") if isinstance(gpus, str) else [str(g) for g in gpus]
    items = [g.strip() for g in items if str(g).strip()]
    for g in items:
        if not g.isdigit():
            raise WorkerError(f"--gpus {gpus!r}: expected GPU indices like 0,1")
    return items or None


def worker_env(index: int, workers: int, gpus: list[str] | None) -> dict[str, str]:
    """Environment variables that pin worker ``index`` of ``workers``."""
    env: dict[str, str] = {}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    elif workers > 1:
        env["CUDA_VISIBLE_DEVICES"] = ""
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    return env


def _entry(index: int, env: dict[str, str], fn: Callable[..., Any], args: tuple[Any, ...], q: Any) -> None:
    os.environ.update(env)
    try:
        q.put((index, "ok", fn(*args, worker_index=index)))
    except AakitError as e:
        q.put((index, "user", str(e)))
    except KeyboardInterrupt:
        q.put((index, "interrupted", "interrupted"))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        q.put((index, "error", traceback.format_exc(limit=5)))


def run_workers(fn: Callable[..., Any], args: tuple[Any, ...], workers: int, gpus: list[str] | None) -> list[Any]:
    """Run ``fn(*args, worker_index=i)`` in ``workers`` spawned processes; their results in order.

    ``fn`` and ``args`` must be picklable (module-level functions, plain data).

    Raises:
        WorkerError: a worker raised (its first error is named) or died without a result.
        KeyboardInterrupt: Ctrl-C; the children get it too (same process group) and stop.
    """
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [
        ctx.Process(target=_entry, args=(i, worker_env(i, workers, gpus), fn, args, q), daemon=False)
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    results: dict[int, tuple[str, Any]] = {}
    try:
        while len(results) < workers:
            try:
                i, kind, payload = q.get(timeout=0.5)
                results[i] = (kind, payload)
            except queue.Empty:
                for i, p in enumerate(procs):
                    if i not in results and not p.is_alive() and p.exitcode not in (None, 0):
                        # Give a just-finished message a moment to arrive before declaring death.
                        try:
                            j, kind, payload = q.get(timeout=1.0)
                            results[j] = (kind, payload)
                        except queue.Empty:
                            results[i] = ("error", f"worker {i} died (exit code {p.exitcode})")
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
        raise
    for p in procs:
        p.join()
    errors = [(i, k, v) for i, (k, v) in sorted(results.items()) if k != "ok"]
    if errors:
        if any(k == "interrupted" for _, k, _ in errors):
            raise KeyboardInterrupt
        i, kind, msg = errors[0]
        text = msg if kind == "user" else msg.strip().splitlines()[-1]
        raise WorkerError(f"worker {i}: {text}")
    return [results[i][1] for i in range(workers)]


def dispatch(fn: Callable[..., Any], spec: WorkerSpec, args: tuple[Any, ...], *, workers: int, gpus: list[str] | None,
             log: Callable[[str], None] | None) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """Run a grid or search worker: here if ``workers == 1`` (pinned to the first GPU), else
    in ``workers`` spawned processes (one GPU each, no progress bar).

    ``fn(spec, *args, log=..., worker_index=...)`` returns ``{"ran": [...], "failed": [...]}``;
    the parts are merged into (ran, failed).
    """
    if workers == 1:
        if gpus:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpus[0]
        parts = [fn(spec, *args, log=log)]
    else:
        parts = run_workers(fn, (dataclasses.replace(spec, progress=False), *args), workers, gpus)
    ran = [r for part in parts for r in part["ran"]]
    failed = [tuple(f) for part in parts for f in part["failed"]]
    return ran, failed
