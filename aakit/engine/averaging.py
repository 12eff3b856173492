"""Evaluation of averaged weights (``eval.weights``; issue 30, "the noise floor").

* ``last`` (default): the weights of the last step, as before the key existed; nothing here runs.
* ``ema``: an exponential moving average of the weights after every step,
  ``s_n = d s_(n-1) + (1 - d) w_n`` (:func:`ema_update`, ``s_0 = 0``), read bias-corrected as
  ``s_n / (1 - d^n)`` (:func:`ema_debiased`): a weighted mean of the weights of the steps taken,
  with weights ``d^(n-i)`` (the first weights, before any step, take no part). ``d`` is
  ``eval.ema_decay``; 0.99 averages over about ``1 / (1 - d)`` = 100 steps, 1.3 epochs of the
  synthetic preset's 75 steps per epoch (225 in all): after the last step the last epoch weighs
  ``(1 - d^75) / (1 - d^225)`` = 59 % of the mean, the first (before LR starts,
  ``loss.lr_last_epochs``) ``d^150 (1 - d^75) / (1 - d^225)`` = 13 %: long enough to smooth the
  step-to-step swing of the last epoch, short enough to be mostly the last epoch's weights.
* ``swa``: the mean of the weights at the end of each of the last ``eval.swa_epochs`` epochs
  (:func:`swa_update`, a running mean).

Only parameters are averaged. Buffers (BatchNorm's running statistics; GroupNorm, the small
backbone's, has none) are the live network's: running statistics are already a moving average of
the recent batches, and a frozen BatchNorm's (ResNet-38's) never change. At every evaluation the
averaged weights are loaded into the network for the evaluation hooks and the live weights put back
before the checkpoint, which stores them and the average's state (``averaging``), so a resumed
run averages exactly as an uninterrupted one. After the last epoch the averaged weights stay: they
are the run's weights (summary, checkpoint, a run that starts from this one); the live weights'
val mIoU goes to summary.json's metrics as ``val_last`` (``val_last_rfpc``), a metric a grid row
can read, so that both readings of one training can be compared.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from aakit.engine.evaluate import evaluate
from aakit.engine.hooks import EvalHook
from aakit.engine.measure import epoch_protocol
from aakit.engine.trainer import HookBase


def ema_update(shadow: torch.Tensor, weight: torch.Tensor, decay: float) -> None:
    """One EMA step, in place: ``s <- d s + (1 - d) w``."""
    shadow.mul_(decay).add_(weight.detach(), alpha=1.0 - decay)


def ema_debiased(shadow: torch.Tensor, decay: float, n: int) -> torch.Tensor:
    """The bias-corrected average ``s_n / (1 - d^n)`` after ``n >= 1`` updates from ``s_0 = 0``."""
    return shadow / (1.0 - decay**n)


def swa_update(mean: torch.Tensor, weight: torch.Tensor, n: int) -> None:
    """Running mean, in place: the mean of ``n`` snapshots becomes that of ``n + 1`` with ``weight``."""
    mean.add_(weight.detach() - mean, alpha=1.0 / (n + 1))


class WeightAverage:
    """The average of one network's parameters: ``kind`` ema (every step) or swa (epoch ends)."""

    def __init__(self, model: torch.nn.Module, kind: str, *, decay: float = 0.99, epochs_kept: int = 2) -> None:
        self.kind, self.decay, self.epochs_kept = kind, decay, epochs_kept
        self.n = 0
        self.avg = {k: torch.zeros_like(p, dtype=p.dtype) for k, p in model.named_parameters()}

    def after_step(self, model: torch.nn.Module) -> None:
        if self.kind == "ema":
            for k, p in model.named_parameters():
                ema_update(self.avg[k], p, self.decay)
            self.n += 1

    def after_epoch(self, model: torch.nn.Module, epoch: int, epochs: int) -> None:
        """``epoch`` counts from 1; swa keeps the ends of epochs ``epochs - epochs_kept + 1 ..``."""
        if self.kind == "swa" and epoch > epochs - self.epochs_kept:
            for k, p in model.named_parameters():
                swa_update(self.avg[k], p, self.n)
            self.n += 1

    def averaged(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The network's state with the averaged parameters (the live one before any update)."""
        state = {k: v.clone() for k, v in model.state_dict().items()}
        if self.n == 0:
            return state
        for k, v in self.avg.items():
            state[k] = ema_debiased(v, self.decay, self.n) if self.kind == "ema" else v.clone()
        return state

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "decay": self.decay, "epochs_kept": self.epochs_kept, "n": self.n,
                "avg": {k: v.clone() for k, v in self.avg.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n = int(state["n"])
        for k, v in state["avg"].items():
            self.avg[k].copy_(v)


class AveragingHook(HookBase):
    """``eval.weights`` ema or swa: keeps the average; at each evaluated epoch loads it into the
    network (after the live weights' val mIoU, at the last epoch). Installed before
    :class:`~aakit.engine.hooks.EvalHook`; :meth:`restorer` puts the live weights back (before
    the checkpointer) except after the last epoch."""

    def __init__(self, evaluation: EvalHook | None) -> None:
        self.evaluation = evaluation
        self.live: dict[str, torch.Tensor] | None = None
        self.average: WeightAverage | None = None

    def before_train(self) -> None:
        t, e = self.trainer, self.trainer.cfg.eval
        self.average = WeightAverage(t.model, e.weights, decay=e.ema_decay, epochs_kept=e.swa_epochs)
        if t.resume_state is not None and "averaging" in t.resume_state:
            self.average.load_state_dict(t.resume_state["averaging"])
        t.checkpoint_extras["averaging"] = self.average.state_dict

    def after_step(self) -> None:
        assert self.average is not None
        self.average.after_step(self.trainer.model)

    def after_epoch(self) -> None:
        t, cfg = self.trainer, self.trainer.cfg
        assert self.average is not None
        self.average.after_epoch(t.model, t.epoch + 1, cfg.train.epochs)
        last = t.epoch + 1 == cfg.train.epochs
        if not ((t.epoch + 1) % cfg.eval.every_epochs == 0 or last):
            return
        if last and self.evaluation is not None:
            res = evaluate(t.model, self.evaluation.val_set, epoch_protocol(cfg),
                           num_classes=self.evaluation.num_classes, device=t.device)
            t.summary_extras["metrics"] = {"val_last": res["plain"], "val_last_rfpc": res["rfpc"]}
        self.live = copy.deepcopy(t.model.state_dict())
        t.model.load_state_dict(self.average.averaged(t.model))
        t.summary_extras["weights"] = {"kind": cfg.eval.weights, "updates": self.average.n}

    def restorer(self) -> HookBase:
        return _Restore(self)


class _Restore(HookBase):
    """Puts the live weights back after the evaluation hooks, unless the run has ended."""

    def __init__(self, owner: AveragingHook) -> None:
        self.owner = owner

    def after_epoch(self) -> None:
        t = self.trainer
        if self.owner.live is not None and t.epochs_done < t.cfg.train.epochs:
            t.model.load_state_dict(self.owner.live)
            self.owner.live = None


def averaging_hooks(cfg: Any, evaluation: EvalHook | None) -> tuple[HookBase | None, HookBase | None]:
    """The hook before the evaluation and its restorer before the checkpointer (None, None: last)."""
    if cfg.eval.weights == "last":
        return None, None
    hook = AveragingHook(evaluation)
    return hook, hook.restorer()
