"""Cluster launchers: the workers of a grid or search as submitit jobs (``--launcher local|slurm``).

Without ``--launcher`` a grid or search runs as before: in this process, or in ``--workers N``
spawned processes (:mod:`aakit.experiment.workers`). With it, each of the ``--workers N``
workers is a submitit job that runs the very same worker loop (``grid._grid_worker``,
``search._search_worker``) against the shared storage:

- ``--launcher slurm``: one SLURM job array of N tasks (``SlurmExecutor``; ``--slurm-partition``,
  ``--slurm-time``, ``--slurm-gpus-per-task``, ``--slurm-cpus-per-task``). ``aakit grid``
  submits and returns; the tasks claim points from the study like any worker, so tasks that are
  killed, pre-empted or still queued lose nothing: a killed task's point is freed once its
  heartbeat is older than the grace period (``studies.fail_dead_trials``) and the next worker
  resumes its run from the checkpoint. Each task is :class:`WorkerTask`, which submitit
  requeues (``checkpoint``) when SLURM warns of the time limit (SIGUSR2, 90 s before) or of a
  pre-emption: the unit it was training ends FAIL ``interrupted`` and is claimed again (by the
  requeued task or another). After ``REQUEUES`` time-outs submitit raises inside the worker
  instead, which fails that unit as an ``error``: the next invocation runs it again.
- ``--launcher local``: the same jobs through submitit's ``LocalExecutor`` (subprocesses of this
  machine); ``aakit grid`` waits for them. It needs no cluster, so the tests use it.

Job files and each task's log (stdout, stderr) go to ``<results>/jobs/<study>/``. submitit is
optional (``pip install 'aakit[cluster]'``) and imported only here, only when a launcher is
asked for.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, NamedTuple, Sequence

from aakit.errors import AakitError
from aakit.experiment.lifecycle import WorkerSpec

LAUNCHERS = ("local", "slurm")
INSTALL = "pip install 'aakit[cluster]' (make setup installs it)"
LOCAL_TIMEOUT_MIN = 60 * 24 * 365  # submitit's LocalExecutor kills a job after 2 minutes unless told
# Time-outs after which a task is no longer requeued (submitit's max_num_timeout; its default is 3).
# A task is a worker that keeps claiming points, so a long grid reaches its time limit many times.
REQUEUES = 20


class LaunchError(AakitError):
    """A launcher that cannot be used: an unknown name, a bad option value, submitit missing."""


@dataclass(frozen=True)
class Cluster:
    """How the workers are launched: ``local`` (submitit's LocalExecutor) or ``slurm`` with options.

    Attributes:
        launcher: ``local`` or ``slurm``.
        partition: ``--partition`` of the SLURM tasks (None: the cluster's default).
        time_min: each task's time limit in minutes (``--time``; required for SLURM).
        gpus_per_task: GPUs of each task (``--gpus-per-task``; None: none asked).
        cpus_per_task: CPU cores of each task (``--cpus-per-task``; None: the cluster's default).
    """

    launcher: str
    partition: str | None = None
    time_min: int | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None


class Submitted(NamedTuple):
    """What a launcher did: the workers' parts (when it waited for them) and the job ids."""

    parts: list[Any]
    job_ids: list[str]
    folder: Path


# ----------------------------------------------------------------------------- options
_TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")


def parse_time(text: str) -> int:
    """A SLURM time limit in whole minutes (seconds rounded up).

    SLURM's forms: ``MIN``, ``MIN:SEC``, ``H:MIN:SEC``, ``D-H``, ``D-H:MIN``, ``D-H:MIN:SEC``.

    Raises:
        LaunchError: anything else, or a limit of zero.
    """
    m = _TIME.match(text.strip())
    if m is None:
        raise LaunchError(f"--slurm-time {text!r}: expected minutes or [D-]H:MM:SS, e.g. 240 or 1-12:00:00")
    days = int(m["d"] or 0)
    fields = [int(x) for x in (m["a"], m["b"], m["c"]) if x is not None]
    if m["d"] is not None:  # D-H, D-H:M, D-H:M:S
        h, mi, s = (fields + [0, 0])[:3]
    elif len(fields) == 3:  # H:M:S
        h, mi, s = fields
    else:  # M or M:S
        h, (mi, s) = 0, (fields + [0])[:2]
    seconds = (((days * 24) + h) * 60 + mi) * 60 + s
    if seconds <= 0:
        raise LaunchError(f"--slurm-time {text!r}: the time limit must be above zero")
    return -(-seconds // 60)


def cluster_options(
    launcher: str | None,
    *,
    partition: str | None = None,
    time: str | None = None,
    gpus_per_task: int | None = None,
    cpus_per_task: int | None = None,
) -> Cluster | None:
    """Check the ``--launcher`` and ``--slurm-*`` options of ``aakit grid`` / ``aakit search``.

    Returns None without a launcher (the workers run as before).

    Raises:
        LaunchError: an unknown launcher, a ``--slurm-*`` option without ``--launcher slurm``,
            a bad value, ``--launcher slurm`` without ``--slurm-time``.
    """
    given = {"--slurm-partition": partition, "--slurm-time": time, "--slurm-gpus-per-task": gpus_per_task,
             "--slurm-cpus-per-task": cpus_per_task}
    stray = [k for k, v in given.items() if v is not None]
    if launcher is not None and launcher not in LAUNCHERS:
        raise LaunchError(f"--launcher {launcher!r}: choose one of {', '.join(LAUNCHERS)}")
    if launcher != "slurm":
        if stray:
            raise LaunchError(f"{stray[0]} needs --launcher slurm")
        return None if launcher is None else Cluster("local")
    if time is None:
        raise LaunchError("--launcher slurm needs --slurm-time (each task's limit, e.g. 24:00:00)")
    for flag, value, low in (("--slurm-gpus-per-task", gpus_per_task, 0), ("--slurm-cpus-per-task", cpus_per_task, 1)):
        if value is not None and value < low:
            raise LaunchError(f"{flag} {value}: must be >= {low}")
    if partition is not None and not re.fullmatch(r"[A-Za-z0-9_.,-]+", partition):
        raise LaunchError(f"--slurm-partition {partition!r}: expected a partition name like gpu")
    return Cluster("slurm", partition, parse_time(time), gpus_per_task or None, cpus_per_task)


def require_submitit() -> ModuleType:
    """The submitit module, or a one-line LaunchError saying how to install it."""
    try:
        return importlib.import_module("submitit")
    except ImportError:
        raise LaunchError(f"--launcher needs the submitit package, which is not installed: {INSTALL}") from None


def check_cluster(cluster: Cluster, gpus: Any) -> None:
    """What must hold before anything is written: submitit importable; for SLURM, no ``--gpus``
    and ``sbatch`` and ``srun`` on the PATH (submitit needs both)."""
    if cluster.launcher not in LAUNCHERS:
        raise LaunchError(f"--launcher {cluster.launcher!r}: choose one of {', '.join(LAUNCHERS)}")
    if cluster.launcher == "slurm" and gpus:
        raise LaunchError("--gpus pins GPUs of this machine; on SLURM ask for them with --slurm-gpus-per-task")
    require_submitit()
    if cluster.launcher == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        raise LaunchError("--launcher slurm: sbatch and srun are not on the PATH here; submit from a SLURM "
                          "login node (--launcher local runs the same jobs on this machine)")


def slurm_parameters(cluster: Cluster, job_name: str, tasks: int) -> dict[str, Any]:
    """``SlurmExecutor.update_parameters`` keywords: one task per job, ``tasks`` jobs in an array.

    Each array task is one worker (1 node, 1 task), with ``cluster``'s partition, time limit,
    GPUs and CPUs; all ``tasks`` may run at once (``array_parallelism``).
    """
    params: dict[str, Any] = {"job_name": job_name, "nodes": 1, "ntasks_per_node": 1, "time": cluster.time_min,
                              "array_parallelism": tasks}
    if cluster.partition is not None:
        params["partition"] = cluster.partition
    if cluster.gpus_per_task:
        params["gpus_per_task"] = cluster.gpus_per_task
    if cluster.cpus_per_task is not None:
        params["cpus_per_task"] = cluster.cpus_per_task
    return params


# ----------------------------------------------------------------------------- the task
@dataclass
class WorkerTask:
    """One worker as a submitit job: ``fn(spec, *args, worker_index=index)`` with ``env`` set.

    ``env`` values of None unset the variable. Returns ``("ok", part)`` or ``("user", message)``
    for an :class:`AakitError`, also printed to the job's stderr log (other errors fail the job,
    with their traceback in its log).
    submitit calls :meth:`checkpoint` when SLURM signals a time-out or pre-emption: the task is
    requeued as it is; its unfinished unit was marked FAIL ("interrupted") and is claimed again.
    """

    fn: Callable[..., Any]
    spec: WorkerSpec
    args: tuple[Any, ...]
    index: int
    env: dict[str, str | None]

    def __call__(self) -> tuple[str, Any]:
        for k, v in self.env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        try:
            return "ok", self.fn(self.spec, *self.args, worker_index=self.index)
        except AakitError as e:  # said in the job's log too: nobody waits for a SLURM task's result
            print(f"aakit: error: {e}", file=sys.stderr, flush=True)
            return "user", str(e)

    def checkpoint(self) -> Any:
        """Requeue this task unchanged (submitit's Checkpointable protocol)."""
        return require_submitit().helpers.DelayedSubmission(self)


def job_folder(results: Path, study: str) -> Path:
    """Where submitit writes the job files and the tasks' logs: ``<results>/jobs/<study>/``."""
    return Path(results) / "jobs" / study


def launch(fn: Callable[..., Any], spec: WorkerSpec, args: tuple[Any, ...], *, cluster: Cluster, workers: int,
           envs: Sequence[dict[str, str | None]], study: str) -> Submitted:
    """Run ``workers`` workers through ``cluster``'s executor.

    ``local``: waits for the jobs and returns their parts (see :func:`wait`); ``slurm``:
    submits one job array and returns its job ids at once. ``envs[i]`` is worker ``i``'s
    environment (:func:`aakit.experiment.workers.worker_env`).
    """
    submitit = require_submitit()
    folder = job_folder(spec.results, study)
    tasks = [WorkerTask(fn, spec, args, i, dict(envs[i])) for i in range(workers)]
    if cluster.launcher == "slurm":
        executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=REQUEUES)
        executor.update_parameters(**slurm_parameters(cluster, study, workers))
    else:
        executor = submitit.LocalExecutor(folder=folder / "%j", max_num_timeout=REQUEUES)
        executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
    ids, jobs = submit(executor, tasks, cluster.launcher)
    if cluster.launcher == "slurm":
        return Submitted([], ids, folder)
    return Submitted(wait(jobs), ids, folder)


def submit(executor: Any, tasks: Sequence[WorkerTask], launcher: str) -> tuple[list[str], list[Any]]:
    """Submit ``tasks`` as one batch (a SLURM job array); their job ids and jobs.

    Raises:
        LaunchError: the submission was refused (e.g. sbatch's ``invalid partition``), in one line.
    """
    said = io.StringIO()  # submitit prints sbatch's stderr itself: it goes into the one line instead
    try:
        with contextlib.redirect_stderr(said), executor.batch():
            jobs = [executor.submit(task) for task in tasks]
    except Exception as e:  # noqa: BLE001 - submitit's FailedJobError / FailedSubmissionError, OSError
        text = (str(e).strip() or said.getvalue().strip() or type(e).__name__).splitlines()[0]
        raise LaunchError(f"--launcher {launcher}: the jobs could not be submitted: {text}") from None
    return [str(j.job_id) for j in jobs], jobs


def wait(jobs: Sequence[Any]) -> list[Any]:
    """The parts of the local jobs once all have ended, in order; Ctrl-C cancels them (their
    units end FAIL "interrupted", free for the next invocation).

    Raises:
        LaunchError: the first job that raised (its last line and its log) or whose worker
            stopped on an AakitError.
    """
    parts: list[Any] = []
    errors: list[str] = []
    try:
        for i, job in enumerate(jobs):
            try:
                kind, payload = job.result()
            except Exception as e:  # noqa: BLE001 - submitit's FailedJobError / UncompletedJobError
                last = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                errors.append(f"worker {i} (job {job.job_id}) failed: {last} (log: {job.paths.stderr})")
                continue
            if kind != "ok":
                errors.append(f"worker {i}: {payload}")
            parts.append(payload)
    except KeyboardInterrupt:
        for job in jobs:
            job.cancel(check=False)
        raise
    if errors:
        raise LaunchError(errors[0])
    return parts


def describe_jobs(cluster: Cluster, job_ids: Sequence[str], folder: Path | None) -> str:
    """One line on what a launcher did: the SLURM array submitted, or the local jobs run."""
    if cluster.launcher == "slurm":
        array = job_ids[0].split("_")[0] if job_ids else "?"
        return (f"submitted {len(job_ids)} SLURM task(s) as job array {array}; logs in {folder}/; "
                "follow with --dry-run, squeue or aakit tui")
    return f"ran {len(job_ids)} worker job(s) through submitit's LocalExecutor; logs in {folder}/"
