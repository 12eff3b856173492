"""What a refiner is: step 2 of RRM's label rule, the seam ``pseudo.refine`` selects through.

The label rule (:mod:`aakit.method.pseudo.rule` in numpy, :mod:`aakit.method.pseudo.rule_torch` on
tensors) makes, from the normalised CAMs of an image's present classes, two score maps over
``[background, present classes]`` (background ``(1 - max CAM)^alpha`` with the low and the high
alpha) and asks the run's refiner to refine each; it reads the refined maps as marginals: their
argmax per pixel is the winning label and the winner's value is tested against
``pseudo.min_crf_prob`` and becomes V with ``loss.aa_confidence: crf``. The paper's refiner is
the dense CRF (:class:`aakit.method.pseudo.crf_refiner.CRFRefiner`, ``crf``).

The exact interface a refiner implements (a subclass of :class:`Refiner`)::

    name: ClassVar[str]                     # its registry key, the value of pseudo.refine
    batched: bool                           # True: refine_batch runs on the tensors' device and the
                                            # labeller labels a batch in process there (see below)

    @classmethod
    def from_settings(cls, pseudo: PseudoConfig, crf: CRFParams, backend: str) -> Refiner
        # built once per batch by the labeller: pseudo = cfg.pseudo (a refiner's own settings may
        # be fields there), crf = cfg.crf.train, backend = the resolved pseudo.crf_backend
        # (a registered CRF back-end's name, never "auto")

    def refine(self, image: np.ndarray, scores: np.ndarray) -> np.ndarray
        # one image, numpy, run in a CRF worker process (must not need torch loaded at import of
        # the refiner's module; import it inside the method if it needs it):
        # image (H, W, 3) uint8 RGB 0-255; scores (C, H, W) float32 in [0, 1] (C = 1 + present
        # classes, not summing to 1) -> (C, H, W) float32 refined scores (a distribution over C
        # at every pixel for the thresholds to mean what they say)

    def refine_batch(self, images: torch.Tensor, scores: torch.Tensor) -> torch.Tensor
        # a batch on one device, no grad: images (B, 3, H, W) uint8 0-255; scores (B, C, H, W)
        # float32 (every map of the call has the same C; the rule stacks the low- and high-alpha
        # maps of all images with that C into one call) -> (B, C, H, W) float32 on that device

The labeller (:class:`aakit.method.pseudo.labeler.PseudoLabeler`) takes the batched path when the
refiner's ``batched`` is true and the CAMs are on a GPU (or ``batched=True`` is asked for), else it
sends one image per job to the CRF workers, which call :meth:`Refiner.refine`. A refiner whose
scores come out at another size (AFA's PAR refines probabilities upsampled bilinearly with
``align_corners=True``) upsamples them itself: the rule gives and expects crop-size (H, W) maps.

Adding a refiner (as ``par`` and ``par+crf`` were: :mod:`aakit.method.pseudo.par_refiner`, on
``par_refine(images, probs, ...)`` of :mod:`aakit.method.pseudo.par`) is one class in one file plus its entry in
:data:`aakit.method.pseudo.refiners.REFINERS` and its name in :data:`aakit.config.RefinerName` (the
``Literal`` of ``pseudo.refine``); tests/test_registries.py runs every registered refiner
through both paths. See docs/architecture.md, "Adding a refiner".
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from aakit.config import CRFParams, PseudoConfig

if TYPE_CHECKING:
    import torch


class Refiner:
    """Step 2's refinement of the score maps (see the module docstring for the contract).

    Args:
        crf: the training dense-CRF parameters (``cfg.crf.train``).
        backend: the resolved CRF back-end's name.
    """

    name: ClassVar[str] = ""

    def __init__(self, crf: CRFParams, backend: str = "pydensecrf") -> None:
        self.crf = crf
        self.backend = backend

    @classmethod
    def from_settings(cls, pseudo: PseudoConfig, crf: CRFParams, backend: str) -> Refiner:
        """The refiner of a run (override to read the refiner's own fields of ``pseudo``)."""
        return cls(crf, backend)

    @property
    def batched(self) -> bool:
        """Whether :meth:`refine_batch` runs on the tensors' device (the labeller's batched path)."""
        return False

    def refine(self, image: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """One image: (H, W, 3) uint8 and (C, H, W) float32 -> (C, H, W) float32."""
        raise NotImplementedError

    def refine_batch(self, images: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """A batch on one device: (B, 3, H, W) uint8 and (B, C, H, W) float -> (B, C, H, W) float32."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r})"
