"""One lifecycle for the units of work of grids and searches: claim, heartbeat, train, finish.

A grid point and a search trial go through the same steps, on an Optuna study that any number
of worker processes and machines share (see :mod:`aakit.experiment.studies` for storages and
liveness):

1. **recover** — :meth:`Lifecycle.recover_stale` marks the RUNNING trials of dead workers
   (``kill -9``, a machine gone) FAIL with ``outcome = "stale"``, which frees their work;
2. **claim** — a RUNNING trial carrying this worker's identity (host, pid, pid_start,
   session, heartbeat): :meth:`Lifecycle.claim` creates it in one storage operation with the
   unit's attributes, :meth:`Lifecycle.ask` lets the study's sampler create it. *Which* unit
   is claimed is the caller's business (a grid: the first free point, after a race check; a
   search: Optuna's suggestion, within the trial budget);
3. **train** — :meth:`Lifecycle.run_unit` trains a :class:`Job` under a
   :class:`~aakit.experiment.studies.Heartbeat`, with a per-epoch callback;
4. **finish** — COMPLETE with the run's value, PRUNED, or FAIL with ``outcome = "error"`` (one
   line, secrets masked: :func:`one_line`) or ``"interrupted"`` (Ctrl-C, SIGTERM: re-raised).

What differs between the two kinds of worker is a :class:`Report`: what the trial is told after
each epoch (a grid: the val mIoU; a search: the same through Optuna's pruner), which value the
finished run gives it, and how it is marked COMPLETE or PRUNED.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from aakit.config import Config
from aakit.errors import reason
from aakit.experiment import studies
from aakit.redact import redact_text

TrainFn = Callable[..., Path]
Say = Callable[[str], None]


def default_train() -> TrainFn:
    """The engine's ``train`` (imported late: keeps torch out of ``aakit grid --help``)."""
    from aakit.engine.train import train

    return train


def metric_value(summary: dict[str, Any], metric: str) -> float | None:
    """``summary.json``'s mIoU of ``metric`` (else of ``val``), or None."""
    metrics = summary.get("metrics") or {}
    for key in (metric, "val"):
        m = metrics.get(key)
        if isinstance(m, dict) and isinstance(m.get("miou"), (int, float)):
            return float(m["miou"])
    return None


def one_line(e: BaseException) -> str:
    """An error on one line, as stored in a trial and printed (secrets masked): its type, its
    first line and, for a longer message, its cause (:func:`aakit.errors.reason`)."""
    return reason(e, 300, text=redact_text(str(e)))  # masked before it is cut


def printer(prefix: str) -> Say:
    """Where a worker's lines go without a ``log``: stdout, each line headed ``[prefix]``."""
    return lambda msg: print(f"[{prefix}] {msg}", flush=True)


class UnitFailed(Exception):
    """A trained run that gives its trial no value (the message is one line)."""


@dataclass(frozen=True)
class WorkerSpec:
    """How a worker runs its units. Plain data: it is pickled to spawned worker processes.

    Attributes:
        results: the results directory (runs/, grids/, studies/).
        storage: the storage URL, or None for the default journal file.
        session: the invocation's id (shared by its workers; see :func:`studies.new_session`).
        train: the training function; None for the engine's.
        heartbeat: seconds between heartbeats of a running trial.
        grace: seconds without a heartbeat after which another host's trial counts as dead.
        progress: show the engine's progress bar.
        max_failures: a grid or search worker stops after this many of its points or trials fail
            in a row, so a broken machine (a deleted environment, a dead GPU) does not fail every point.
    """

    results: Path
    storage: str | None
    session: str
    train: TrainFn | None
    heartbeat: float
    grace: float
    progress: bool
    max_failures: int = 3


@dataclass(frozen=True)
class Claim:
    """A RUNNING trial this worker owns."""

    trial_id: int
    number: int

    @classmethod
    def of(cls, trial: optuna.Trial) -> "Claim":
        return cls(trial._trial_id, trial.number)


@dataclass
class Job:
    """What a claimed trial trains: a config under a run name, maybe resumed from a run dir."""

    config: Config
    name: str
    overrides: list[str]
    resume: Path | None = None


@dataclass
class Outcome:
    """How a unit ended: ``done`` (with its run and value), ``pruned`` or ``failed``."""

    state: Literal["done", "pruned", "failed"]
    run: str | None = None
    value: float | None = None
    message: str = ""  # failed: the one-line error; pruned: why


class Report(Protocol):
    """What a trial is told: the part of the lifecycle that differs between grids and searches."""

    def on_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """After each epoch (the metrics.jsonl epoch record); may raise ``optuna.TrialPruned``."""

    def value(self, run_dir: Path) -> float:
        """The trial's value from a trained run; raises :class:`UnitFailed` if it has none."""

    def complete(self, value: float, run: str) -> None:
        """Mark the trial COMPLETE with ``value`` (``run`` is the run directory's name)."""

    def prune(self) -> None:
        """Mark the trial PRUNED (``on_epoch`` raised ``optuna.TrialPruned``)."""


@dataclass
class Lifecycle:
    """One worker's side of a shared study: recover, claim, train under a heartbeat, finish.

    Made by :meth:`open` in the worker process (storages and studies are not passed between
    processes); ``train`` is the spec's trainer, or the engine's.
    """

    spec: WorkerSpec
    default_journal: Path
    storage: optuna.storages.BaseStorage
    study: optuna.Study
    study_id: int
    identity: studies.Worker
    train: TrainFn = field(repr=False)

    @classmethod
    def open(
        cls,
        spec: WorkerSpec,
        default_journal: Path,
        study_name: str,
        sampler: optuna.samplers.BaseSampler | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
    ) -> "Lifecycle":
        """Open the storage and the study (creating it if needed) for this worker process."""
        storage = studies.open_storage(spec.storage, default_journal)
        study = studies.get_or_create_study(storage, study_name, direction="maximize", sampler=sampler,
                                            pruner=pruner)
        return cls(spec, default_journal, storage, study, storage.get_study_id_from_name(study_name),
                   studies.Worker.current(spec.session), spec.train or default_train())

    @property
    def where(self) -> str:
        """The storage as printed and recorded (no password)."""
        return studies.describe_storage(self.spec.storage, self.default_journal)

    # ------------------------------------------------------------------ looking
    def trials(self) -> list[FrozenTrial]:
        return self.storage.get_all_trials(self.study_id, deepcopy=False)

    def is_live(self, trial: FrozenTrial) -> bool:
        """A RUNNING trial whose worker is still there."""
        return studies.is_live(trial, self.spec.grace)

    def recover_stale(self) -> list[int]:
        """Mark the trials of dead workers FAIL (``outcome = "stale"``); their numbers."""
        return studies.fail_dead_trials(self.storage, self.trials(), self.spec.grace)

    @contextlib.contextmanager
    def budget_lock(self) -> Iterator[None]:
        """Among the processes of this machine, make "count the trials, then claim" atomic."""
        with studies.journal_lock(self.spec.storage, self.default_journal):
            yield

    # ------------------------------------------------------------------ claiming
    def claim(self, attrs: dict[str, Any]) -> Claim:
        """Create a RUNNING trial with this worker's identity and ``attrs``, in one operation."""
        template = FrozenTrial(
            number=0, state=TrialState.RUNNING, value=None, datetime_start=studies.utc_now(),
            datetime_complete=None, params={}, distributions={},
            user_attrs={**self.identity.attrs(), **attrs},
            system_attrs={}, intermediate_values={}, trial_id=0,
        )
        trial_id = self.storage.create_new_trial(self.study_id, template_trial=template)
        return Claim(trial_id, self.storage.get_trial(trial_id).number)

    def ask(self) -> optuna.Trial:
        """A new trial from the study's sampler, signed with this worker's identity."""
        trial = self.study.ask()
        for k, v in self.identity.attrs().items():
            trial.set_user_attr(k, v)
        return trial

    def set_run(self, claim: Claim, run: str) -> None:
        """Record the run directory the trial trains (user attribute ``run``)."""
        self.storage.set_trial_user_attr(claim.trial_id, "run", run)

    # ------------------------------------------------------------------ training, finishing
    def finish(self, claim: Claim, state: TrialState, value: float | None = None,
               attrs: dict[str, Any] | None = None) -> bool:
        """Set ``attrs``, then the final state; False if the trial was already finished."""
        return studies.finish_trial(self.storage, claim.trial_id, state, value, attrs)

    def fail(self, claim: Claim, outcome: str, error: str | None = None) -> Outcome:
        """Mark the trial FAIL with ``outcome`` (and ``error``, one line)."""
        attrs: dict[str, Any] = {"outcome": outcome}
        if error is not None:
            attrs["error"] = error
        self.finish(claim, TrialState.FAIL, attrs=attrs)
        return Outcome("failed", message=error or outcome)

    def run_unit(self, claim: Claim, job: Job, report: Report) -> Outcome:
        """Train ``job`` under a heartbeat, then finish the trial as ``report`` says.

        A training error fails the trial (``outcome = "error"``) and is returned, so one bad
        unit does not stop the worker; Ctrl-C or SIGTERM fails it as ``"interrupted"`` and is
        raised again.
        """
        try:
            with studies.Heartbeat(self.storage, claim.trial_id, self.spec.heartbeat):
                run_dir = Path(self.train(job.config, results=self.spec.results, name=job.name,
                                          overrides=list(job.overrides), resume=job.resume,
                                          epoch_callback=report.on_epoch, progress=self.spec.progress))
        except optuna.TrialPruned as e:
            report.prune()
            return Outcome("pruned", message=str(e))
        except (KeyboardInterrupt, SystemExit):
            self.fail(claim, "interrupted")
            raise
        except Exception as e:  # noqa: BLE001 - one failed unit must not stop the others
            return self.fail(claim, "error", one_line(e))
        try:
            value = report.value(run_dir)
        except UnitFailed as e:
            return self.fail(claim, "error", str(e))
        report.complete(value, run_dir.name)
        return Outcome("done", run=run_dir.name, value=value)
