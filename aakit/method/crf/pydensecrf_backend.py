"""The pydensecrf back-end: Kraehenbuehl's C++ mean field (CPU, one image per call; optional, the
``densecrf`` extra). This module only prepares its inputs; pydensecrf is imported on first use."""
from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from aakit.config import CRFParams
from aakit.method.crf.backend import PROB_CLIP, CRFBackEnd


def pydensecrf_available() -> bool:
    """Whether pydensecrf (the ``densecrf`` extra) is installed."""
    try:
        return importlib.util.find_spec("pydensecrf") is not None
    except (ImportError, ValueError):  # hidden or half-installed
        return False


def _pydensecrf() -> Any:
    """The ``pydensecrf.densecrf`` module, imported on first use.

    Raises:
        ImportError: pydensecrf is not installed (with how to get it or avoid it).
    """
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as exc:
        raise ImportError(
            "the pydensecrf CRF back-end needs pydensecrf: pip install 'aakit[densecrf]' "
            "(needs a C++ compiler), or set pseudo.crf_backend / eval.crf_backend to torch"
        ) from exc
    return dcrf


class PydenseCRF(CRFBackEnd):
    """pydensecrf's ``DenseCRF2D``: the reference the torch lattice is tested against."""

    name = "pydensecrf"
    batched = False

    @classmethod
    def available(cls) -> bool:
        return pydensecrf_available()

    def run(self, image: np.ndarray, prob: np.ndarray, params: CRFParams, device: str = "cpu") -> np.ndarray:
        n_labels, h, w = prob.shape
        crf = _pydensecrf().DenseCRF2D(w, h, n_labels)
        unary = -np.log(np.clip(prob, PROB_CLIP, 1.0)).reshape(n_labels, -1)
        crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
        crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
        rgb = np.ascontiguousarray(image, dtype=np.uint8)  # pydensecrf reads raw C-ordered bytes
        crf.addPairwiseBilateral(
            sxy=params.bilateral_sxy, srgb=params.bilateral_srgb, rgbim=rgb, compat=params.bilateral_compat
        )
        q = crf.inference(params.iterations)
        return np.asarray(q, dtype=np.float32).reshape(n_labels, h, w)
