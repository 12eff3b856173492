"""AFA's PAR as step 2's refiner (``pseudo.refine: par`` and ``par+crf``; issue 29).

How RRM's rule reads PAR's output. The rule hands a refiner the scores
``[(1 - max CAM)^alpha, CAM_1, ..., CAM_P]`` in [0, 1], which do not sum to 1 over the classes
(the dense CRF reads them as unnormalised probabilities: its unary is ``-log(score)``, and a
per-pixel constant does not change the CRF). PAR is a linear propagation whose weights sum to
``1 + w2`` at every pixel (:mod:`aakit.method.pseudo.par`), so its output sums to neither 1 nor
the input's sum. The refiner therefore

1. divides the scores by their sum over the classes at each pixel: the CAM-derived probabilities
   (the distribution the CRF's unary stands for),
2. runs :func:`~aakit.method.pseudo.par.par_refine` on them (AFA's dilations 1-2-4-8-12-24,
   10 iterations, w1 0.3, w2 0.01, replicate padding), at the crop's size,
3. divides the result by its sum over the classes at each pixel again (the ``(1 + w2) ** 10``
   that PAR multiplies every pixel's sum by).

So the refined maps are a distribution over ``[background, present classes]`` at every pixel,
as the CRF's marginals are, and the rule's thresholds keep their meaning unchanged: the
argmax is the label, ``pseudo.min_crf_prob`` (0.8) is a bound on the refined probability of the
winner, and V (``loss.aa_confidence: crf``) is that probability. The argmax is the same as that
of PAR's raw output (step 3 divides each pixel by one positive number). PAR smooths more softly
than the CRF (an average over 48 neighbours, no sharpening), so more pixels near boundaries fall
below 0.8 and are ignored; that is the rule's threshold read as it is written, not retuned.

``par+crf`` runs the dense CRF (``cfg.crf.train``, on the run's CRF back-end) on PAR's
distribution: PAR, then the paper's refinement.

The module does not import torch at load time (CRF workers import the registry): the per-image
path (:meth:`PARRefiner.refine`, run in a worker) imports it when called and runs PAR on the CPU.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from aakit.method.crf.dense import dense_crf
from aakit.method.crf.registry import crf_backend
from aakit.method.pseudo.refiner import Refiner

if TYPE_CHECKING:
    import torch

# guards the per-pixel division (the rule's scores never all vanish: max(CAM) or its background is large)
SUM_EPS = 1e-12


class PARRefiner(Refiner):
    """``par``: PAR on the per-pixel normalised scores, renormalised after (module docstring);
    ``crf_after`` (the ``par+crf`` variant below) then runs the dense CRF on the result."""

    name = "par"
    crf_after: ClassVar[bool] = False

    @property
    def batched(self) -> bool:
        """PAR runs on any device; with the CRF after it, only where the CRF back-end does."""
        return not self.crf_after or crf_backend(self.backend).batched

    def refine(self, image: np.ndarray, scores: np.ndarray) -> np.ndarray:
        import torch

        images = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
        refined = self._par(images, torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32))[None])
        q = refined[0].numpy()
        if self.crf_after:
            q = dense_crf(image, q, self.crf, backend=self.backend)
        return q.astype(np.float32, copy=False)

    def refine_batch(self, images: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        q = self._par(images, scores.float())
        if self.crf_after:
            q = crf_backend(self.backend).run_batch(images, q, self.crf)
        return q.float()

    @staticmethod
    def _par(images: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Steps 1-3 of the module docstring: (B, 3, H, W) 0-255 and (B, C, H, W) -> (B, C, H, W)
        summing to 1 over C at every pixel."""
        from aakit.method.pseudo.par import par_refine

        probs = scores / scores.sum(dim=1, keepdim=True).clamp_min(SUM_EPS)
        refined = par_refine(images.to(scores.device), probs)
        return refined / refined.sum(dim=1, keepdim=True).clamp_min(SUM_EPS)


class PARCRFRefiner(PARRefiner):
    """``par+crf``: PAR, then the dense CRF (``cfg.crf.train``) on PAR's distribution."""

    name = "par+crf"
    crf_after = True
