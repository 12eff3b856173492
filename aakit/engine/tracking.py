"""Tracking back-ends as hooks (``logging.backends`` in the config).

``metrics.jsonl`` (:class:`aakit.engine.hooks.MetricsLogger`) is always written: the TUI, the
report and resume read it. ``tensorboard`` adds :class:`TensorBoardLogger`, which writes
TensorBoard event files into the run directory, so that ``tensorboard --logdir results/runs``
shows every run under its directory name::

    loss/<term>         every loss term by name (cls, ce, aa, lr, total), every train.log_every steps
    train/learning_rate the base learning rate of the step (poly schedule; train/lr before issue 29)
    train/images_per_s  speed of the step
    val/miou, val/miou_rfpc, pseudo/miou     each evaluated epoch, at its last step
    final/<metric>      summary.json's metrics, with the hyper-parameters (HPARAMS tab), at the end
    examples/<image>    the first saved example predictions: image | prediction | pseudo label

A resumed run purges the points at or after the step it resumes from (``purge_step``), so an
interrupted and resumed run shows one curve, as ``metrics.jsonl`` does. Logging draws no random
number: a run's numbers are the same with or without it (tests/test_golden.py).

``wandb`` adds :class:`WandbLogger`: the same scalars under the same names (steps as the x axis),
the resolved config (and its hash) as the W&B run's config and the ``final/<metric>`` values as
its summary. The W&B run is named after the run directory and keeps its files in the directory's
``wandb/``; ``WANDB_MODE=offline`` writes them without network (``wandb sync`` uploads them
later), ``WANDB_PROJECT`` names the project (default ``aakit``). Unlike TensorBoard, asking for
W&B without the package installed is an error before anything is trained
(:func:`require_backends`).

``mlflow`` adds :class:`MlflowLogger`: the same scalars under the same names, the resolved config
flattened to MLflow params (``model.backbone``...) with ``config_hash``, and ``final/<metric>`` at
the end. It talks to ``MLFLOW_TRACKING_URI`` (a server, a database) or, without it, to a file
store in the run directory's ``mlruns/`` (``mlflow ui --backend-store-uri RUN/mlruns``); the
experiment is ``MLFLOW_EXPERIMENT_NAME`` (default ``aakit``). The MLflow run carries the run
directory's name as its name and as the tag ``aakit.run``, so a resumed run continues it. Like
W&B, asking for it without the package (the ``mlflow`` extra) is refused before training.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

from aakit.config import Config, key_hyperparameters
from aakit.errors import AakitError
from aakit.engine.rundir import RunWriter
from aakit.engine.trainer import HookBase
from aakit.runs import learning_rate, read_json, read_metrics

#: epoch record key -> TensorBoard tag
EPOCH_TAGS = {"miou": "val/miou", "miou_rfpc": "val/miou_rfpc", "pseudo_miou": "pseudo/miou"}

_WARNED: list[bool] = []


def tensorboard_available() -> bool:
    """Whether the ``tensorboard`` package (which torch's SummaryWriter needs) is installed."""
    return importlib.util.find_spec("tensorboard") is not None


def wandb_available() -> bool:
    """Whether the ``wandb`` package is installed (the ``wandb`` extra)."""
    return importlib.util.find_spec("wandb") is not None


def mlflow_available() -> bool:
    """Whether the ``mlflow`` package (or mlflow-skinny) is installed (the ``mlflow`` extra)."""
    return importlib.util.find_spec("mlflow") is not None


def require_backends(cfg: Config) -> None:
    """Refuse, before a run starts, a back-end that cannot work: ``wandb`` or ``mlflow`` without
    its package."""
    for name, available in (("wandb", wandb_available), ("mlflow", mlflow_available)):
        if name in cfg.logging.backends and not available():
            raise AakitError(f"logging.backends lists {name} but the {name} package is not installed: "
                             f"pip install 'aakit[{name}]' (or drop it: --set 'logging.backends=[jsonl,tensorboard]')")


def tracking_hooks(cfg: Config, writer: RunWriter) -> list[HookBase]:
    """The hooks of ``cfg.logging.backends`` beyond jsonl; a missing tensorboard: one warning
    line, no hook; a missing wandb: :func:`require_backends`'s error."""
    hooks: list[HookBase] = []
    require_backends(cfg)
    if "wandb" in cfg.logging.backends:
        hooks.append(WandbLogger(writer))
    if "mlflow" in cfg.logging.backends:
        hooks.append(MlflowLogger(writer))
    if "tensorboard" in cfg.logging.backends:
        if tensorboard_available():
            hooks.append(TensorBoardLogger(writer))
        elif not _WARNED:  # once per process (a grid worker trains many runs)
            _WARNED.append(True)
            print("aakit: warning: logging.backends lists tensorboard but the tensorboard package is not "
                  "installed (pip install 'aakit[tensorboard]'); no event files", file=sys.stderr, flush=True)
    return hooks


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


def final_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """``final/<split>_miou`` for each result of summary.json, and ``final/pseudo_miou``."""
    out: dict[str, float] = {}
    for key, res in (summary.get("metrics") or {}).items():
        if isinstance(res, dict) and isinstance(res.get("miou"), (int, float)):
            out[f"final/{key}_miou"] = float(res["miou"])
    if isinstance(summary.get("pseudo_miou"), (int, float)):
        out["final/pseudo_miou"] = float(summary["pseudo_miou"])
    return out


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


class TensorBoardLogger(HookBase):
    """TensorBoard event files in the run directory (rank 0): the scalars of the module's table."""

    def __init__(self, writer: RunWriter) -> None:
        self.run = writer
        self.tb: Any = None

    def before_train(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        purge = self.purge_step()
        self.tb = SummaryWriter(log_dir=str(self.run.path), purge_step=purge, flush_secs=30)
        if purge is not None and purge == self.trainer.step > 0:
            self.relog_step(purge)

    def purge_step(self) -> int | None:
        """Where a run trained before (resumed, or restarted without a checkpoint) drops its old
        points: after the checkpoint's step; at it when that step's epoch evaluation is redone
        (a checkpoint taken between an epoch's last step and its evaluation)."""
        t = self.trainer
        if not has_events(self.run.path):
            return None
        redo_eval = t.step > 0 and t.epochs_done < t.step // t.batches_per_epoch
        return t.step if redo_eval else t.step + 1

    def relog_step(self, step: int) -> None:
        """Write the step record of ``step`` again from metrics.jsonl (it was purged with the evaluation)."""
        for r in read_metrics(self.run.metrics_path)[0]:
            if r.get("kind") == "step" and r.get("step") == step:
                self.log_step(step, r.get("losses") or {}, learning_rate(r), r.get("images_per_s"))

    def after_step(self) -> None:
        t = self.trainer
        if not (t.step % t.cfg.train.log_every == 0 or t.step == t.total_steps):
            return
        self.log_step(t.step, t.losses, t.lr, t.images_per_s)

    def log_step(self, step: int, losses: dict[str, float], lr: float | None, images_per_s: float | None) -> None:
        for tag, value in step_scalars(losses, lr, images_per_s).items():
            self.tb.add_scalar(tag, value, step)

    def after_epoch(self) -> None:
        record = self.trainer.epoch_record
        if record is None:
            return
        for tag, value in epoch_scalars(record).items():
            self.tb.add_scalar(tag, value, record["step"])
        self.tb.flush()

    def closer(self) -> HookBase:
        """The hook that ends the event file: install it after the SummaryHook, whose summary.json it reads."""
        return _CloseTensorBoard(self)

    def finish(self) -> None:
        """Hyper-parameters and final metrics (a finished run), then close the event file."""
        if self.tb is None:
            return
        summary = read_json(self.run.path / "summary.json") if self.trainer.outcome == "finished" else None
        if isinstance(summary, dict):
            self.write_hparams(final_metrics(summary))
            self.write_examples()
        self.tb.close()
        self.tb = None

    def write_examples(self, limit: int = 4) -> None:
        """The first example predictions the run saved (examples/pred/), each as one picture:
        the image, the prediction and, if saved, the pseudo label side by side."""
        for pred in sorted((self.run.path / "examples" / "pred").glob("*.png"))[:limit]:
            picture = example_picture(self.trainer.cfg.data.root, pred)
            if picture is not None:
                self.tb.add_image(f"examples/{pred.stem}", picture, self.trainer.step, dataformats="HWC")

    def write_hparams(self, metrics: dict[str, float]) -> None:
        """The hyper-parameters and the final metrics, in this run's own event file (no sub-run)."""
        from torch.utils.tensorboard.summary import hparams

        for summ in hparams(hparams_of(self.trainer.cfg, self.run.run_hash()), metrics):
            self.tb._get_file_writer().add_summary(summ)
        for tag, value in metrics.items():
            self.tb.add_scalar(tag, value, self.trainer.step)


class _CloseTensorBoard(HookBase):
    """After the summary: :meth:`TensorBoardLogger.finish`."""

    def __init__(self, logger: TensorBoardLogger) -> None:
        self.logger = logger

    def after_train(self) -> None:
        self.logger.finish()


def step_scalars(losses: dict[str, float], lr: float | None, images_per_s: float | None) -> dict[str, float]:
    """A step record's scalars by their tag: ``loss/<term>``, ``train/learning_rate``, ``train/images_per_s``."""
    out = {f"loss/{name}": float(value) for name, value in losses.items()}
    for tag, value in (("train/learning_rate", lr), ("train/images_per_s", images_per_s)):
        if isinstance(value, (int, float)):
            out[tag] = float(value)
    return out


def epoch_scalars(record: dict[str, Any]) -> dict[str, float]:
    """An epoch record's scalars by their tag (:data:`EPOCH_TAGS`)."""
    return {tag: float(record[key]) for key, tag in EPOCH_TAGS.items() if isinstance(record.get(key), (int, float))}


def wandb_run_id(run_dir: Path) -> str:
    """The W&B run id of a run directory: its name in W&B's id characters, at most 64 (the config
    hash at its end kept), so a resumed run continues the same W&B run."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_dir.name)[-64:]


class WandbLogger(HookBase):
    """Weights & Biases (rank 0): the scalars of the module's table, the config, the final metrics."""

    def __init__(self, writer: RunWriter) -> None:
        self.run = writer
        self.wb: Any = None

    def before_train(self) -> None:
        import wandb

        cfg = self.trainer.cfg
        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, disable_git=True)
        try:
            self.wb = wandb.init(dir=str(self.run.path), project=os.environ.get("WANDB_PROJECT") or "aakit",
                                 name=self.run.path.name, id=wandb_run_id(self.run.path), resume="allow",
                                 config=cfg.to_dict() | {"config_hash": self.run.run_hash()}, settings=settings,
                                 reinit="create_new")
        except wandb.errors.Error as e:  # no API key, no network for online mode, ...
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise AakitError(f"logging.backends: wandb cannot start: {first} (wandb login, or WANDB_MODE=offline "
                             "to keep the W&B run in the run directory)") from None

    def after_step(self) -> None:
        t = self.trainer
        if t.step % t.cfg.train.log_every == 0 or t.step == t.total_steps:
            self.wb.log(step_scalars(t.losses, t.lr, t.images_per_s), step=t.step)

    def after_epoch(self) -> None:
        record = self.trainer.epoch_record
        if record is not None and epoch_scalars(record):
            self.wb.log(epoch_scalars(record), step=record["step"])

    def closer(self) -> HookBase:
        """The hook that ends the W&B run: install it after the SummaryHook, whose summary.json it reads."""
        return _Finish(self.finish)

    def finish(self) -> None:
        """The final metrics as the W&B run's summary (a finished run), then end it."""
        if self.wb is None:
            return
        outcome = self.trainer.outcome
        summary = read_json(self.run.path / "summary.json") if outcome == "finished" else None
        if isinstance(summary, dict):
            self.wb.summary.update(final_metrics(summary))
        self.wb.finish(exit_code=0 if outcome in ("finished", "stopped") else 1)
        self.wb = None


def flat_params(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as MLflow params: dotted keys, values as text (MLflow keeps 6000 chars)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out |= flat_params(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = str(value)[:6000]
    return out


class MlflowLogger(HookBase):
    """MLflow (rank 0), through an explicit client (no process-wide active run, so a grid worker's
    runs never mix): the scalars of the module's table, the config as params, the final metrics."""

    def __init__(self, writer: RunWriter) -> None:
        self.run = writer
        self.client: Any = None
        self.run_id: str | None = None

    def before_train(self) -> None:
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # the run directory's file store, which MLflow 3 refuses unless told it is wanted
            uri = (self.run.path / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "aakit"
        exp = self.client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(name)
        found = self.client.search_runs([exp_id], filter_string=f"tags.`aakit.run` = '{self.run.path.name}'",
                                        max_results=1)
        if found:  # a resumed run continues its MLflow run
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        params = flat_params(self.trainer.cfg.to_dict()) | {"config_hash": self.run.run_hash()}
        self.run_id = self.client.create_run(exp_id, run_name=self.run.path.name,
                                             tags={"aakit.run": self.run.path.name}).info.run_id
        self._log(params=params)

    def _log(self, metrics: dict[str, float] | None = None, step: int = 0,
             params: dict[str, str] | None = None) -> None:
        import time

        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        ms = [Metric(k, v, now, step) for k, v in (metrics or {}).items()]
        ps = [Param(k, v) for k, v in (params or {}).items()]
        for i in range(0, max(len(ms), len(ps)), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, metrics=ms[i:i + 100], params=ps[i:i + 100])

    def after_step(self) -> None:
        t = self.trainer
        if t.step % t.cfg.train.log_every == 0 or t.step == t.total_steps:
            self._log(step_scalars(t.losses, t.lr, t.images_per_s), step=t.step)

    def after_epoch(self) -> None:
        record = self.trainer.epoch_record
        if record is not None and epoch_scalars(record):
            self._log(epoch_scalars(record), step=record["step"])

    def closer(self) -> HookBase:
        """The hook that ends the MLflow run: install it after the SummaryHook (it reads summary.json)."""
        return _Finish(self.finish)

    def finish(self) -> None:
        """The final metrics (a finished run), then the run's end status."""
        if self.run_id is None:
            return
        outcome = self.trainer.outcome
        summary = read_json(self.run.path / "summary.json") if outcome == "finished" else None
        if isinstance(summary, dict):
            self._log(final_metrics(summary), step=self.trainer.step)
        status = {"finished": "FINISHED", "stopped": "KILLED"}.get(str(outcome), "FAILED")
        self.client.set_terminated(self.run_id, status=status)
        self.run_id = None


class _Finish(HookBase):
    """After the summary: call ``finish``."""

    def __init__(self, finish: Any) -> None:
        self.finish = finish

    def after_train(self) -> None:
        self.finish()
