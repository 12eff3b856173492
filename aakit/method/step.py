"""The method's step: forward one batch, make its pseudo labels, compute the objective's terms.

The engine calls :func:`losses_of_batch` the way detectron2's ``run_step`` calls the model: the
trainer owns the learning rate, the backward pass and the optimiser; what a step computes (which
terms, on which labels, in which order, what overlaps the CRFs) is here. ``aakit bench`` times this
same function (:func:`compute_losses`), so a change to a term's wiring is timed.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from aakit.config import Config
from aakit.method.objective import LossInputs, Objective, StepLosses, build_objective
from aakit.method.targets import request_targets


def losses_of_batch(model: torch.nn.Module, batch: dict[str, Any], cfg: Config, objective: Objective, *,
                    epoch: int, device: torch.device, labeler: Any | None,
                    early_backward: Callable[[torch.Tensor], None] | None = None) -> tuple[StepLosses, LossInputs]:
    """Forward one batch, make its pseudo labels and compute the objective's active terms.

    Overlap: the terms that need no pseudo label (L_cls) are computed first; with
    ``early_backward`` given and the labels made by the CRF workers, they go to
    ``early_backward`` (which must keep the graph) while the workers run, and the returned
    :class:`StepLosses` says so — its ``pending()`` is what is left to backpropagate.
    """
    core = model.module if hasattr(model, "module") else model
    # forward: class scores, CAM, embedding F^s and segmentation logits F^c
    images = batch["image"].to(device, non_blocking=True)
    labels = batch["labels"].to(device)
    x = LossInputs(model(images), labels, (images.shape[-2], images.shape[-1]))
    # the terms that need no pseudo label (L_cls) first: their backward may overlap the CRFs
    step = StepLosses(objective(x, epoch, labelled=False), anchor=x.out["cls_logits"])
    if objective.needs_labels(epoch):
        # pseudo labels: multi-scale CAM -> two refinements (dense CRFs) in the CRF workers (or the masks)
        pending = request_targets(core, batch, x.out, images, cfg, labeler, device)  # type: ignore[arg-type]
        if early_backward is not None and pending.from_workers:
            step.backward_early(early_backward)  # runs while the CRF workers label the batch
        x.labels, x.confidence = pending.result()
        # the terms on the pseudo labels (L_ce, L_aa, L_lr)
        step.terms |= objective(x, epoch, labelled=True)
    return step, x


def compute_losses(
    model: torch.nn.Module,
    batch: dict[str, Any],
    cfg: Config,
    *,
    epoch: int,
    device: torch.device,
    labeler: Any | None,
    early_backward: Callable[[torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, dict[str, float], dict[str, Any]]:
    """:func:`losses_of_batch` for the callers of the older interface (``aakit bench``, tests):
    ``(what is left to backpropagate, scalar losses with "total", extras)``; ``extras["pseudo"]``
    holds the pseudo labels when the CRFs made some. Without ``early_backward`` what is left is
    the total; with it, the total less the terms that need no label (L_cls), which went to
    ``early_backward`` while the CRF workers ran."""
    step, x = losses_of_batch(model, batch, cfg, build_objective(cfg), epoch=epoch, device=device,
                              labeler=labeler, early_backward=early_backward)
    scalars = step.scalars()
    made = cfg.train.supervision == "image" and x.labels is not None
    return step.pending(), scalars, ({"pseudo": x.labels} if made else {})
