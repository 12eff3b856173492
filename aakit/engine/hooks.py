"""The hooks of a training run, one job each (as detectron2's ``engine/hooks.py``).

:func:`aakit.engine.train.train` installs them in this order, which is the order they run in at
every moment of the loop (:class:`aakit.engine.trainer.HookBase`)::

    EvalHook        rank 0  after each epoch: val mIoU (+rfpc), pseudo-label mIoU -> trainer.epoch_record
    MetricsLogger   rank 0  metrics.jsonl: step records, the epoch record
    MechanismHook   rank 0  eval.mechanism: at each evaluation, what AA / LR change on a probe batch
                            (aakit.mechanism) -> a "mechanism" line; the last goes to summary.json
    TrackingHook    rank 0  logging.backends: the same numbers to each tracker's writer (TensorBoard,
                            W&B, MLflow; aakit.engine.tracking); its closer runs after SummaryHook
    ProgressBar     rank 0  the rich progress bar on a terminal; PlainProgress: plain lines every
                            logging.print_every steps without one (--no-progress: neither)
    Checkpointer    all     checkpoints/last.pt: every N steps, after each epoch's evaluation, on a stop
    EpochCallbackHook rank 0 hands the epoch record to a callback (Optuna pruning)
    SignalHook      all     SIGINT/SIGTERM -> stop after the step (or the epoch's end-of-epoch work)
    SummaryHook     all     summary.json once the last epoch is done
    StatusHook      rank 0  status.json: running, then finished / interrupted / failed

What one hook needs from another goes through the trainer's state (``epoch_record``,
``outcome``) or, for the summary, the evaluation hook itself. Keeping the best checkpoint is
one more hook, :class:`BestCheckpoint`, added to that list.
"""
from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aakit.engine.distributed import all_gather_floats, barrier
from aakit.engine.evaluate import evaluate
from aakit.engine.measure import (
    confusions_path, epoch_protocol, example_saver, final_summary, pseudo_label_quality, save_examples,
)
from aakit.engine.rundir import RunWriter, load_checkpoint_file
from aakit.engine.trainer import HookBase, Trainer, TrainingInterrupted
from aakit.errors import reason
from aakit.redact import redact_text
from aakit.runs import write_confusions

EpochCallback = Callable[[int, dict[str, Any]], None]


class EvalHook(HookBase):
    """Every ``eval.every_epochs`` epochs and after the last: val mIoU with and without rfpc
    (:func:`aakit.engine.measure.epoch_protocol`), the pseudo labels' mIoU on train images
    (Figure 3) and, after the last epoch, the example PNGs; the result is ``trainer.epoch_record``."""

    def __init__(self, writer: RunWriter, val_set: Any, pseudo_set: Any, num_classes: int) -> None:
        self.writer, self.val_set, self.pseudo_set, self.num_classes = writer, val_set, pseudo_set, num_classes
        self.last_record: dict[str, Any] | None = None
        self.last_val: dict[str, dict[str, Any]] | None = None  # the last epoch's val evaluation

    def after_epoch(self) -> None:
        t, cfg = self.trainer, self.trainer.cfg
        last = t.epoch + 1 == cfg.train.epochs
        if not ((t.epoch + 1) % cfg.eval.every_epochs == 0 or last):
            return
        record: dict[str, Any] = {"kind": "epoch", "epoch": t.epoch + 1, "epochs": cfg.train.epochs, "step": t.step}
        per_image: dict[str, np.ndarray] | None = {} if last else None
        res = evaluate(t.model, self.val_set, epoch_protocol(cfg), num_classes=self.num_classes, device=t.device,
                       save_pred=example_saver(cfg, self.writer) if last else None, per_image=per_image)
        if last:
            self.last_val = res  # the final summary reuses it when its protocol is the same
            if t.dist.main and per_image:
                write_confusions(confusions_path(self.writer.path, cfg.data.val_split, epoch_protocol(cfg)), per_image)
        record["miou"] = res["plain"]["miou"]
        record["miou_rfpc"] = res["rfpc"]["miou"]
        if self.pseudo_set is not None and t.labeler is not None and t.epoch >= cfg.train.cls_warmup_epochs:
            record["pseudo_miou"] = pseudo_label_quality(t.model, self.pseudo_set, cfg, t.labeler, t.device,
                                                         self.num_classes)
        if last and t.labeler is not None and cfg.eval.save_examples:
            save_examples(t.model, cfg, t.labeler, t.device, self.writer.path / "examples")
        record["elapsed_s"] = time.time() - t.t_start
        t.epoch_record = self.last_record = record


def log_due(t: Trainer) -> bool:
    """Whether the step just done is logged: every ``train.log_every`` steps and the last
    (metrics.jsonl and every tracker)."""
    return t.step % t.cfg.train.log_every == 0 or t.step == t.total_steps


class MetricsLogger(HookBase):
    """metrics.jsonl: a step record every ``train.log_every`` steps (and at the last step), with
    every loss term by name; each evaluated epoch's record."""

    def __init__(self, writer: RunWriter) -> None:
        self.writer = writer

    def after_step(self) -> None:
        t, cfg = self.trainer, self.trainer.cfg
        if log_due(t):
            self.writer.log({"kind": "step", "epoch": t.epoch + 1, "epochs": cfg.train.epochs, "step": t.step,
                             "steps_total": t.total_steps, "losses": t.losses, "learning_rate": t.lr,
                             "images_per_s": t.images_per_s})

    def after_epoch(self) -> None:
        if self.trainer.epoch_record is not None:
            self.writer.log(self.trainer.epoch_record)


class MechanismHook(HookBase):
    """``eval.mechanism``: at each evaluation (every ``eval.every_epochs`` epochs and after the
    last, while the CRF workers are still open), :func:`aakit.mechanism.measure_mechanism` on the
    probe batch (the first ``eval.mechanism_images`` training images, centre crop) with the
    run's network and pseudo labels; a ``{"kind": "mechanism", ...}`` line in metrics.jsonl, and
    the last one is the summary's ``mechanism``. It changes no weight and draws no random number."""

    def __init__(self, writer: RunWriter, train_set: Any) -> None:
        self.writer, self.train_set = writer, train_set
        self.batch: dict[str, Any] | None = None
        self.last_record: dict[str, Any] | None = None

    def after_epoch(self) -> None:
        from aakit.mechanism import measure_mechanism, probe_batch

        t, cfg = self.trainer, self.trainer.cfg
        if not ((t.epoch + 1) % cfg.eval.every_epochs == 0 or t.epoch + 1 == cfg.train.epochs):
            return
        if self.batch is None:
            self.batch = probe_batch(self.train_set, cfg.eval.mechanism_images)
        tick = time.time()
        measured = measure_mechanism(t.model, self.batch, cfg, t.labeler, t.device)
        record = {"kind": "mechanism", "epoch": t.epoch + 1, "epochs": cfg.train.epochs, "step": t.step, **measured,
                  "seconds": time.time() - tick}
        self.writer.log(record)
        self.last_record = record


class ConsoleHook(HookBase):
    """What both progress displays say on the console, one line each: the resume ("resumed from
    step N"), an evaluation about to run ("evaluating epoch k ...", and the final one after the
    last epoch) and each evaluated epoch's mIoU. Subclasses draw the steps and :meth:`say` a line."""

    def __init__(self, title: str) -> None:
        self.title = title

    def say(self, msg: str) -> None:
        print(msg, flush=True)

    def announce_resume(self) -> None:
        t = self.trainer
        if t.resumed:
            self.say(f"{self.title}: resumed from step {t.step}/{t.total_steps} (epoch {t.epochs_done + 1} of "
                     f"{t.cfg.train.epochs})")

    def announce_evaluation(self) -> None:
        """At an epoch's last step, before its evaluation (EvalHook) runs."""
        t, cfg = self.trainer, self.trainer.cfg
        if t.step % t.batches_per_epoch:
            return
        if (t.epoch + 1) % cfg.eval.every_epochs == 0 or t.epoch + 1 == cfg.train.epochs:
            images = "all" if cfg.eval.max_images is None else f"up to {cfg.eval.max_images}"
            self.say(f"{self.title}: evaluating epoch {t.epoch + 1} on {images} {cfg.data.val_split} images ...")

    def after_epoch(self) -> None:
        t, record = self.trainer, self.trainer.epoch_record
        if record is not None:
            msg = f"epoch {record['epoch']}: val mIoU {100 * record.get('miou', float('nan')):.1f}"
            if record.get("pseudo_miou") is not None:
                msg += f", pseudo-label mIoU {100 * record['pseudo_miou']:.1f}"
            self.say(msg)
        if t.epochs_done == t.cfg.train.epochs:
            self.say(f"{self.title}: final evaluation (summary.json) ...")


class ProgressBar(ConsoleHook):
    """A rich progress bar (epoch, step, losses, images/s, ETA) for a terminal, and the console lines."""

    def say(self, msg: str) -> None:
        self.p.console.print(msg, highlight=False, markup=False)

    BAR = 12  # characters of the bar itself

    def before_train(self, console: Any = None) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        # what must stay readable first (step, %, elapsed, ETA), the losses last, fitted to the width
        self.p = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=self.BAR), TaskProgressColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"), transient=False, console=console,
        )
        self.p.start()
        self.task = self.p.add_task(self._title(), total=self.trainer.total_steps, completed=self.trainer.step, info="")
        self.announce_resume()

    def _fixed_width(self) -> int:
        """Columns the bar, %, step counts, elapsed and ETA take, with their gaps."""
        n = len(str(self.trainer.total_steps))
        return self.BAR + 4 + (2 * n + 1) + 7 + 3 + 7 + 7

    def _title(self) -> str:
        room = max(10, self.p.console.width - self._fixed_width() - 12)
        return self.title if len(self.title) <= room else self.title[: room - 1] + "~"

    def info(self, width: int) -> str:
        """The losses, epoch and speed, as much of them as fits in ``width`` characters."""
        t = self.trainer
        ep, speed = f"ep {t.epoch + 1}/{t.cfg.train.epochs}", f"{t.images_per_s:.1f} img/s"
        total = t.losses.get("total")
        for text in (f"{ep} " + " ".join(f"{k} {v:.3f}" for k, v in t.losses.items()) + f" {speed}",
                     f"{ep} total {total:.3f} {speed}" if total is not None else f"{ep} {speed}", ep):
            if len(text) <= width:
                return text
        return ""

    def after_step(self) -> None:
        t = self.trainer
        room = self.p.console.width - self._fixed_width() - len(self._title()) - 1
        self.p.update(self.task, completed=t.step, info=self.info(room))
        self.announce_evaluation()

    def after_train(self) -> None:
        if hasattr(self, "p"):
            self.p.stop()


class PlainProgress(ConsoleHook):
    """Without a terminal (nohup, SLURM, a pipe): a plain, flushed line every ``every`` steps (and
    the first and last), with step, epoch, losses, lr, images/s and ETA, and the console lines::

        synth-full-5bada9a1 step 40/1500 (3%) epoch 1/8 | cls=0.6931 total=0.6931 | lr 9.8e-05 | 28.5 img/s | eta 0:04:12
    """

    def __init__(self, title: str, every: int) -> None:
        super().__init__(title)
        self.every = every
        self.t0, self.step0 = 0.0, 0

    def before_train(self) -> None:
        self.t0, self.step0 = time.time(), self.trainer.step
        self.announce_resume()

    def after_step(self) -> None:
        t = self.trainer
        if t.step % self.every == 0 or t.step == t.total_steps or t.step == self.step0 + 1:
            self.say(self.line())
        self.announce_evaluation()

    def line(self) -> str:
        t = self.trainer
        done = t.step - self.step0
        eta = (time.time() - self.t0) / done * (t.total_steps - t.step) if done else 0.0
        losses = " ".join(f"{k}={v:.4f}" for k, v in t.losses.items())
        return (f"{self.title} step {t.step}/{t.total_steps} ({100 * t.step / t.total_steps:.0f}%) "
                f"epoch {t.epoch + 1}/{t.cfg.train.epochs} | {losses} | lr {t.lr:.2e} | "
                f"{t.images_per_s:.1f} img/s | eta {_hms(eta)}")


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Checkpointer(HookBase):
    """checkpoints/last.pt (weights, optimiser, RNG, step, epochs done, seconds trained): every ``every`` steps
    (0: never mid-epoch), at each epoch's end — after its evaluation, so the checkpoint counts the
    epoch as done — and when the run stops. Rank 0 writes; at an epoch's end every rank waits for it."""

    def __init__(self, writer: RunWriter, every: int = 0) -> None:
        self.writer, self.every = writer, every

    def save(self) -> None:
        t = self.trainer
        if t.dist.main:
            self.writer.save_checkpoint({
                "model": t.model.state_dict(),
                "optimizer": t.optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "step": t.step,
                "epochs_done": t.epochs_done,
                "elapsed_s": time.time() - t.t_start,  # a resumed run's wall time goes on from here
                "config_hash": self.writer.run_hash(),
                **{k: state() for k, state in t.checkpoint_extras.items()},  # eval.weights: the average
            })

    def after_step(self) -> None:
        if self.every and self.trainer.step % self.every == 0:
            self.save()

    def after_epoch(self) -> None:
        self.save()
        barrier(self.trainer.dist)

    def after_train(self) -> None:
        if self.trainer.outcome == "stopped":
            self.save()


class EpochCallbackHook(HookBase):
    """Hands each evaluated epoch's record to ``callback(epoch, record)`` (epochs from 1), which
    may raise to stop the run (an Optuna trial's ``TrialPruned``)."""

    def __init__(self, callback: EpochCallback) -> None:
        self.callback = callback

    def after_epoch(self) -> None:
        record = self.trainer.epoch_record
        if record is not None and "miou" in record:
            try:
                self.callback(self.trainer.epoch + 1, record)
            except BaseException as e:
                self.trainer.stop_request = e  # a stop (the run is interrupted), not a failure
                raise


class SignalHook(HookBase):
    """SIGINT/SIGTERM stop the run after the current step, or after the current epoch's
    end-of-epoch work when they arrive during it (the checkpointer then saves, the status says
    interrupted). One that arrives after the last step (the last evaluation, the summary) lets the
    run finish, and :func:`release_signals` hands it to the caller, which stops then.
    ``stop_after_steps`` stops the same way after that many steps (tests)."""

    def __init__(self, stop_after_steps: int | None = None) -> None:
        self.stop_after_steps = stop_after_steps
        self.signal: int | None = None
        self.old: dict[int, Any] = {}

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.signal = signum

    def before_train(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.old[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread
                pass

    def after_step(self) -> None:
        if self.stop_after_steps is not None and self.trainer.step >= self.stop_after_steps:
            self.signal = signal.SIGTERM
        if self.signal is not None:
            raise TrainingInterrupted()

    def after_epoch(self) -> None:
        if self.signal is not None and self.trainer.epochs_done < self.trainer.cfg.train.epochs:
            raise TrainingInterrupted()  # a signal during the evaluation: stop here, not a step later

    def after_train(self) -> None:
        if self.trainer.outcome != "finished":
            self.release()
        # finished: a signal during the final summary is still caught; the caller releases the
        # handlers (release_signals) once the run is complete, and stops then (issue 31)

    def release(self) -> int | None:
        """Put the handlers from before training back; the signal caught (or None)."""
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        self.old = {}
        return self.signal


def release_signals(trainer: Any) -> int | None:
    """After a run: its SignalHook's handlers restored, and the SIGINT/SIGTERM that arrived after
    its last step (during the last evaluation or the summary), which did not stop it, or None."""
    caught = [h.release() for h in trainer.hooks if isinstance(h, SignalHook)]
    return next((c for c in caught if c is not None), None)


class SummaryHook(HookBase):
    """summary.json once the last epoch is done: the final evaluation with the run's protocol
    (:func:`aakit.engine.measure.final_summary`) and every rank's parameter checksum."""

    def __init__(self, writer: RunWriter, val_set: Any, num_classes: int, evaluation: EvalHook | None,
                 mechanism: MechanismHook | None = None) -> None:
        self.writer, self.val_set, self.num_classes, self.evaluation = writer, val_set, num_classes, evaluation
        self.mechanism = mechanism

    def after_train(self) -> None:
        t = self.trainer
        if t.outcome != "finished":
            return
        checksums = all_gather_floats(t.dist, float(sum(p.detach().double().sum() for p in t.model.parameters())))
        if not t.dist.main:
            return
        last = self.evaluation.last_record if self.evaluation else None
        if last is None:  # resumed after the last evaluation: take it from the log
            from aakit.runs import read_metrics

            done = [r for r in read_metrics(self.writer.metrics_path)[0] if r.get("kind") == "epoch"]
            last = done[-1] if done else None
        summary = final_summary(t.model, t.cfg, self.writer, self.val_set, self.num_classes, t.device, last,
                                t.t_start, checksums, val_res=self.evaluation.last_val if self.evaluation else None)
        if self.mechanism is not None:
            summary["mechanism"] = self._last_mechanism()
        extra = dict(t.summary_extras)  # eval.weights: which weights; the last step's as metrics val_last
        summary["metrics"].update(extra.pop("metrics", {}))
        summary.update(extra)
        self.writer.write_summary(summary)

    def _last_mechanism(self) -> dict[str, Any] | None:
        """The last mechanism record, from the hook or, resumed after it, from the log."""
        record = self.mechanism.last_record if self.mechanism else None
        if record is None:
            from aakit.runs import read_metrics

            done = [r for r in read_metrics(self.writer.metrics_path)[0] if r.get("kind") == "mechanism"]
            record = done[-1] if done else None
        return {k: v for k, v in record.items() if k not in ("kind", "time")} if record else None


class StatusHook(HookBase):
    """status.json, the one place it is written: running at the start, then finished (after the
    summary), interrupted (stopped by a signal, Ctrl-C, or an epoch callback that raised to stop
    the run: an Optuna trial pruned) or failed, with the error on one line (any other exception:
    a corrupt image, a diverged loss, a full disk)."""

    def __init__(self, writer: RunWriter) -> None:
        self.writer = writer

    def before_train(self) -> None:
        self.writer.set_status("running", steps_total=self.trainer.total_steps, world_size=self.trainer.dist.world)

    def after_train(self) -> None:
        t = self.trainer
        if t.outcome in ("finished", "stopped"):
            self.writer.set_status("finished" if t.outcome == "finished" else "interrupted", step=t.step)
        elif _is_stop(t.error, t.stop_request):
            self.writer.set_status("interrupted", step=t.step)
        else:
            error = reason(t.error, 300, text=redact_text(str(t.error))) if t.error is not None else "unknown error"
            self.writer.set_status("failed", step=t.step, error=error)


def _is_stop(error: BaseException | None, stop_request: BaseException | None) -> bool:
    """An exception that stops a run rather than fails it: Ctrl-C outside the signal hook, an
    exit, or what the epoch callback raised."""
    return isinstance(error, (KeyboardInterrupt, SystemExit)) or (error is not None and error is stop_request)


class BestCheckpoint(HookBase):
    """checkpoints/best.pt: the weights of the evaluated epoch with the highest ``key`` so far
    (not installed by default; add it after :class:`EvalHook`, on rank 0)."""

    def __init__(self, writer: RunWriter, key: str = "miou") -> None:
        self.path = writer.ckpt_path.with_name("best.pt")
        self.writer, self.key, self.best = writer, key, -math.inf

    def before_train(self) -> None:
        if self.path.exists():  # a resumed run keeps the best of its first part
            self.best = float(load_checkpoint_file(self.path).get(self.key, -math.inf))

    def after_epoch(self) -> None:
        t = self.trainer
        value = (t.epoch_record or {}).get(self.key)
        if isinstance(value, (int, float)) and value > self.best:
            self.best = float(value)
            self.writer.save_checkpoint({"model": t.model.state_dict(), "step": t.step, "epoch": t.epoch + 1,
                                         self.key: self.best}, path=Path(self.path))
