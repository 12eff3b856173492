"""Moved to :mod:`aakit.method.pseudo` (cam, rule, refiners, labeler); this path is kept for one release."""
from __future__ import annotations

from aakit.method.pseudo import *  # noqa: F401,F403
from aakit.method.pseudo.cam import _resize  # noqa: F401
from aakit.method.pseudo.labeler import _job, _numpy  # noqa: F401
from aakit.method.pseudo.rule import NORM_EPS, _finish_label, _grid  # noqa: F401
