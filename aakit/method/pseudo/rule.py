"""RRM's online pseudo-label rule in numpy, one image at a time (METHOD.md section 2).

At every training step, the classification branch's CAMs are turned into pixel labels:

1. CAM x image labels, each class divided by its max (+1e-5); a labelled class whose sigmoid
   score is below ``min_class_score`` is dropped, unless that would drop every class.
2. Background score ``(1 - max_c CAM)^alpha``; the scores over background + present classes are
   refined twice by the run's refiner (``pseudo.refine``, :mod:`aakit.method.pseudo.refiners`;
   the paper's is the dense CRF), with a low alpha (4: generous background) and a high alpha (32: stingy
   background).
3. Label = argmax of the low-alpha CRF, its background set to 255 (the low alpha calls too
   much background to be trusted there); then wherever the high-alpha CRF still says
   background, the label is 0 (background that survives even a weak background score).
4. 255 where the winning CRF probability is < ``min_crf_prob`` or the pixel is outside RRM's
   "CAM-sure" region.
5. Confidence V = the CRF probability of the pixel's label (0 on ignored pixels).

Where this follows RRM ``tool/myTool.py::compute_seg_label`` and where it departs (the CRF
probability of a label, the CAM-sure region, the padding, clipping at 0) is written down in
docs/method.md, section "Pseudo labels".

This module does not import torch: CRF worker processes import it to run
:func:`pseudo_label_present` and must not load torch. The same rule on tensors, for a whole batch on
its device, is :mod:`aakit.method.pseudo.rule_torch`; the multi-scale CAM is
:mod:`aakit.method.pseudo.cam`, the batch's labeller :mod:`aakit.method.pseudo.labeler`.
"""
from __future__ import annotations

from typing import Any, Literal, TypedDict, Unpack

import numpy as np

from aakit.config import CRFParams, PseudoConfig
from aakit.labels import IGNORE_INDEX
from aakit.method.pseudo.refiner import Refiner
from aakit.method.pseudo.refiners import build_refiner

NORM_EPS = 1e-5  # RRM: cam / (max + 1e-5)

ConfidenceSource = Literal["crf", "cam"]  # V of the pseudo labels (the network's own, "net", is the trainer's)


# ----------------------------------------------------------------------------- per image
def present_classes(
    image_labels: np.ndarray, cls_scores: np.ndarray, min_class_score: float
) -> np.ndarray:
    """Indices of the labelled classes kept for the pseudo label (step 1).

    A labelled class whose sigmoid score is below ``min_class_score`` is dropped, unless every
    labelled class would be dropped: then all of them are kept.

    Args:
        image_labels: (K,) 0/1 image labels over the object classes.
        cls_scores: (K,) sigmoid classification scores.
        min_class_score: threshold.

    Returns:
        Sorted int64 indices into the K object classes (label value = index + 1).
    """
    labelled = np.flatnonzero(np.asarray(image_labels) > 0)
    scores = np.asarray(cls_scores, dtype=np.float64)
    kept = labelled[scores[labelled] >= min_class_score]
    return kept if kept.size > 0 else labelled


def normalise_cam(cam: np.ndarray) -> np.ndarray:
    """Divide each CAM channel by its max (+1e-5), after clipping negatives to 0."""
    cam = np.maximum(cam.astype(np.float32, copy=False), 0.0)
    return cam / (cam.max(axis=(1, 2), keepdims=True) + NORM_EPS)


def background_score(cam: np.ndarray, alpha: float, shape: tuple[int, int]) -> np.ndarray:
    """``(1 - max_c CAM)^alpha`` of normalised CAMs (P, H, W); all ones when P = 0."""
    if cam.shape[0] == 0:
        return np.ones(shape, dtype=np.float32)
    return np.power(1.0 - cam.max(axis=0), alpha).astype(np.float32)


def cam_sure_region(
    cam: np.ndarray, labels_to_check: np.ndarray, params: PseudoConfig
) -> np.ndarray:
    """RRM's CAM-sure region: where the CAM itself is confident (step 4).

    Args:
        cam: (P, H, W) normalised CAMs of the present classes.
        labels_to_check: channel indices of ``[bg, cam_0, ..., cam_{P-1}]`` to take the union
            over (RRM: those winning somewhere in the low-alpha CRF; 0 = background).
        params: ``alpha_high`` (background score), ``sure_fg_top``, ``sure_fg_min``, ``sure_bg``.

    Returns:
        (H, W) bool.
    """
    bg = background_score(cam, params.alpha_high, cam.shape[1:])
    scores = np.concatenate([bg[None], cam], axis=0)
    winner = scores.argmax(axis=0)
    sure = np.zeros(winner.shape, dtype=bool)
    for j in labels_to_check:
        region = winner == j
        if j == 0:
            sure |= region & (scores[0] > params.sure_bg)
            continue
        values = np.sort(scores[j][region & (scores[j] > params.sure_fg_min)])
        if values.size == 0:
            continue
        cut = values[int(values.size * (1.0 - params.sure_fg_top))]
        sure |= region & (scores[j] > cut)
    return sure


def cam_confidence(cam: np.ndarray, bg_high: np.ndarray, win_low: np.ndarray, is_bg: np.ndarray) -> np.ndarray:
    """V from the CAM (``loss.aa_confidence: cam``): the normalised CAM score of an object
    label's class, and for background RRM's background score ``(1 - max CAM)^alpha_high`` (the
    score the background label came from)."""
    obj = np.take_along_axis(cam, np.clip(win_low - 1, 0, None)[None], axis=0)[0]
    return np.where(is_bg | (win_low == 0), bg_high, obj).astype(np.float32)


class LabelOptions(TypedDict, total=False):
    """Optional settings of one image's pseudo label, shared by :func:`pseudo_label_single` and
    :func:`pseudo_label_present`: ``valid`` (H, W) bool, False where no label may be made (the
    crop's padding with ``data.pad_mode: ignore``; default all valid); ``ignore_index`` (default
    IGNORE_INDEX); ``confidence``, where V comes from: ``crf`` (default, the CRF probability of
    the label, METHOD.md) or ``cam`` (:func:`cam_confidence`); the labels are the same either way;
    ``refiner``, the :class:`~aakit.method.pseudo.refiner.Refiner` of step 2 (default: the one
    ``params.refine`` names, on ``crf_backend``); ``crf_backend``, a registered dense-CRF back-end,
    ``pydensecrf`` (default) or ``torch`` (:func:`aakit.method.crf.dense_crf`)."""

    valid: np.ndarray | None
    ignore_index: int
    confidence: ConfidenceSource
    refiner: Refiner
    crf_backend: str


def pseudo_label_present(image: np.ndarray, cam: np.ndarray, class_ids: np.ndarray, *, params: PseudoConfig,
                         crf: CRFParams, **options: Unpack[LabelOptions]) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo label from the CAMs of the present classes only (steps 2-5).

    This is the job a CRF worker runs: only the P present CAM channels travel to it.

    Args:
        image: (H, W, 3) uint8.
        cam: (P, H, W) raw CAMs of the present classes, at crop size.
        class_ids: (P,) their object-class indices (label value = index + 1), ascending.
        params, crf, options: as :func:`pseudo_label_single`.

    Returns:
        label (H, W) uint8, confidence (H, W) float32.
    """
    h, w = image.shape[:2]
    class_ids = np.asarray(class_ids, dtype=np.int64)
    if cam.shape != (len(class_ids), h, w):
        raise ValueError(f"pseudo label: cam {cam.shape} does not match {len(class_ids)} classes of {h}x{w}")
    if len(class_ids) == 0:  # nothing to segment: sure background everywhere
        return _finish_label(np.zeros((h, w), dtype=np.uint8), np.ones((h, w), dtype=np.float32), options)
    cam = normalise_cam(cam)
    bg_high, low_in, high_in = crf_inputs(cam, params)
    refiner = options.get("refiner") or build_refiner(params.refine, params, crf,
                                                      options.get("crf_backend", "pydensecrf"))
    q_low = refiner.refine(image, low_in)
    q_high = refiner.refine(image, high_in)
    label, conf = label_from_marginals(cam, class_ids, bg_high, q_low, q_high, params=params, **options)
    return _finish_label(label, conf, options)


def crf_inputs(cam: np.ndarray, params: PseudoConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 2's inputs from normalised CAMs (P >= 1, H, W): the high-alpha background score and
    the scores ``[background, present classes]`` of the low- and the high-alpha CRF."""
    bg_low = background_score(cam, params.alpha_low, cam.shape[1:])
    bg_high = background_score(cam, params.alpha_high, cam.shape[1:])
    return bg_high, np.concatenate([bg_low[None], cam]), np.concatenate([bg_high[None], cam])


def label_from_marginals(cam: np.ndarray, class_ids: np.ndarray, bg_high: np.ndarray, q_low: np.ndarray,
                         q_high: np.ndarray, *, params: PseudoConfig,
                         **options: Unpack[LabelOptions]) -> tuple[np.ndarray, np.ndarray]:
    """Steps 3-4 from the marginals of the two CRFs: label (H, W) uint8 and V before the
    ``valid`` mask and the zeroing of ignored pixels (:func:`_finish_label`)."""
    ignore_index = options.get("ignore_index", IGNORE_INDEX)
    win_low = q_low.argmax(axis=0)
    win_high = q_high.argmax(axis=0)
    # Step 3: objects from the low-alpha CRF, background from the high-alpha CRF.
    lut = np.concatenate([[ignore_index], class_ids + 1]).astype(np.uint8)
    label = lut[win_low]
    conf = np.take_along_axis(q_low, win_low[None], axis=0)[0]
    is_bg = win_high == 0
    label[is_bg] = 0
    conf[is_bg] = q_high[0][is_bg]
    # Step 4: low CRF probability, or outside the CAM-sure region -> ignore.
    sure = cam_sure_region(cam, np.unique(win_low), params)
    label[(conf < params.min_crf_prob) | ~sure] = ignore_index
    if options.get("confidence", "crf") == "cam":  # V from the CAM, not the CRF (loss.aa_confidence)
        conf = cam_confidence(cam, bg_high, win_low, is_bg)
    return label, conf


def _finish_label(label: np.ndarray, conf: np.ndarray, options: LabelOptions) -> tuple[np.ndarray, np.ndarray]:
    """The ``valid`` mask, then step 5: V = CRF (or CAM) probability of the label, 0 where ignored."""
    valid, ignore_index = options.get("valid"), options.get("ignore_index", IGNORE_INDEX)
    if valid is not None:
        label[~np.asarray(valid, dtype=bool)] = ignore_index
    conf = np.where(label == ignore_index, 0.0, conf).astype(np.float32)
    return label, conf


def pseudo_label_single(image: np.ndarray, cam: np.ndarray, image_labels: np.ndarray, cls_scores: np.ndarray, *,
                        params: PseudoConfig, crf: CRFParams,
                        **options: Unpack[LabelOptions]) -> tuple[np.ndarray, np.ndarray]:
    """RRM's pseudo label of one image (METHOD.md section 2, steps 1-5).

    Args:
        image: (H, W, 3) uint8 crop (RGB).
        cam: (K, H, W) float CAMs of the K object classes, already at crop size.
        image_labels: (K,) 0/1 image-level labels.
        cls_scores: (K,) sigmoid classification scores.
        params: pseudo-label thresholds and alphas.
        crf: dense-CRF parameters (training set).
        options: :class:`LabelOptions` (``valid``, ``ignore_index``, ``confidence``, ``refiner``,
            ``crf_backend``).

    Returns:
        label (H, W) uint8 in {0..K, ignore_index}; confidence (H, W) float32 in [0, 1],
        0 where the label is ignore_index.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"pseudo label: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    k = cam.shape[0]
    if cam.ndim != 3 or cam.shape[1:] != image.shape[:2]:
        raise ValueError(f"pseudo label: cam {cam.shape} does not match image {image.shape}")
    if np.shape(image_labels) != (k,) or np.shape(cls_scores) != (k,):
        raise ValueError(f"pseudo label: image_labels/cls_scores must have shape ({k},)")
    keep = present_classes(image_labels, cls_scores, params.min_class_score)
    return pseudo_label_present(image, cam[keep], keep, params=params, crf=crf, **options)


# ----------------------------------------------------------------------------- resolution of F^c
def _grid(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each of ``n_out`` samples over ``n_in`` pixels, ends aligned."""
    if n_out == 1:
        return np.zeros(1, dtype=np.int64)
    return np.rint(np.arange(n_out) * ((n_in - 1) / (n_out - 1))).astype(np.int64)


def downsample_labels(label: Any, confidence: Any, size: int | tuple[int, int]) -> tuple[Any, Any]:
    """Nearest sampling of labels and V to the resolution of F^c (METHOD.md 2.6).

    Output pixel i takes input pixel ``round(i * (H - 1) / (h - 1))``: the first and last
    pixels line up. For a stride-8 network on a crop of 8k + 1 pixels (321 -> 41) that is
    exactly pixel 8i, the centre of the output pixel's receptive field.

    Args:
        label: (..., H, W) array or tensor.
        confidence: same shape.
        size: output (h, w) or one int for both.

    Returns:
        (label, confidence) of shape (..., h, w), same kind (numpy/torch) and dtype as given.
    """
    if tuple(label.shape) != tuple(confidence.shape):
        raise ValueError(
            f"downsample_labels: label {tuple(label.shape)} vs confidence {tuple(confidence.shape)}"
        )
    h, w = (size, size) if isinstance(size, int) else size
    iy, ix = _grid(label.shape[-2], h), _grid(label.shape[-1], w)
    if hasattr(label, "device"):  # torch tensor
        import torch

        iy_t = torch.as_tensor(iy, device=label.device)[:, None]
        ix_t = torch.as_tensor(ix, device=label.device)[None, :]
        return label[..., iy_t, ix_t], confidence[..., iy_t, ix_t]
    return label[..., iy[:, None], ix[None, :]], confidence[..., iy[:, None], ix[None, :]]
