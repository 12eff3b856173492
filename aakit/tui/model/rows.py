"""The records the screens draw: one run's table row, one run's detail, the loss terms' names."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

#: Labels of the loss terms (a term not listed is labelled with its name in capitals). Which
#: terms a run has is read from the run: see :func:`loss_names`.
LOSS_LABELS: dict[str, str] = {"cls": "CLS", "ce": "CE", "aa": "AA", "lr": "LR", "total": "total"}

Series = tuple[tuple[float, ...], tuple[float, ...]]  # (x values, y values)


def loss_names(details: Iterable[RunDetail]) -> tuple[str, ...]:
    """The loss terms the runs recorded (the names in their step records' ``losses``, as the
    engine's loss table wrote them), in order of first appearance, ``total`` left out."""
    names: dict[str, None] = {}
    for d in details:
        names.update((k, None) for k in d.loss_series if k != "total")
    return tuple(names)


def loss_label(name: str) -> str:
    """How a loss term is labelled on screen."""
    return LOSS_LABELS.get(name, name.upper())


# ----------------------------------------------------------------------------- values
def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (bools, strings, NaN and inf are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def integer(value: Any) -> int | None:
    """``value`` as an int (truncated), or None when it is not a finite number."""
    f = number(value)
    return int(f) if f is not None else None


# ----------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class RunRow:
    """One line of the runs table: what is known about a run right now.

    Attributes:
        name: the run directory's name.
        path: the run directory.
        status: running / finished / failed / interrupted / stale / corrupt (see ``problem``).
        epoch, epochs: the last epoch seen and the planned number of epochs.
        step, steps_total: the last iteration logged and the planned total.
        progress: fraction done in [0, 1].
        eta: seconds left (running runs only), estimated from recent step times.
        losses: the last step's losses by term name, and ``total``.
        lr: the last step's learning rate.
        best_miou: the best validation mIoU over epochs (0..1), else summary.json's.
        hparams: ``aakit.config.key_hyperparameters`` of the run's config.
        errors: number of malformed metrics lines seen.
        updated: unix time of the newest metrics record.
        host: the host written in status.json.
        problem: why the run directory is corrupt (``"no config.yaml"``...), else None.
    """

    name: str
    path: Path
    status: str
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    steps_total: int | None = None
    progress: float = 0.0
    eta: float | None = None
    losses: Mapping[str, float] = field(default_factory=dict)
    lr: float | None = None
    best_miou: float | None = None
    hparams: Mapping[str, Any] = field(default_factory=dict)
    errors: int = 0
    updated: float | None = None
    host: str | None = None
    problem: str | None = None

    def search_text(self) -> str:
        """The text a filter is matched against: name, status, host, hyperparameters, problem."""
        hp = " ".join(f"{k}={v}" for k, v in self.hparams.items())
        return f"{self.name} {self.status} {self.host or ''} {hp} {self.problem or ''}".lower()


@dataclass(frozen=True)
class RunDetail:
    """Everything the run view and the compare view draw for one run.

    Attributes:
        row: the run's table row.
        loss_series: per loss term recorded (e.g. ``cls``, ``ce``, ``aa``, ``lr``) and ``total``: (steps, values).
        lr_series: learning rate per step.
        miou_series: ``"mIoU"`` and ``"pseudo mIoU"`` per epoch, in percent.
        config: the resolved config (config.yaml).
        logs: the last log lines, formatted ``HH:MM:SS message``.
        errors: the malformed-line messages of metrics.jsonl.
        status_info: status.json.
        mechanism: the last mechanism record as text lines (:func:`aakit.runlist.mechanism_lines`).
    """

    row: RunRow
    loss_series: Mapping[str, Series]
    lr_series: Series
    miou_series: Mapping[str, Series]
    config: Mapping[str, Any]
    logs: tuple[str, ...]
    errors: tuple[str, ...]
    status_info: Mapping[str, Any]
    mechanism: tuple[str, ...] = ()
