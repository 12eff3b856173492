"""Moved to :mod:`aakit.method.targets`; this path is kept for one release."""
from __future__ import annotations

from aakit.method import (  # noqa: F401
    PendingTargets, make_labeler, oracle_confidence, request_targets, training_cam, uses_oracle,
)
