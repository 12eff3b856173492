"""RRM's online pseudo labels (METHOD.md section 2): the multi-scale CAM (:mod:`.cam`), the label
rule in numpy (:mod:`.rule`, one image, what the CRF workers run) and on tensors side by side
(:mod:`.rule_torch`, a batch on its device), step 2's refiners (:mod:`.refiner` the interface,
:mod:`.refiners` the registry, :mod:`.crf_refiner` the paper's dense CRF, :mod:`.par_refiner` AFA's PAR) and the batch's labeller
(:mod:`.labeler`, :meth:`PseudoLabeler.from_config`).

Nothing here imports torch at load time (the CRF workers import this package)."""
from __future__ import annotations

from aakit.method.pseudo.cam import multiscale_cam
from aakit.method.pseudo.labeler import PendingLabels, PseudoLabeler
from aakit.method.pseudo.refiner import Refiner
from aakit.method.pseudo.refiners import REFINERS, build_refiner, refiner_names
from aakit.method.pseudo.rule import (
    ConfidenceSource, LabelOptions, background_score, cam_confidence, cam_sure_region, crf_inputs, downsample_labels,
    label_from_marginals, normalise_cam, present_classes, pseudo_label_present, pseudo_label_single,
)

__all__ = [
    "REFINERS", "ConfidenceSource", "LabelOptions", "PendingLabels", "PseudoLabeler", "Refiner", "background_score",
    "build_refiner", "cam_confidence", "cam_sure_region", "crf_inputs", "downsample_labels", "label_from_marginals",
    "multiscale_cam", "normalise_cam", "present_classes", "pseudo_label_present", "pseudo_label_single",
    "refiner_names",
]
