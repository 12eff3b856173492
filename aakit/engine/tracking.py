"""Tracking back-ends as hooks (``logging.backends`` in the config).

``metrics.jsonl`` (:class:`aakit.engine.hooks.MetricsLogger`) is always written: the TUI, the
report and resume read it. Each back-end of ``logging.backends`` beyond ``jsonl`` is a writer
(:class:`aakit.engine.trackers.base.TrackerWriter`, one file each under ``aakit/engine/trackers/``,
listed in :data:`aakit.trackers.TRACKERS`); one hook, :class:`TrackingHook` (as detectron2's
``PeriodicWriter``), owns the cadence and hands every writer the same scalars at the same steps::

    loss/<term>         every loss term by name (cls, ce, aa, lr, total), every train.log_every steps
    train/learning_rate the base learning rate of the step (poly schedule; train/lr before issue 29)
    train/images_per_s  speed of the step
    val/miou, val/miou_rfpc, pseudo/miou     each evaluated epoch, at its last step
    final/<metric>      summary.json's metrics at the end (TensorBoard: with the hyper-parameters)

``tensorboard`` (:mod:`aakit.engine.trackers.tensorboard`) writes event files into the run
directory, so that ``tensorboard --logdir results/runs`` shows every run under its directory
name, plus ``examples/<image>`` pictures; a resumed run purges the points at or after the step
it resumes from. ``wandb`` (:mod:`aakit.engine.trackers.wandb`) logs to a W&B run named after
the run directory; ``mlflow`` (:mod:`aakit.engine.trackers.mlflow`) to an MLflow run found
again by its ``aakit.run`` tag. A writer whose package is missing either warns once and is left
out (TensorBoard) or refuses the run before anything is trained (W&B, MLflow:
:func:`require_backends`). Logging draws no random number: a run's numbers are the same with or
without it (tests/test_golden.py).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

from aakit.config import Config
from aakit.engine.hooks import log_due
from aakit.engine.rundir import RunWriter
from aakit.engine.trackers.base import EPOCH_TAGS, TrackerWriter, epoch_scalars, final_metrics, step_scalars
from aakit.engine.trackers.mlflow import flat_params
from aakit.engine.trackers.tensorboard import example_picture, has_events, hparams_of
from aakit.engine.trackers.wandb import wandb_run_id
from aakit.engine.trainer import HookBase
from aakit.errors import AakitError
from aakit.runs import read_json
from aakit.trackers import TRACKERS

__all__ = [  # the names of before the writers had files of their own, kept for one release
    "EPOCH_TAGS", "TrackingHook", "epoch_scalars", "example_picture", "final_metrics", "flat_params", "has_events",
    "hparams_of", "mlflow_available", "require_backends", "step_scalars", "tensorboard_available", "tracking_hooks",
    "wandb_available", "wandb_run_id", "writer_class",
]

_WARNED: list[str] = []  # the trackers warned about in this process (a grid worker trains many runs)


def writer_class(name: str) -> type[TrackerWriter]:
    """The writer class of tracker ``name`` (:data:`aakit.trackers.TRACKERS`)."""
    module, _, cls = TRACKERS[name].partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def available(name: str) -> bool:
    """Whether the package tracker ``name`` needs is installed."""
    return importlib.util.find_spec(writer_class(name).package) is not None


def tensorboard_available() -> bool:
    """Whether the ``tensorboard`` package (which torch's SummaryWriter needs) is installed."""
    return available("tensorboard")


def wandb_available() -> bool:
    """Whether the ``wandb`` package is installed (the ``wandb`` extra)."""
    return available("wandb")


def mlflow_available() -> bool:
    """Whether the ``mlflow`` package (or mlflow-skinny) is installed (the ``mlflow`` extra)."""
    return available("mlflow")


def _requested(cfg: Config) -> list[str]:
    """The trackers of ``cfg.logging.backends``, in the registry's order (the order they run in)."""
    return [name for name in TRACKERS if name in cfg.logging.backends]


def require_backends(cfg: Config) -> None:
    """Refuse, before a run starts, a tracker that cannot work: one whose package is missing and
    that does not just warn (``wandb``, ``mlflow``)."""
    for name in _requested(cfg):
        cls = writer_class(name)
        if cls.if_missing == "refuse" and not available(name):
            raise AakitError(f"logging.backends lists {name} but the {cls.package} package is not installed: "
                             f"pip install 'aakit[{cls.extra}]' (or drop it: --set 'logging.backends=[jsonl,tensorboard]')")


def tracking_hooks(cfg: Config, writer: RunWriter) -> list[HookBase]:
    """The :class:`TrackingHook` of ``cfg.logging.backends`` beyond jsonl (none without a writer);
    a missing tensorboard: one warning line a process, no writer; a missing wandb or mlflow:
    :func:`require_backends`'s error."""
    require_backends(cfg)
    writers: list[TrackerWriter] = []
    for name in _requested(cfg):
        cls = writer_class(name)
        if available(name):
            writers.append(cls(writer))
        elif name not in _WARNED:
            _WARNED.append(name)
            print(f"aakit: warning: logging.backends lists {name} but the {cls.package} package is not "
                  f"installed (pip install 'aakit[{cls.extra}]'); {cls.without}", file=sys.stderr, flush=True)
    return [TrackingHook(writer, writers)] if writers else []


class TrackingHook(HookBase):
    """Every tracker's cadence (rank 0): each writer gets the same scalars at the same steps —
    a step's every ``train.log_every`` steps and at the last (as metrics.jsonl), an evaluated
    epoch's at its last step — and, from :meth:`closer`, the summary."""

    def __init__(self, run: RunWriter, writers: list[TrackerWriter]) -> None:
        self.run, self.writers = run, writers

    def before_train(self) -> None:
        for w in self.writers:
            w.open(self.trainer)

    def after_step(self) -> None:
        t = self.trainer
        if log_due(t):
            scalars = step_scalars(t.losses, t.lr, t.images_per_s)
            for w in self.writers:
                w.write(dict(scalars), t.step)

    def after_epoch(self) -> None:
        record = self.trainer.epoch_record
        if record is None:
            return
        scalars = epoch_scalars(record)
        for w in self.writers:
            if scalars:
                w.write(dict(scalars), record["step"])
            w.flush()

    def closer(self) -> HookBase:
        """The hook that ends every writer: install it after the SummaryHook, whose summary.json it reads."""
        return _CloseTrackers(self)

    def close(self) -> None:
        """Each writer's end, with summary.json's content for a finished run."""
        summary: Any = None
        if self.trainer.outcome == "finished":
            summary = read_json(self.run.path / "summary.json")
        for w in self.writers:
            w.close(self.trainer, summary if isinstance(summary, dict) else None)


class _CloseTrackers(HookBase):
    """After the summary: :meth:`TrackingHook.close`."""

    def __init__(self, hook: TrackingHook) -> None:
        self.hook = hook

    def after_train(self) -> None:
        self.hook.close()
