"""Evaluation protocols (METHOD.md section 5): ss / msf, with or without dCRF and rfpc.

One forward pass per image serves both the plain and the rfpc prediction:

* plain: background is always kept; an object class is kept if its sigmoid classification
  score exceeds ``eval.cls_threshold``;
* rfpc ("remove false positive classes"): only the classes of the ground-truth image labels
  are kept.

The kept classes' probabilities are argmax-ed (after the test dCRF if asked), dropped classes
can never win. Numbers are always stored with their protocol.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aakit.config import CRFParams, EvalConfig
from aakit.metrics import ConfusionMeter, keep_classes_by_score, remove_false_positive_classes


def protocol_name(protocol: str, crf: bool, rfpc: bool) -> str:
    """``ss``, ``msf-crf``, ``ss-rfpc``, ... the key a number is stored under."""
    return protocol + ("-crf" if crf else "") + ("-rfpc" if rfpc else "")


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
        logits = F.interpolate(out["seg_logits"], size=(h, w), mode="bilinear", align_corners=False)
        p = logits.float().softmax(1)
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
) -> np.ndarray:
    """Label map (H, W) uint8: removed classes' scores zeroed, optional test dCRF, argmax."""
    p = remove_false_positive_classes(probs, keep)
    if crf is not None and raw is not None:
        from aakit.crf import dense_crf

        idx = np.flatnonzero(np.concatenate([[True], np.asarray(keep, dtype=bool)]))
        sub = p[idx]
        sub = sub / np.maximum(sub.sum(0, keepdims=True), 1e-8)
        q = dense_crf(np.ascontiguousarray(raw), sub.astype(np.float32), crf)
        return idx[q.argmax(0)].astype(np.uint8)
    return p.argmax(0).astype(np.uint8)


def evaluate(
    model: torch.nn.Module,
    dataset: Any,
    cfg: EvalConfig,
    *,
    num_classes: int,
    device: torch.device,
    crf: CRFParams | None = None,
    protocol: str | None = None,
    use_crf: bool | None = None,
    on_image: Callable[[int, int], None] | None = None,
    save_pred: Callable[[str, np.ndarray], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """mIoU of ``model`` on ``dataset`` with and without rfpc.

    Returns:
        ``{"plain": metrics, "rfpc": metrics}``, each ``{"miou", "iou", "pixel_acc",
        "protocol", "crf", "rfpc", "images"}`` (mIoU as a fraction in [0, 1]).
    """
    protocol = protocol or cfg.protocol
    use_crf = cfg.crf if use_crf is None else use_crf
    scales = tuple(cfg.scales) if protocol == "msf" else (1.0,)
    flip = cfg.flip if protocol == "msf" else False
    meters = {"plain": ConfusionMeter(num_classes), "rfpc": ConfusionMeter(num_classes)}
    was_training = model.training
    model.eval()
    n = len(dataset)
    try:
        for i in range(n):
            item = dataset[i]
            image = item["image"].unsqueeze(0).to(device)
            probs, scores = predict_probs(model, image, scales=scales, flip=flip)
            probs_np = probs.float().cpu().numpy()
            scores_np = scores.float().cpu().numpy()
            labels = np.asarray(item["labels"], dtype=np.float32)
            raw = np.asarray(item["raw"]) if use_crf else None
            gt = np.asarray(item["mask"])
            for key, rfpc in (("plain", False), ("rfpc", True)):
                keep = keep_mask(scores_np, labels, rfpc=rfpc, threshold=cfg.cls_threshold)
                pred = segment(probs_np, keep, raw, crf if use_crf else None)
                meters[key].update(pred, gt)
                if save_pred is not None and rfpc == cfg.rfpc:
                    save_pred(str(item["id"]), pred)
            if on_image is not None:
                on_image(i + 1, n)
    finally:
        model.train(was_training)
    out: dict[str, dict[str, Any]] = {}
    for key, meter in meters.items():
        res = meter.compute()
        out[key] = {
            "miou": float(res["miou"]),
            "iou": res["iou"],  # None where a class is absent from prediction and truth
            "pixel_acc": float(res.get("pixel_accuracy", float("nan"))),
            "protocol": protocol,
            "crf": bool(use_crf),
            "rfpc": key == "rfpc",
            "images": n,
        }
    return out
