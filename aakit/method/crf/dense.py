"""The dense CRF through the back-end registry: one image (:func:`dense_crf`), a batch on the
tensors' device (:func:`dense_crf_batch`), and the one-argument job of the CRF workers.

The dense CRF (Kraehenbuehl & Koltun 2011) refines per-pixel class scores with two pairwise
kernels: a Gaussian on position (smoothness) and a bilateral one on position + colour. The
back-ends (:mod:`aakit.method.crf.registry`) compute the same mean-field inference: ``pydensecrf``
(C++, CPU) and ``torch`` (a permutohedral lattice in PyTorch, batched, on any device).

Example::

    q = dense_crf(image, prob, CRFParams())          # (C, H, W), sums to 1 over C
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from aakit.config import CRFParams
from aakit.method.crf.registry import backend_names, crf_backend

if TYPE_CHECKING:
    import torch

#: a resolved back-end name (the registry's; ``auto`` is resolved by :func:`resolve_backend`)
CRFBackend = Literal["pydensecrf", "torch"]


def dense_crf(image: np.ndarray, prob: np.ndarray, params: CRFParams, *,
              backend: str = "pydensecrf", device: str = "cpu") -> np.ndarray:
    """Refine class scores with a fully connected CRF.

    Args:
        image: (H, W, 3) uint8 RGB image the bilateral kernel compares colours on.
        prob: (C, H, W) scores in [0, 1], one channel per label. They need not sum to 1 over C:
            the unary is ``-log(clip(prob, 1e-5, 1))`` and a per-pixel constant does not change
            the CRF's distribution (RRM feeds raw background/CAM scores the same way).
        params: iterations and kernel parameters.
        backend: a registered back-end (``pydensecrf``, ``torch``).
        device: where a torch back-end runs (the result comes back as numpy).

    Returns:
        (C, H, W) float32 marginals Q: a distribution over the C labels at every pixel.

    Raises:
        ValueError: shapes disagree, the image is not (H, W, 3) or the back-end is unknown.
        ImportError: ``backend="pydensecrf"`` without pydensecrf installed.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"dense_crf: image must be (H, W, 3), got {image.shape}")
    if prob.ndim != 3 or prob.shape[1:] != image.shape[:2]:
        raise ValueError(f"dense_crf: prob {prob.shape} does not match image {image.shape}")
    if backend not in backend_names():
        raise ValueError(f"dense_crf: unknown back-end {backend!r} ({' or '.join(backend_names())})")
    return crf_backend(backend).run(image, prob, params, device)


def dense_crf_batch(images: torch.Tensor, probs: torch.Tensor, params: CRFParams,
                    backend: str = "torch") -> torch.Tensor:
    """A batched back-end on a batch: (B, 3, H, W) uint8 and (B, C, H, W) float on any device
    -> (B, C, H, W) float32 marginals on that device (see :func:`aakit.method.crf.lattice.dense_crf_batch`)."""
    return crf_backend(backend).run_batch(images, probs, params)


def dense_crf_job(args: tuple[Any, ...]) -> np.ndarray:
    """``dense_crf(image, prob, params[, backend])``: a one-argument job for :meth:`CRFPool.map`."""
    image, prob, params, *rest = args
    return dense_crf(image, prob, params, backend=rest[0] if rest else "pydensecrf")
