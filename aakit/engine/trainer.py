"""The trainer: the state of one training run and its step; everything else is a hook.

As detectron2's ``TrainerBase``: :meth:`Trainer.train` runs the epochs and calls each hook
(:class:`HookBase`, see :mod:`aakit.engine.hooks`) around them, in list order::

    before_train
    for each epoch:  before_epoch
                     for each batch:  before_step -> run_step -> after_step
                     after_epoch
    after_train      (always: finished, stopped by TrainingInterrupted, or failed)

:meth:`Trainer.run_step` is one SGD step on the method's objective; the step's losses come from
:func:`aakit.method.losses_of_batch` (:mod:`aakit.method.step`, as detectron2's ``run_step``
calls the model)::

    images --net--> cls logits, CAM, F^s (embedding), F^c (seg logits)
    L_cls  = multilabel soft margin(cls logits, image labels)
    CAM (multi-scale, no grad) --dCRF x2 (worker pool)--> pseudo labels Y, confidence V
    L_ce   = RRM joint CE(F^c upsampled to the crop, Y)
    L_aa   = affinity_loss(softmax F^c, Y at stride, V at stride)      (eqs. 8-12)
    L_lr   = label_reassign_loss(F^s, Y at stride, beta)  last 2 epochs  (eqs. 13-17)
    total  = L_cls + L_ce + lambda1 L_aa + lambda2 L_lr

With ``pseudo.overlap`` (single process, no AMP) the CRF workers run while the training process
does the backward pass of L_cls; the rest of the total is backpropagated once the labels are in
(gradients add up: the same gradient as one backward of the total).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import torch

from aakit.config import Config
from aakit.engine.batches import epoch_batches, iterate_epoch
from aakit.engine.distributed import DistInfo
from aakit.engine.noise import data_seed, perturb
from aakit.errors import AakitError
from aakit.method import Objective, build_objective, losses_of_batch, make_labeler

Outcome = Literal["running", "finished", "stopped", "failed"]


class TrainingInterrupted(Exception):
    """Raised by a hook to stop the run after the current step (SIGINT/SIGTERM): ``stopped``."""


class HookBase:
    """Something done around the loop; override the moments it needs (all no-ops here)."""

    trainer: Trainer  # set by Trainer.register_hooks

    def before_train(self) -> None: ...

    def before_epoch(self) -> None: ...

    def before_step(self) -> None: ...

    def after_step(self) -> None: ...

    def after_epoch(self) -> None: ...

    def after_train(self) -> None: ...


def poly_lr(base: float, step: int, total: int, power: float) -> float:
    """Poly schedule: base * (1 - step/total)^power."""
    return float(base * (1.0 - min(step, total) / max(total, 1)) ** power)


def _backward_retaining(loss: torch.Tensor) -> None:
    """``early_backward`` of the training loop: backprop L_cls, keep the graph for the rest."""
    loss.backward(retain_graph=True)  # type: ignore[no-untyped-call]


class Trainer:
    """One training run's state, its loop and its step.

    Args:
        cfg: the run's configuration.
        model: the bare network (checkpoints and evaluation use it; the step calls :attr:`net`,
            which is the network wrapped in DDP when several processes train).
        optimizer: SGD over ``model``'s parameter groups (``lr_mult`` in each group).
        train_set: the training images.
        device: where the network lives.
        dist: this process's place among the ranks.
        state: a checkpoint to resume from: weights, optimiser, RNG, step, epochs done.
    """

    def __init__(self, cfg: Config, model: torch.nn.Module, optimizer: torch.optim.Optimizer, train_set: Any, *,
                 device: torch.device, dist: DistInfo, state: dict[str, Any] | None = None) -> None:
        self.cfg, self.model, self.optimizer, self.train_set = cfg, model, optimizer, train_set
        self.device, self.dist = device, dist
        self.objective: Objective = build_objective(cfg)
        self.batches_per_epoch = len(epoch_batches(len(train_set), cfg.train.batch_size, seed=0, epoch=0, world=dist.world))
        self.total_steps = self.batches_per_epoch * cfg.train.epochs
        self.step = 0  # optimiser steps done
        # epochs whose end-of-epoch work is done: a checkpoint taken at an epoch's last step but
        # before its evaluation must redo that evaluation on resume
        self.epochs_done = 0
        self.elapsed_before = 0.0  # seconds trained before the checkpoint this run resumed from
        self.resumed = state is not None
        self.resume_state = state  # what a hook restores of its own (aakit.engine.averaging)
        # what hooks add to every checkpoint (name -> state) and to summary.json
        self.checkpoint_extras: dict[str, Callable[[], Any]] = {}
        self.summary_extras: dict[str, Any] = {}
        if state is not None:
            self.restore(state)
        self.epoch = self.epochs_done
        self.amp = cfg.train.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        # Overlap the CRFs with the backward of L_cls: two backward passes over one forward, which
        # DDP forbids (its gradient all-reduce fires once per parameter per forward) and which the
        # AMP loss scaler does not take part in.
        overlap = cfg.pseudo.overlap and not dist.enabled and not self.amp
        self.early_backward: Callable[[torch.Tensor], None] | None = _backward_retaining if overlap else None
        self.net: torch.nn.Module = model
        if dist.enabled:
            self.net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
            )
        self.labeler: Any | None = None  # the CRF workers, open while train() runs
        self.hooks: list[HookBase] = []
        # what the hooks read: the last step's losses, learning rate and speed, this epoch's
        # record (set by the evaluation), how the run ended
        self.losses: dict[str, float] = {}
        self.lr = 0.0
        self.images_per_s = 0.0
        self.epoch_record: dict[str, Any] | None = None
        self.outcome: Outcome = "running"
        self.error: BaseException | None = None  # what ended the run, when it failed
        self.stop_request: BaseException | None = None  # what an epoch callback raised to stop the run
        self.t_start = 0.0  # time.time() when train() starts, less the time of earlier sittings

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint: weights, optimiser, RNG, step and epochs done."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        done = self.step // self.batches_per_epoch
        self.epochs_done = min(done, int(state.get("epochs_done", done)))
        self.elapsed_before = float(state.get("elapsed_s", 0.0))  # absent in checkpoints before session 7

    def register_hooks(self, hooks: Sequence[HookBase]) -> None:
        for h in hooks:
            h.trainer = self
        self.hooks.extend(hooks)

    def _call(self, moment: str) -> None:
        for h in self.hooks:
            getattr(h, moment)()

    # -- the loop -----------------------------------------------------------------------
    def train(self) -> None:
        """Run the epochs left; :attr:`outcome` says how it ended (a failure also raises)."""
        cfg = self.cfg
        self.labeler = make_labeler(cfg)  # None with masks (train.supervision: full)
        self.t_start = time.time() - self.elapsed_before  # wall time counts every sitting up to its checkpoint
        try:
            self._call("before_train")
            self.model.train()
            for epoch in range(self.epochs_done, cfg.train.epochs):
                self.run_epoch(epoch)
            self.outcome = "finished"
        except TrainingInterrupted:
            self.outcome = "stopped"
        except BaseException as e:
            self.outcome, self.error = "failed", e
            raise
        finally:
            self.release()
            self._call("after_train")

    def run_epoch(self, epoch: int) -> None:
        self.epoch, self.epoch_record = epoch, None
        self._call("before_epoch")
        tick = time.time()
        for batch in self.batches(epoch):
            self._call("before_step")
            self.run_step(batch)
            now = time.time()
            self.images_per_s = len(batch["id"]) * self.dist.world / max(now - tick, 1e-9)
            tick = now
            self._call("after_step")
        # from here on a checkpoint counts this epoch as done: the hooks run in list order, and
        # the evaluation comes before the checkpointer
        self.epochs_done = epoch + 1
        self._call("after_epoch")

    def batches(self, epoch: int) -> Iterator[dict[str, Any]]:
        """This rank's batches of ``epoch`` from where the run stands (a resumed run skips the steps done)."""
        c = self.cfg.train
        order = epoch_batches(len(self.train_set), c.batch_size, seed=data_seed(c), epoch=epoch, rank=self.dist.rank,
                              world=self.dist.world)
        return iterate_epoch(self.train_set, order, self.cfg, epoch, self.step - epoch * self.batches_per_epoch)

    def run_step(self, batch: dict[str, Any]) -> None:
        """One SGD step: forward -> pseudo labels -> losses -> backward -> optimiser step."""
        o = self.cfg.optim
        # the poly learning rate of this step, times each parameter group's multiplier
        self.lr = poly_lr(o.lr, self.step, self.total_steps, o.poly_power)
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr * g["lr_mult"]
        if self.step == 0 and self.cfg.train.perturb_first_batch:  # debug: the chaos probe (aakit.engine.noise)
            batch = perturb(batch)
        # fresh gradients: with the overlap, L_cls's early backward adds into them
        self.optimizer.zero_grad(set_to_none=True)
        # forward, pseudo labels, the active terms of the loss table
        with torch.autocast(self.device.type, enabled=self.amp):
            step, _ = losses_of_batch(self.net, batch, self.cfg, self.objective, epoch=self.epoch,
                                      device=self.device, labeler=self.labeler, early_backward=self.early_backward)
        # the losses by name for the hooks; a diverged loss stops the run before the weights take it
        self.losses = step.scalars()
        if not math.isfinite(self.losses["total"]):
            raise AakitError(f"loss became {self.losses['total']} at step {self.step + 1} (epoch {self.epoch + 1}); "
                             f"lower optim.lr or check the data")
        # backward what the early backward has not taken, then SGD (scaled under AMP)
        self.scaler.scale(step.pending()).backward()  # type: ignore[no-untyped-call]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1

    def release(self) -> None:
        """Stop the CRF workers and let DDP go: its reducer holds the process group, which must
        outlive it (see :func:`aakit.engine.distributed.cleanup`)."""
        if self.labeler is not None:
            self.labeler.close()
            self.labeler = None
        self.net = self.model
