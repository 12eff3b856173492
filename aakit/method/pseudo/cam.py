"""The multi-scale CAM the pseudo labels start from (METHOD.md section 1: ``model.cam_scales``).

torch is imported inside the functions (the CRF workers import the pseudo package).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    import torch


def multiscale_cam(
    cam_fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    scales: Sequence[float],
    out_size: int | tuple[int, int],
    feature_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Average CAMs over input scales at feature-map size, then upsample; no gradient.

    RRM's order (``network/RRM.py`` ``SegNet.forward``, then ``compute_cam_up``): the CAM of
    each scale is resized bilinearly (``align_corners=False``) to the size of the scale-1 CAM,
    the CAMs are averaged there, and the mean is upsampled bilinearly (``align_corners=False``)
    to ``out_size``.

    Args:
        cam_fn: maps images (B, 3, h, w) to CAMs (B, K, h', w').
        images: (B, 3, H, W) normalised images.
        scales: each image is resized bilinearly to ``int(H*s) x int(W*s)`` (as RRM).
        out_size: size of the returned CAM (the crop).
        feature_size: the size the scales are averaged at; default the size of the CAM of
            scale 1.0 (of the first scale if 1.0 is not among them).

    Returns:
        (B, K, out_h, out_w) mean CAM, detached.
    """
    import torch
    import torch.nn.functional as F

    if len(scales) == 0:
        raise ValueError("multiscale_cam: needs at least one scale")
    size = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
    h, w = images.shape[-2:]
    with torch.no_grad():
        cams = []
        for s in scales:
            x = images
            if s != 1.0:
                scaled = (max(1, int(h * s)), max(1, int(w * s)))
                x = F.interpolate(images, size=scaled, mode="bilinear", align_corners=False)
            cams.append(cam_fn(x))
        if feature_size is None:
            feature_size = tuple(cams[list(scales).index(1.0) if 1.0 in scales else 0].shape[-2:])
        total = sum(_resize(c, tuple(feature_size)) for c in cams)
        return _resize(total / len(scales), size)


def _resize(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Bilinear resize with ``align_corners=False`` (a no-op at the same size)."""
    import torch.nn.functional as F

    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
