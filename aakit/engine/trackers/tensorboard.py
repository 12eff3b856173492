"""``tensorboard``: TensorBoard event files in the run directory (``tensorboard --logdir
results/runs`` shows every run under its directory name), the hyper-parameters (HPARAMS tab)
with the final metrics, and the first example predictions as pictures.

A resumed run purges the points at or after the step it resumes from (``purge_step``), so an
interrupted and resumed run shows one curve, as ``metrics.jsonl`` does. Without the package:
one warning, no event files.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aakit.config import Config, key_hyperparameters
from aakit.engine.trackers.base import TrackerWriter, final_metrics, step_scalars
from aakit.runs import learning_rate, read_metrics

if TYPE_CHECKING:
    from aakit.engine.trainer import Trainer


def has_events(path: Path) -> bool:
    """Whether ``path`` already holds TensorBoard event files (a run trained before)."""
    return any(Path(path).glob("events.out.tfevents.*"))


def hparams_of(cfg: Config, run_hash: str) -> dict[str, Any]:
    """The hyper-parameters shown in TensorBoard's HPARAMS tab (scalars and strings only);
    ``run_hash``: the hash the run was created under (its directory's suffix)."""
    h: dict[str, Any] = {"name": cfg.name, "backbone": cfg.model.backbone, "epochs": cfg.train.epochs,
                         "batch_size": cfg.train.batch_size, "lr": cfg.optim.lr, "seed": cfg.train.seed,
                         "config_hash": run_hash}
    h |= key_hyperparameters(cfg)
    return {k: v for k, v in h.items() if isinstance(v, (bool, int, float, str))}


def example_picture(root: str, pred: Path) -> Any:
    """image | prediction | pseudo label (whichever exist) as one HxWx3 uint8 array, or None."""
    import numpy as np
    from PIL import Image

    from aakit.data.voc import image_path

    paths = [image_path(root, pred.stem), pred, pred.parent.parent / "pseudo" / pred.name]
    panels = []
    for p in paths:
        try:
            with Image.open(p) as im:
                panels.append(np.asarray(im.convert("RGB")))
        except OSError:
            continue
    if len(panels) < 2 or len({a.shape for a in panels}) != 1:
        return None
    return np.concatenate(panels, axis=1)


class TensorBoardWriter(TrackerWriter):
    """Event files in the run directory."""

    package, extra, if_missing, without = "tensorboard", "tensorboard", "warn", "no event files"
    tb: Any = None

    def open(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        purge = self.purge_step(trainer)
        self.tb = SummaryWriter(log_dir=str(self.run.path), purge_step=purge, flush_secs=30)
        if purge is not None and purge == trainer.step > 0:
            self.relog_step(purge)

    def purge_step(self, t: Trainer) -> int | None:
        """Where a run trained before (resumed, or restarted without a checkpoint) drops its old
        points: after the checkpoint's step; at it when that step's epoch evaluation is redone
        (a checkpoint taken between an epoch's last step and its evaluation)."""
        if not has_events(self.run.path):
            return None
        redo_eval = t.step > 0 and t.epochs_done < t.step // t.batches_per_epoch
        return t.step if redo_eval else t.step + 1

    def relog_step(self, step: int) -> None:
        """Write the step record of ``step`` again from metrics.jsonl (it was purged with the evaluation)."""
        for r in read_metrics(self.run.metrics_path)[0]:
            if r.get("kind") == "step" and r.get("step") == step:
                self.write(step_scalars(r.get("losses") or {}, learning_rate(r), r.get("images_per_s")), step)

    def write(self, scalars: dict[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self.tb.add_scalar(tag, value, step)

    def flush(self) -> None:
        self.tb.flush()

    def close(self, trainer: Trainer, summary: dict[str, Any] | None) -> None:
        """Hyper-parameters and final metrics (a finished run), then close the event file."""
        if self.tb is None:
            return
        if summary is not None:
            self.write_hparams(trainer, final_metrics(summary))
            self.write_examples(trainer)
        self.tb.close()
        self.tb = None

    def write_examples(self, trainer: Trainer, limit: int = 4) -> None:
        """The first example predictions the run saved (examples/pred/), each as one picture:
        the image, the prediction and, if saved, the pseudo label side by side."""
        for pred in sorted((self.run.path / "examples" / "pred").glob("*.png"))[:limit]:
            picture = example_picture(trainer.cfg.data.root, pred)
            if picture is not None:
                self.tb.add_image(f"examples/{pred.stem}", picture, trainer.step, dataformats="HWC")

    def write_hparams(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """The hyper-parameters and the final metrics, in this run's own event file (no sub-run)."""
        from torch.utils.tensorboard.summary import hparams

        for summ in hparams(hparams_of(trainer.cfg, self.run.run_hash()), metrics):
            self.tb._get_file_writer().add_summary(summ)
        self.write(metrics, trainer.step)
