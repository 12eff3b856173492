"""What a dense-CRF back-end is: the interface every entry of :data:`aakit.method.crf.registry.BACKENDS`
implements.

The dense CRF (Kraehenbuehl & Koltun 2011) refines per-pixel class scores with a Gaussian kernel on
position and a bilateral kernel on position + colour. A back-end computes its mean-field inference:

* :meth:`CRFBackEnd.run` -- one image, numpy in and out (the CRF workers call it; it must not import
  torch at module load when the back-end is meant to run in the workers);
* :meth:`CRFBackEnd.run_batch` -- a batch of tensors on their device (only back-ends with
  ``batched = True``; the pseudo-labeller then labels the whole batch in process, on the device).

Both take scores in [0, 1] that need not sum to 1 over C (the unary is ``-log(clip(prob, 1e-5,
1))``) and return marginals Q that do. Adding a back-end is one class in one file plus its entry
in :mod:`aakit.method.crf.registry` (and its name in :data:`aakit.config.CRFBackendName`, the
``Literal`` of ``pseudo.crf_backend`` and ``eval.crf_backend``; tests/test_registries.py fails until
the two agree):
see docs/architecture.md, "Adding a CRF back-end".
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from aakit.config import CRFParams

if TYPE_CHECKING:
    import torch

# Probabilities are clipped before the log so that a zero score gives a large but finite energy
# (the value pydensecrf's own ``unary_from_softmax`` uses, as RRM does).
PROB_CLIP = 1e-5


class CRFBackEnd:
    """A dense-CRF implementation. Stateless: one instance serves every call (and pickles)."""

    name: ClassVar[str] = ""
    #: whether :meth:`run_batch` exists (a batch of tensors on their device, e.g. CUDA)
    batched: ClassVar[bool] = False

    @classmethod
    def available(cls) -> bool:
        """Whether the back-end can run here (its optional package is installed)."""
        return True

    def run(self, image: np.ndarray, prob: np.ndarray, params: CRFParams, device: str = "cpu") -> np.ndarray:
        """(H, W, 3) uint8 image and (C, H, W) scores -> (C, H, W) float32 marginals."""
        raise NotImplementedError

    def run_batch(self, images: torch.Tensor, probs: torch.Tensor, params: CRFParams) -> torch.Tensor:
        """(B, 3, H, W) uint8 and (B, C, H, W) float on one device -> (B, C, H, W) float32 there."""
        raise NotImplementedError(f"the {self.name} CRF back-end runs one image at a time (no batches)")
