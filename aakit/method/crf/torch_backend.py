"""The torch back-end: the permutohedral lattice of :mod:`aakit.method.crf.lattice` (batched, on any
device; agrees with pydensecrf to float precision). torch is imported only when it runs, so the CRF
workers may import this module without loading torch."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aakit.config import CRFParams
from aakit.method.crf.backend import CRFBackEnd

if TYPE_CHECKING:
    import torch


class TorchLattice(CRFBackEnd):
    """Mean field with permutohedral-lattice filtering in PyTorch."""

    name = "torch"
    batched = True

    def run(self, image: np.ndarray, prob: np.ndarray, params: CRFParams, device: str = "cpu") -> np.ndarray:
        import torch

        images = torch.from_numpy(np.ascontiguousarray(image, dtype=np.uint8)).permute(2, 0, 1)[None]
        probs = torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32))[None]
        return self.run_batch(images.to(device), probs.to(device), params)[0].cpu().numpy()

    def run_batch(self, images: torch.Tensor, probs: torch.Tensor, params: CRFParams) -> torch.Tensor:
        from aakit.method.crf.lattice import dense_crf_batch

        return dense_crf_batch(images, probs, params)
