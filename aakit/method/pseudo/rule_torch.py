"""RRM's pseudo-label rule on tensors, so that a batch's labels never leave its device.

The same steps as :mod:`aakit.method.pseudo.rule` (METHOD.md section 2) written with torch
operations: the CAMs are normalised and given their background scores on the device, both
refinements of every image of the batch run there (the refiner's ``refine_batch``: the dense CRF's
:func:`aakit.method.crf.dense_crf_batch`, one call per label count), and the labels, the CAM-sure
region and V are made there too. With ``pseudo.crf_backend: torch`` on a GPU nothing goes back to
the host but the (B, K) image labels and scores (tiny).

The numpy rule of :mod:`aakit.method.pseudo.rule` stays the reference (the CRF workers run it); the two
agree (tests/test_crf_torch.py) up to float rounding of ``pow``, which may move a pixel across a
threshold.
"""
from __future__ import annotations

from typing import Sequence

import torch

from aakit.config import CRFParams, PseudoConfig
from aakit.labels import IGNORE_INDEX
from aakit.method.pseudo.refiner import Refiner
from aakit.method.pseudo.refiners import build_refiner

NORM_EPS = 1e-5  # RRM: cam / (max + 1e-5), as aakit.method.pseudo.rule


def normalise_cam(cam: torch.Tensor) -> torch.Tensor:
    """(P, H, W): each channel clipped at 0 and divided by its max (+1e-5)."""
    cam = cam.float().clamp_min(0.0)
    return cam / (cam.amax(dim=(1, 2), keepdim=True) + NORM_EPS)


def background_score(cam: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(1 - max_c CAM)^alpha`` of normalised CAMs (P >= 1, H, W)."""
    return torch.pow(1.0 - cam.amax(dim=0), alpha)


def cam_sure_region(cam: torch.Tensor, labels_to_check: torch.Tensor, params: PseudoConfig) -> torch.Tensor:
    """RRM's CAM-sure region (step 4), as :func:`aakit.method.pseudo.rule.cam_sure_region`: (H, W) bool."""
    scores = torch.cat([background_score(cam, params.alpha_high)[None], cam])
    winner = scores.argmax(dim=0)
    sure = torch.zeros_like(winner, dtype=torch.bool)
    for j in labels_to_check.tolist():
        region = winner == j
        if j == 0:
            sure |= region & (scores[0] > params.sure_bg)
            continue
        values = torch.sort(scores[j][region & (scores[j] > params.sure_fg_min)]).values
        if values.numel() == 0:
            continue
        cut = values[int(values.numel() * (1.0 - params.sure_fg_top))]
        sure |= region & (scores[j] > cut)
    return sure


def label_from_marginals(cam: torch.Tensor, class_ids: torch.Tensor, bg_high: torch.Tensor, q_low: torch.Tensor,
                         q_high: torch.Tensor, params: PseudoConfig, confidence: str = "crf",
                         ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 3-4 from the two CRFs' marginals (P + 1, H, W): label (H, W) int64 and V."""
    win_low, win_high = q_low.argmax(dim=0), q_high.argmax(dim=0)
    # Step 3: objects from the low-alpha CRF, background from the high-alpha CRF.
    lut = torch.cat([torch.tensor([ignore_index], device=cam.device), class_ids.to(cam.device) + 1])
    label = lut[win_low]
    conf = q_low.gather(0, win_low[None])[0]
    is_bg = win_high == 0
    label = torch.where(is_bg, torch.zeros_like(label), label)
    conf = torch.where(is_bg, q_high[0], conf)
    # Step 4: low CRF probability, or outside the CAM-sure region -> ignore.
    sure = cam_sure_region(cam, torch.unique(win_low), params)
    label = torch.where((conf < params.min_crf_prob) | ~sure, torch.full_like(label, ignore_index), label)
    if confidence == "cam":  # V from the CAM (loss.aa_confidence: cam), as aakit.method.pseudo.rule.cam_confidence
        obj = cam.gather(0, (win_low - 1).clamp_min(0)[None])[0]
        conf = torch.where(is_bg | (win_low == 0), bg_high, obj)
    return label, conf


def pseudo_labels_on_device(images: torch.Tensor, cams: torch.Tensor, keeps: Sequence[torch.Tensor], *,
                            params: PseudoConfig, crf: CRFParams, valid: torch.Tensor | None = None,
                            confidence: str = "crf", ignore_index: int = IGNORE_INDEX,
                            refiner: Refiner | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's pseudo labels on the CAMs' device (steps 2-5 for every image).

    Args:
        images: (B, H, W, 3) uint8, any device (moved to the CAMs').
        cams: (B, K, H, W) raw CAMs at crop size.
        keeps: per image, the int64 indices of its present classes (step 1, ascending).
        params, crf: pseudo-label settings and the training CRF.
        valid: optional (B, H, W) bool, False where no label may be made.
        confidence: where V comes from, ``crf`` or ``cam``.
        refiner: step 2's batched refiner; default ``params.refine`` on the torch CRF back-end.

    Returns:
        labels (B, H, W) int64 and V (B, H, W) float32 (0 where ignored), on the CAMs' device.
    """
    device = cams.device
    refiner = refiner or build_refiner(params.refine, params, crf, "torch")
    b, _, h, w = cams.shape
    imgs = images.to(device).permute(0, 3, 1, 2)
    labels = torch.zeros((b, h, w), dtype=torch.int64, device=device)  # no class: background
    conf = torch.ones((b, h, w), dtype=torch.float32, device=device)
    prepared: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    groups: dict[int, list[int]] = {}
    for i, keep in enumerate(keeps):
        if len(keep):
            norm = normalise_cam(cams[i, keep.to(device)])
            low = torch.cat([background_score(norm, params.alpha_low)[None], norm])
            bg_high = background_score(norm, params.alpha_high)
            prepared[i] = (norm, bg_high, low, torch.cat([bg_high[None], norm]))
            groups.setdefault(len(keep) + 1, []).append(i)
    for members in groups.values():  # the low- and high-alpha refinements of these images in one call
        q = refiner.refine_batch(imgs[members + members].contiguous(),
                                 torch.stack([prepared[i][2] for i in members] + [prepared[i][3] for i in members]))
        for k, i in enumerate(members):
            norm, bg_high = prepared[i][:2]
            labels[i], conf[i] = label_from_marginals(norm, keeps[i], bg_high, q[k], q[len(members) + k], params,
                                                      confidence, ignore_index)
    if valid is not None:
        labels = torch.where(valid.to(device), labels, torch.full_like(labels, ignore_index))
    return labels, torch.where(labels == ignore_index, torch.zeros_like(conf), conf)
