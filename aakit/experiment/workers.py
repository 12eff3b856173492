"""Worker processes for grids and searches: one per GPU (or CPU share), started with spawn.

``--workers N --gpus 0,1`` pins worker ``i`` to GPU ``gpus[i % len(gpus)]`` through
``CUDA_VISIBLE_DEVICES``, set in the child before anything imports torch. Without ``--gpus``,
several workers run on the CPU (``CUDA_VISIBLE_DEVICES=""``) and share its cores
(``OMP_NUM_THREADS = cores // N`` unless the user set it). Spawn, not fork: a forked child of a
process that already started torch's thread pools can deadlock.

:class:`RunOptions` are the options ``run_grid`` and ``run_search`` share (``--results``,
``--storage``, ``--workers``, ``--gpus``, ...); :meth:`Launch.prepare` checks them, creates the
study and draws the invocation's session, and :meth:`Launch.dispatch` runs the workers: here
and in spawned processes, or, with ``launcher`` (``--launcher local|slurm``), as submitit jobs
(:mod:`aakit.experiment.launch`).
"""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence, TypedDict

from optuna.storages import BaseStorage

from aakit.errors import AakitError
from aakit.experiment import studies
from aakit.experiment.launch import Cluster, check_cluster, launch
from aakit.experiment.lifecycle import Say, TrainFn, WorkerSpec


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
    return merge_parts(parts)


def merge_parts(parts: list[dict[str, Any]]) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """The workers' ``{"ran", "failed"}`` parts as one (ran, failed)."""
    ran = [r for part in parts for r in part["ran"]]
    failed = [tuple(f) for part in parts for f in part["failed"]]
    return ran, failed


def cluster_env(index: int, workers: int, gpus: list[str] | None, cluster: Cluster) -> dict[str, str | None]:
    """The environment of launched worker ``index`` (None: unset the variable).

    ``local``: pinned as a spawned worker (:func:`worker_env`), else with this process's
    ``CUDA_VISIBLE_DEVICES`` (submitit's LocalExecutor would hide every GPU). ``slurm``: SLURM
    sets the GPUs; ``OMP_NUM_THREADS`` follows ``--slurm-cpus-per-task`` unless the user set it.
    """
    if cluster.launcher == "local":
        return {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"), **worker_env(index, workers, gpus)}
    if cluster.cpus_per_task and "OMP_NUM_THREADS" not in os.environ:
        return {"OMP_NUM_THREADS": str(cluster.cpus_per_task)}
    return {}


class Dispatched(NamedTuple):
    """What the workers did (ran, failed), and the jobs of a launcher (ids, their folder)."""

    ran: list[Any]
    failed: list[tuple[Any, ...]]
    job_ids: Sequence[str] = ()
    jobs: Path | None = None


class RunOptions(TypedDict, total=False):
    """The keyword options of ``run_grid`` and ``run_search`` (all optional).

    Keys:
        results: the results directory (runs/, grids/, studies/); default ``results``.
        storage: None (default) for the journal file ``results/studies/<grid|search>-<name>.log``,
            or a storage URL to share with other machines (``postgresql://...``).
        workers: worker processes on this machine (default 1), each pinned by ``gpus`` or to the CPU.
        gpus: GPU indices, e.g. ``"0,1"``.
        train: the training function (the engine's by default; tests inject a fake).
        heartbeat: seconds between heartbeats of a running unit (default 30).
        grace: seconds without a heartbeat after which another host's unit counts as dead
            (default 600).
        progress: show the engine's progress bar (default True; only with one worker).
        max_failures: a worker stops after this many of its points (grid) or trials (search)
            fail in a row (default 3).
        log: where progress lines go (default: printed, each headed by its worker).
        launcher: None (default) for the above; a :class:`~aakit.experiment.launch.Cluster` to
            run the ``workers`` as submitit jobs (``--launcher local|slurm``; ``log`` unused:
            each job logs to its file under ``results/jobs/``).
    """

    results: Path
    storage: str | None
    workers: int
    gpus: str | Sequence[str | int] | None
    train: TrainFn | None
    heartbeat: float
    grace: float
    progress: bool
    max_failures: int
    log: Say | None
    launcher: Cluster | None


def check_workers(options: RunOptions, error: type[AakitError]) -> None:
    """Refuse unknown options (TypeError, as for any call), a worker count below 1 (``error``)
    and a launcher that cannot run (:func:`aakit.experiment.launch.check_cluster`)."""
    unknown = sorted(set(options) - set(RunOptions.__optional_keys__))
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
    workers = options.get("workers", 1)
    if workers < 1:
        raise error(f"--workers {workers}: must be >= 1")
    if options.get("max_failures", 3) < 1:
        raise error(f"--max-failures {options['max_failures']}: must be >= 1")
    if options.get("launcher") is not None:
        check_cluster(options["launcher"], options.get("gpus"))


@dataclass(frozen=True)
class Launch:
    """A grid or search ready to start its workers: options checked, study created, session drawn."""

    spec: WorkerSpec
    workers: int
    gpus: list[str] | None
    log: Say | None
    default_journal: Path
    storage: BaseStorage
    study: str
    cluster: Cluster | None = None

    @classmethod
    def prepare(cls, options: RunOptions, kind: str, name: str, study_name: str) -> "Launch":
        """Parse ``--gpus``, open the storage and create the study (StorageError: one line)."""
        gpus = parse_gpus(options.get("gpus"))
        results = Path(options.get("results", Path("results")))
        default = studies.default_storage_path(results, kind, name)
        url = options.get("storage")
        storage = studies.open_storage(url, default, say=options.get("log"))  # recovers a torn journal
        studies.get_or_create_study(storage, study_name, direction="maximize")
        spec = WorkerSpec(results, url, studies.new_session(), options.get("train"), options.get("heartbeat", 30.0),
                          options.get("grace", 600.0), options.get("progress", True), options.get("max_failures", 3))
        return cls(spec, options.get("workers", 1), gpus, options.get("log"), default, storage, study_name,
                   options.get("launcher"))

    @property
    def where(self) -> str:
        """The storage as printed and recorded (no password)."""
        return studies.describe_storage(self.spec.storage, self.default_journal)

    def dispatch(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Dispatched:
        """Run ``fn(spec, *args)`` in this launch's workers (see :func:`dispatch`), or as the jobs
        of its launcher (:func:`aakit.experiment.launch.launch`: SLURM returns once submitted)."""
        if self.cluster is None:
            return Dispatched(*dispatch(fn, self.spec, args, workers=self.workers, gpus=self.gpus, log=self.log))
        envs = [cluster_env(i, self.workers, self.gpus, self.cluster) for i in range(self.workers)]
        sub = launch(fn, self.spec, args, cluster=self.cluster, workers=self.workers, envs=envs, study=self.study)
        return Dispatched(*merge_parts(sub.parts), sub.job_ids, sub.folder)
