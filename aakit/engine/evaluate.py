"""Evaluation protocols (METHOD.md section 5): ss / msf, with or without dCRF and rfpc.

One forward pass per image serves both the plain and the rfpc prediction:

* plain: background is always kept; an object class is kept if its sigmoid classification
  score exceeds ``eval.cls_threshold``;
* rfpc ("remove false positive classes"): only the classes of the ground-truth image labels
  are kept.

The kept classes' probabilities are argmax-ed (after the test dCRF if asked), dropped classes
can never win. Numbers are always stored with their protocol.

How a number is measured is one value, an :class:`EvalProtocol`, built in one place
(:func:`eval_protocol`, from a run's ``eval`` and ``crf.test`` settings); every evaluation
(per epoch, the final summary, ``aakit eval``) passes one.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aakit.config import Config, CRFParams
from aakit.method import dense_crf, resolve_backend
from aakit.errors import AakitError
from aakit.metrics import ConfusionMeter, keep_classes_by_score, remove_false_positive_classes

PROTOCOLS = ("ss", "msf")
_FROM_CONFIG: Any = object()  # eval_protocol: "take it from the config"


def protocol_name(protocol: str, crf: bool, rfpc: bool) -> str:
    """``ss``, ``msf-crf``, ``ss-rfpc``, ... the name of the slot a number is stored under."""
    return protocol + ("-crf" if crf else "") + ("-rfpc" if rfpc else "")


@dataclass(frozen=True)
class EvalProtocol:
    """Everything that decides how an evaluation number is measured (METHOD.md section 5).

    ``rfpc`` names which of the two numbers every evaluation computes (with and without rfpc)
    is the main one; ``crf_params`` are the test CRF's, used when ``crf`` is on;
    ``max_images`` None means the whole split; ``crf_backend`` runs the test CRF (``auto``
    resolved on the evaluation device, :func:`aakit.method.crf.resolve_backend`).
    """

    protocol: str = "ss"
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    crf: bool = False
    rfpc: bool = False
    cls_threshold: float = 0.1
    max_images: int | None = None
    crf_params: CRFParams = field(default_factory=CRFParams)
    crf_backend: str = "auto"

    @property
    def name(self) -> str:
        """The storage slot: ``ss``, ``msf-crf-rfpc``, ... (no image count)."""
        return protocol_name(self.protocol, self.crf, self.rfpc)

    @property
    def key(self) -> str:
        """``msf+crf+rfpc@1449``: the protocol and its image budget (``@all`` = whole split)."""
        return self.key_at(self.max_images)

    def key_at(self, images: int | None) -> str:
        """The key with the number of images actually evaluated."""
        text = self.protocol + ("+crf" if self.crf else "") + ("+rfpc" if self.rfpc else "")
        return f"{text}@{'all' if images is None else images}"


def eval_protocol(cfg: Config, *, protocol: str | None = None, crf: bool | None = None, rfpc: bool | None = None,
                  max_images: int | None = _FROM_CONFIG) -> EvalProtocol:
    """The evaluation protocol of a run: ``cfg.eval`` and the test CRF, with the given changes.

    ``ss`` is one scale without flip; ``msf`` takes ``eval.scales`` and ``eval.flip``.
    ``max_images`` (default ``eval.max_images``; None = all) must be >= 1.
    """
    e = cfg.eval
    protocol = e.protocol if protocol is None else protocol
    if protocol not in PROTOCOLS:
        raise AakitError(f"evaluation protocol {protocol!r}: choose ss or msf")
    n = e.max_images if max_images is _FROM_CONFIG else max_images
    if n is not None and n < 1:
        raise AakitError(f"an evaluation on {n} images: it needs at least 1")
    msf = protocol == "msf"
    return EvalProtocol(
        protocol=protocol, scales=tuple(e.scales) if msf else (1.0,), flip=e.flip if msf else False,
        crf=e.crf if crf is None else crf, rfpc=e.rfpc if rfpc is None else rfpc,
        cls_threshold=e.cls_threshold, max_images=n, crf_params=dataclasses.replace(cfg.crf.test),
        crf_backend=e.crf_backend,
    )


def probs_from_output(out: dict[str, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) softmax of a forward pass's ``seg_logits``, upsampled to ``size``."""
    logits = F.interpolate(out["seg_logits"], size=size, mode="bilinear", align_corners=False)
    return logits.float().softmax(1)


@torch.no_grad()
def predict_probs(
    model: torch.nn.Module,
    image: torch.Tensor,
    *,
    scales: Iterable[float] = (1.0,),
    flip: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities at image size and sigmoid image-level scores.

    Args:
        model: a SingleStageNet in eval mode.
        image: (1, 3, H, W) normalised image.
        scales: test scales (``ss`` = (1.0,), ``msf`` = (0.5, 1, 1.5, 2)).
        flip: also average the horizontally flipped image.

    Returns:
        probs (C, H, W) = mean softmax over scales/flips, scores (K,) sigmoid of cls logits
        at scale 1 (mean over flips).
    """
    _, _, h, w = image.shape
    scales = tuple(scales)
    score_scale = 1.0 if 1.0 in scales else scales[0]  # image-level scores come from one scale
    prob_sum: torch.Tensor | None = None
    scores = torch.zeros(0)
    n_probs = 0
    for s in scales:
        x = image if s == 1.0 else F.interpolate(
            image, size=(max(8, round(h * s)), max(8, round(w * s))), mode="bilinear", align_corners=False
        )
        batch = torch.cat([x, x.flip(-1)]) if flip else x
        out = model(batch)
        p = probs_from_output(out, (h, w))
        if flip:
            p = torch.stack([p[0], p[1].flip(-1)])
        prob_sum = p.sum(0) if prob_sum is None else prob_sum + p.sum(0)
        n_probs += p.shape[0]
        if s == score_scale:
            scores = out["cls_logits"].float().sigmoid().mean(0)
    assert prob_sum is not None
    return prob_sum / n_probs, scores


def keep_mask(scores: np.ndarray, labels: np.ndarray, *, rfpc: bool, threshold: float) -> np.ndarray:
    """(K,) object classes allowed in the prediction: the image labels (rfpc) or the scores."""
    return labels > 0.5 if rfpc else keep_classes_by_score(scores, threshold)


def segment(
    probs: np.ndarray,
    keep: np.ndarray,
    raw: np.ndarray | None = None,
    crf: CRFParams | None = None,
    *,
    backend: str = "auto",
    device: str = "cpu",
) -> np.ndarray:
    """Label map (H, W) uint8: removed classes' scores zeroed, optional test dCRF (on the
    ``pydensecrf`` or ``torch`` back-end, or ``auto``: :func:`aakit.method.crf.resolve_backend`; torch
    runs on ``device``), argmax."""
    p = remove_false_positive_classes(probs, keep)
    if crf is not None and raw is not None:
        idx = np.flatnonzero(np.concatenate([[True], np.asarray(keep, dtype=bool)]))
        sub = p[idx]
        sub = sub / np.maximum(sub.sum(0, keepdims=True), 1e-8)
        q = dense_crf(np.ascontiguousarray(raw), sub.astype(np.float32), crf,
                      backend=resolve_backend(backend, device), device=device)
        return idx[q.argmax(0)].astype(np.uint8)
    return p.argmax(0).astype(np.uint8)


def evaluate(
    model: torch.nn.Module,
    dataset: Any,
    proto: EvalProtocol,
    *,
    num_classes: int,
    device: torch.device,
    on_image: Callable[[int, int], None] | None = None,
    save_pred: Callable[[str, np.ndarray], None] | None = None,
    per_image: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, Any]]:
    """mIoU of ``model`` on (the first ``proto.max_images`` images of) ``dataset``.

    Returns:
        ``{"plain": metrics, "rfpc": metrics}``, each ``{"miou", "iou", "pixel_acc",
        "protocol", "crf", "rfpc", "images", "key"}`` (mIoU as a fraction in [0, 1]; ``key``
        e.g. ``msf+crf+rfpc@1449``, with the number of images evaluated).

        If ``per_image`` is a dict, it receives ``{"plain": (n, C, C), "rfpc": ...}``, the
        confusion matrix of every image (for image-level bootstrap and variance decomposition).

    Raises:
        AakitError: there is no image to evaluate.
    """
    n = len(dataset) if proto.max_images is None else min(len(dataset), proto.max_images)
    if n == 0:
        raise AakitError(f"evaluation ({proto.key}): no image to evaluate")
    meters = {k: ConfusionMeter(num_classes, keep_per_image=per_image is not None) for k in ("plain", "rfpc")}
    crf = proto.crf_params if proto.crf else None
    backend = resolve_backend(proto.crf_backend, str(device))
    was_training = model.training
    model.eval()
    try:
        for i in range(n):
            item = dataset[i]
            image = item["image"].unsqueeze(0).to(device)
            probs, scores = predict_probs(model, image, scales=proto.scales, flip=proto.flip)
            probs_np = probs.float().cpu().numpy()
            scores_np = scores.float().cpu().numpy()
            labels = np.asarray(item["labels"], dtype=np.float32)
            raw = np.asarray(item["raw"]) if crf is not None else None
            gt = np.asarray(item["mask"])
            for key, rfpc in (("plain", False), ("rfpc", True)):
                keep = keep_mask(scores_np, labels, rfpc=rfpc, threshold=proto.cls_threshold)
                pred = segment(probs_np, keep, raw, crf, backend=backend, device=str(device))
                meters[key].update(pred, gt)
                if save_pred is not None and rfpc == proto.rfpc:
                    save_pred(str(item["id"]), pred)
            if on_image is not None:
                on_image(i + 1, n)
    finally:
        model.train(was_training)
    out: dict[str, dict[str, Any]] = {}
    if per_image is not None:
        per_image.update({key: meter.per_image for key, meter in meters.items()})
    for key, meter in meters.items():
        res = meter.compute()
        out[key] = {
            "miou": float(res["miou"]),
            "iou": res["iou"],  # None where a class is absent from prediction and truth
            "pixel_acc": float(res.get("pixel_accuracy", float("nan"))),
            "protocol": proto.protocol,
            "crf": proto.crf,
            "rfpc": key == "rfpc",
            "images": n,
            "key": dataclasses.replace(proto, rfpc=key == "rfpc").key_at(n),
        }
    return out
