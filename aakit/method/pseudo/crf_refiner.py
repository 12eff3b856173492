"""The paper's refiner (``pseudo.refine: crf``): the dense CRF on the run's CRF back-end."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aakit.method.crf.dense import dense_crf
from aakit.method.crf.registry import crf_backend
from aakit.method.pseudo.refiner import Refiner

if TYPE_CHECKING:
    import torch


class CRFRefiner(Refiner):
    """RRM's step 2: mean-field inference of the dense CRF (``cfg.crf.train``) over the scores;
    batched on the device when the back-end is (``torch``)."""

    name = "crf"

    @property
    def batched(self) -> bool:
        return crf_backend(self.backend).batched

    def refine(self, image: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return dense_crf(image, scores, self.crf, backend=self.backend)

    def refine_batch(self, images: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return crf_backend(self.backend).run_batch(images, scores, self.crf)
