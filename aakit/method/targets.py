"""The labels the segmentation terms train on: online pseudo labels, or masks.

With image-level supervision (the paper) a step's pseudo labels come from its own multi-scale CAM
through the two dense CRFs (METHOD.md section 2), run by the CRF workers of a
:class:`aakit.method.pseudo.PseudoLabeler`: :func:`request_targets` hands them the batch and returns at
once, so the training process may do other work (the backward pass of L_cls) meanwhile.
With ``train.supervision: full`` the masks are the labels (the upper-bound reference).
With ``loss.aa_confidence: oracle`` the pseudo labels are the CRFs' as always, and their V is
:func:`oracle_confidence` of the batch's masks (a diagnostic bound, docs/method.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from aakit.config import Config
from aakit.errors import AakitError
from aakit.labels import IGNORE_INDEX

if TYPE_CHECKING:
    from aakit.method.pseudo.labeler import PendingLabels, PseudoLabeler


def training_cam(model: torch.nn.Module, images: torch.Tensor, cam1: torch.Tensor, scales: tuple[float, ...], size: tuple[int, int]) -> torch.Tensor:
    """Multi-scale CAM at crop size, no grad (METHOD.md 1); scale 1 reuses the step's CAM.

    As RRM: every scale's CAM is resized to the size of ``cam1`` (the scale-1 feature map),
    averaged there, and the mean is upsampled to ``size``.
    """
    from aakit.method.pseudo.cam import multiscale_cam

    def cam_fn(x: torch.Tensor) -> torch.Tensor:
        return cam1.detach().float() if x is images else model.forward_cam(x).float()  # type: ignore[operator]

    return multiscale_cam(cam_fn, images, scales, size, feature_size=(cam1.shape[-2], cam1.shape[-1]))


def oracle_confidence(label: torch.Tensor, mask: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """V of ``loss.aa_confidence: oracle``: 1 where the pseudo label is the ground truth's class,
    0 where it is another; 1 where the mask does not say (255: VOC's outline band, the crop's
    padding), i.e. no down-weighting there, as SA; 0 on ignored labels (as every V)."""
    mask = mask.to(label.device)
    wrong = (label != mask) & (mask != ignore_index)
    return ((~wrong) & (label != ignore_index)).float()


def uses_oracle(cfg: Config) -> bool:
    """Whether the run trains AA with the oracle's V (and so needs the training images' masks)."""
    return cfg.loss.aa_confidence == "oracle" and cfg.loss.affinity == "aa" and cfg.train.supervision == "image"


def make_labeler(cfg: Config, workers: int | None = None) -> PseudoLabeler | None:
    """The run's :class:`~aakit.method.pseudo.PseudoLabeler` (:meth:`~aakit.method.pseudo.PseudoLabeler.from_config`),
    or None with ``train.supervision: full``. Close it when done."""
    from aakit.method.pseudo.labeler import PseudoLabeler

    if cfg.train.supervision != "image":
        return None
    return PseudoLabeler.from_config(cfg, workers=workers)


@dataclass
class PendingTargets:
    """Labels and confidence on their way: from the CRF workers (``pending``) or at hand; with
    ``oracle_mask`` the confidence is :func:`oracle_confidence` of the labels and that mask."""

    device: torch.device
    pending: PendingLabels | None = None
    ready: tuple[torch.Tensor, torch.Tensor] | None = None
    oracle_mask: torch.Tensor | None = None

    @property
    def from_workers(self) -> bool:
        return self.pending is not None

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(labels (B, H, W) int64, confidence (B, H, W) float) on the device; waits for the workers."""
        if self.pending is None:
            assert self.ready is not None
            label, conf = self.ready
        else:
            label, conf = self.pending.result()
            label, conf = label.to(self.device), conf.to(self.device)
        if self.oracle_mask is not None:
            conf = oracle_confidence(label, self.oracle_mask)
        return label, conf


def request_targets(model: torch.nn.Module, batch: dict[str, Any], out: dict[str, torch.Tensor],
                    images: torch.Tensor, cfg: Config, labeler: PseudoLabeler | None,
                    device: torch.device) -> PendingTargets:
    """Start labelling a batch: the masks (``train.supervision: full``), or its multi-scale CAM and
    class scores handed to the CRF workers. ``model`` is the bare network (not DDP)."""
    if cfg.train.supervision == "full":
        label = batch["mask"].to(device).long()
        return PendingTargets(device, ready=(label, (label != IGNORE_INDEX).float()))
    cams = training_cam(model, images, out["cam"], tuple(cfg.model.cam_scales), (images.shape[-2], images.shape[-1]))
    scores = out["cls_logits"].detach().float().sigmoid()
    assert labeler is not None
    # data.pad_mode: "rrm" labels the crop's padding like any pixel, "ignore" sets it to 255
    ignore_pad = cfg.data.pad_mode == "ignore" and "valid" in batch
    pending = labeler.submit(  # the CAMs stay on the device: pseudo.crf_backend auto/torch runs there
        batch["raw"].numpy(),
        cams,
        batch["labels"].numpy(),
        scores.cpu().numpy(),
        valid=batch["valid"].numpy() if ignore_pad else None,
    )
    oracle = None
    if uses_oracle(cfg):
        if "mask" not in batch:
            raise AakitError("loss.aa_confidence = oracle: this batch has no ground-truth masks")
        oracle = batch["mask"].to(device)
    return PendingTargets(device, pending=pending, oracle_mask=oracle)
