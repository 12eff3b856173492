"""What every tracker shares: the writer interface (as detectron2's ``EventWriter``) and the
scalars a run hands each writer, by their tag (the table of :mod:`aakit.engine.tracking`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from aakit.engine.rundir import RunWriter
    from aakit.engine.trainer import Trainer

#: epoch record key -> tag
EPOCH_TAGS = {"miou": "val/miou", "miou_rfpc": "val/miou_rfpc", "pseudo_miou": "pseudo/miou"}


class TrackerWriter:
    """One tracking back-end of a run (rank 0). :class:`aakit.engine.tracking.TrackingHook`
    decides when (every ``train.log_every`` steps and the last, each evaluated epoch) and what
    (the same scalars for every writer); a writer only says where they go."""

    package: ClassVar[str]  # the package it needs (importlib.util.find_spec)
    extra: ClassVar[str]  # pip install 'aakit[EXTRA]'
    if_missing: ClassVar[Literal["warn", "refuse"]] = "refuse"  # warn: one warning, no writer
    without: ClassVar[str] = ""  # the end of the warning: what the run goes without

    def __init__(self, run: RunWriter) -> None:
        self.run = run

    def open(self, trainer: Trainer) -> None:
        """Before the first step (a resumed run: continue what it wrote before)."""

    def write(self, scalars: dict[str, float], step: int) -> None:
        """``scalars`` by tag at ``step``."""
        raise NotImplementedError

    def flush(self) -> None:
        """After each evaluated epoch's scalars."""

    def close(self, trainer: Trainer, summary: dict[str, Any] | None) -> None:
        """After summary.json (``summary``: its content for a finished run, else None): the
        final metrics, then end (also after a failure, and when :meth:`open` did not finish)."""


def step_scalars(losses: dict[str, float], lr: float | None, images_per_s: float | None) -> dict[str, float]:
    """A step record's scalars by their tag: ``loss/<term>``, ``train/learning_rate`` (``train/lr`` before issue 29), ``train/images_per_s``."""
    out = {f"loss/{name}": float(value) for name, value in losses.items()}
    for tag, value in (("train/learning_rate", lr), ("train/images_per_s", images_per_s)):
        if isinstance(value, (int, float)):
            out[tag] = float(value)
    return out


def epoch_scalars(record: dict[str, Any]) -> dict[str, float]:
    """An epoch record's scalars by their tag (:data:`EPOCH_TAGS`)."""
    return {tag: float(record[key]) for key, tag in EPOCH_TAGS.items() if isinstance(record.get(key), (int, float))}


def final_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """``final/<split>_miou`` for each result of summary.json, and ``final/pseudo_miou``."""
    out: dict[str, float] = {}
    for key, res in (summary.get("metrics") or {}).items():
        if isinstance(res, dict) and isinstance(res.get("miou"), (int, float)):
            out[f"final/{key}_miou"] = float(res["miou"])
    if isinstance(summary.get("pseudo_miou"), (int, float)):
        out["final/pseudo_miou"] = float(summary["pseudo_miou"])
    return out
