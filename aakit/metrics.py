"""Segmentation metrics (METHOD.md section 5): confusion matrix, IoU, mIoU, rfpc.

Conventions:
- Confusion matrix ``cm[gt, pred]`` (rows = ground truth, columns = prediction), int64.
- IoU of class c = TP / (TP + FP + FN); NaN for a class absent from both GT and prediction.
- mIoU is a **fraction in [0, 1]** (the mean over classes with a defined IoU); multiply by 100
  for the paper's tables.
- Pixels whose GT is ``ignore_index`` (255 in VOC) are skipped.

Example::

    meter = ConfusionMeter(21)
    meter.update(pred, gt)            # numpy arrays or torch tensors, any shape
    meter.compute()["miou"]           # 0.634
"""
from __future__ import annotations

from typing import Any

import numpy as np

from aakit.errors import AakitError
from aakit.labels import IGNORE_INDEX


class LabelValueError(AakitError, ValueError):
    """A label map holds a value that is neither a class index nor the ignore index."""


def _as_numpy(x: Any) -> np.ndarray:
    """numpy array or torch tensor (any device) -> numpy array."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def confusion_matrix(pred: Any, gt: Any, num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Count (gt, pred) pairs over the pixels whose GT is not ignored.

    One ``np.bincount`` of ``num_classes * gt + pred``: each pair gets its own bin.

    Args:
        pred: predicted labels, any shape, values in [0, num_classes).
        gt: ground-truth labels, same shape, values in [0, num_classes) or ``ignore_index``.
        num_classes: C.
        ignore_index: GT value to skip.

    Returns:
        (C, C) int64 matrix, ``cm[g, p]`` = pixels of GT class g predicted as p.

    Raises:
        ValueError: shapes differ.
        LabelValueError: a value out of range (at a pixel whose GT is not ignored).
    """
    p, g = _as_numpy(pred), _as_numpy(gt)
    if p.shape != g.shape:
        raise ValueError(f"confusion_matrix: pred {p.shape} and gt {g.shape} differ")
    p, g = p.reshape(-1), g.reshape(-1)
    if p.dtype == np.uint8 and g.dtype == np.uint8 and num_classes <= 256 and 0 <= ignore_index < 256:
        return _confusion_uint8(p, g, num_classes, ignore_index)
    keep = g != ignore_index
    p = p[keep].astype(np.int64)
    g = g[keep].astype(np.int64)
    for name, v in (("gt", g), ("pred", p)):
        bad = (v < 0) | (v >= num_classes)
        if bad.any():
            values = sorted(set(np.unique(v[bad]).tolist()))[:5]
            raise LabelValueError(
                f"{name} label values {values} are outside 0..{num_classes - 1} (ignore = {ignore_index})"
            )
    counts = np.bincount(num_classes * g + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _confusion_uint8(p: np.ndarray, g: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """Fast path for uint8 label maps: one bincount over all 256 x 256 (gt, pred) pairs.

    No masking or int64 copies: ignored pixels land in their own row, which is dropped, and
    out-of-range values are found in the table afterwards (same errors as the general path).
    """
    table = np.bincount((g.astype(np.uint16) << 8) | p, minlength=65536).reshape(256, 256)
    rows = np.ones(256, dtype=bool)
    rows[ignore_index] = False
    valid = table[rows]
    gt_values = np.flatnonzero(rows)
    bad_g = gt_values[(gt_values >= num_classes) & (valid.sum(1) > 0)]
    if bad_g.size:
        raise LabelValueError(
            f"gt label values {bad_g[:5].tolist()} are outside 0..{num_classes - 1} (ignore = {ignore_index})"
        )
    bad_p = np.flatnonzero(valid[:, num_classes:].sum(0) > 0) + num_classes
    if bad_p.size:
        raise LabelValueError(
            f"pred label values {bad_p[:5].tolist()} are outside 0..{num_classes - 1} (ignore = {ignore_index})"
        )
    cm = table[:num_classes, :num_classes].astype(np.int64)
    if ignore_index < num_classes:
        cm[ignore_index] = 0
    return cm


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU = TP / (TP + FP + FN); NaN where the class is absent from GT and prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp  # predicted as c, GT is another class
    fn = cm.sum(axis=1) - tp  # GT c, predicted as another class
    denom = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1.0), np.nan)


def mean_iou(cm: np.ndarray) -> float:
    """Mean IoU over the classes with a defined IoU, as a fraction in [0, 1] (NaN if none)."""
    iou = iou_from_confusion(cm)
    defined = iou[~np.isnan(iou)]
    return float(defined.mean()) if defined.size else float("nan")


def pixel_accuracy(cm: np.ndarray) -> float:
    """Fraction of non-ignored pixels predicted right (NaN if there are none)."""
    cm = np.asarray(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


class ConfusionMeter:
    """Accumulates a confusion matrix over many images.

    Args:
        num_classes: C (21 for VOC: background + 20 objects).
        ignore_index: GT value to skip.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, keep_per_image: bool = False) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        self._per_image: list[np.ndarray] | None = [] if keep_per_image else None

    def update(self, pred: Any, gt: Any) -> None:
        """Add one image (or a batch: any matching shapes)."""
        cm = confusion_matrix(pred, gt, self.num_classes, self.ignore_index)
        self.matrix += cm
        if self._per_image is not None:
            self._per_image.append(cm)

    @property
    def per_image(self) -> np.ndarray:
        """(N, C, C) the confusion matrix of each update, in order (``keep_per_image=True``);
        what an image-level bootstrap resamples."""
        if self._per_image is None:
            raise ValueError("ConfusionMeter(keep_per_image=False) keeps no per-image matrices")
        return np.stack(self._per_image) if self._per_image else np.zeros((0, self.num_classes, self.num_classes), np.int64)

    def reset(self) -> None:
        """Forget everything counted so far."""
        self.matrix[:] = 0
        if self._per_image is not None:
            self._per_image.clear()

    def compute(self) -> dict[str, Any]:
        """``{"miou": float, "iou": [float | None per class], "pixel_accuracy": float}``.

        mIoU and IoUs are fractions; a class absent from GT and predictions has IoU None
        (JSON-friendly) and does not count in the mean.
        """
        iou = iou_from_confusion(self.matrix)
        return {
            "miou": mean_iou(self.matrix),
            "iou": [None if np.isnan(v) else float(v) for v in iou],
            "pixel_accuracy": pixel_accuracy(self.matrix),
        }


def keep_classes_by_score(scores: Any, threshold: float = 0.1) -> Any:
    """Object classes kept without rfpc: sigmoid score strictly above ``threshold`` (section 5).

    Args:
        scores: (..., K) sigmoid scores (array or tensor).
        threshold: ``eval.cls_threshold``.

    Returns:
        Bool mask of the same shape and kind (numpy/torch).
    """
    return scores > threshold


def remove_false_positive_classes(pred: Any, keep: Any, *, background: int = 0) -> Any:
    """rfpc: remove the masks of object classes absent from the image labels (section 5).

    The rule follows 1-stage-wseg (``utils/inference_tools.py``): the score maps of the removed
    classes are multiplied by 0 **before** the argmax, so each of their pixels goes to the best
    remaining class (often, but not always, the background). Background is never removed. The
    same function, given ``keep = keep_classes_by_score(scores)``, applies the "no rfpc" rule.

    Args:
        pred: either class scores, float (C, H, W) or (B, C, H, W), non-negative (e.g. softmax
            probabilities; channel 0 = background): channels of removed classes are set to 0;
            or a label map, integer (H, W) or (B, H, W): pixels of removed classes become
            ``background`` (the only choice left once the scores are gone).
        keep: (K,) or (B, K) 0/1 or bool over the K = C - 1 object classes
            (object class k has label k + 1).
        background: label given to removed pixels of a label map.

    Returns:
        A copy of ``pred`` of the same kind (numpy/torch), shape and dtype.
    """
    is_torch = hasattr(pred, "detach")
    keep_np = _as_numpy(keep).astype(bool)
    floating = pred.is_floating_point() if is_torch else np.issubdtype(np.asarray(pred).dtype, np.floating)
    if floating:
        # Score maps: zero the channels of removed classes (background channel always kept).
        batched = pred.ndim == 4
        k_axis = keep_np.shape[-1]
        if pred.shape[-3] != k_axis + 1:
            raise ValueError(f"rfpc: {pred.shape[-3]} score channels but {k_axis} object classes in keep")
        mask = np.concatenate([np.ones(keep_np.shape[:-1] + (1,), dtype=bool), keep_np], axis=-1)
        if batched and mask.ndim == 1:
            mask = np.broadcast_to(mask, (pred.shape[0], mask.shape[0]))
        mask = mask[..., None, None]
        if is_torch:
            import torch

            return pred * torch.as_tensor(mask, device=pred.device, dtype=pred.dtype)
        return np.asarray(pred) * mask.astype(np.asarray(pred).dtype)
    # Label maps: a lookup table sends every removed class to the background.
    labels = _as_numpy(pred)
    if keep_np.ndim == 1:
        keep_np = np.broadcast_to(keep_np, labels.shape[:-2] + keep_np.shape)
    out = labels.copy()
    removed = np.zeros(labels.shape, dtype=bool)
    for idx in np.ndindex(*labels.shape[:-2]):
        drop = np.flatnonzero(~keep_np[idx]) + 1  # labels of removed object classes
        removed[idx] = np.isin(labels[idx], drop)
    out[removed] = background
    if is_torch:
        import torch

        return torch.as_tensor(out, device=pred.device)
    return out
