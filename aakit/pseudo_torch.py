"""Moved to :mod:`aakit.method.pseudo.rule_torch`; this path is kept for one release."""
from __future__ import annotations

from aakit.method.pseudo.rule_torch import *  # noqa: F401,F403
from aakit.method.pseudo.rule_torch import (  # noqa: F401
    NORM_EPS, background_score, cam_sure_region, label_from_marginals, normalise_cam, pseudo_labels_on_device,
)
