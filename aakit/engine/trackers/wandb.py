"""``wandb``: Weights & Biases. The W&B run is named after the run directory (its id too, so a
resumed run continues it) and keeps its files in the directory's ``wandb/``; the resolved config
(and its hash) is its config, the ``final/<metric>`` values its summary. ``WANDB_MODE=offline``
writes without network (``wandb sync`` uploads later), ``WANDB_PROJECT`` names the project
(default ``aakit``). Without the package a run is refused before it starts."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aakit.engine.trackers.base import TrackerWriter, final_metrics
from aakit.errors import AakitError

if TYPE_CHECKING:
    from aakit.engine.trainer import Trainer


def wandb_run_id(run_dir: Path) -> str:
    """The W&B run id of a run directory: its name in W&B's id characters, at most 64 (the config
    hash at its end kept), so a resumed run continues the same W&B run."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_dir.name)[-64:]


class WandbWriter(TrackerWriter):
    """A W&B run: the scalars, the config, the final metrics as its summary."""

    package, extra = "wandb", "wandb"
    wb: Any = None

    def open(self, trainer: Trainer) -> None:
        import wandb

        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, disable_git=True)
        try:
            self.wb = wandb.init(dir=str(self.run.path), project=os.environ.get("WANDB_PROJECT") or "aakit",
                                 name=self.run.path.name, id=wandb_run_id(self.run.path), resume="allow",
                                 config=trainer.cfg.to_dict() | {"config_hash": self.run.run_hash()},
                                 settings=settings, reinit="create_new")
        except wandb.errors.Error as e:  # no API key, no network for online mode, ...
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise AakitError(f"logging.backends: wandb cannot start: {first} (wandb login, or WANDB_MODE=offline "
                             "to keep the W&B run in the run directory)") from None

    def write(self, scalars: dict[str, float], step: int) -> None:
        self.wb.log(scalars, step=step)

    def close(self, trainer: Trainer, summary: dict[str, Any] | None) -> None:
        """The final metrics as the W&B run's summary (a finished run), then end it."""
        if self.wb is None:
            return
        if summary is not None:
            self.wb.summary.update(final_metrics(summary))
        self.wb.finish(exit_code=0 if trainer.outcome in ("finished", "stopped") else 1)
        self.wb = None
