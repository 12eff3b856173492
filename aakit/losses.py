"""Moved to :mod:`aakit.method.losses`; this path is kept for one release (the same module object:
``import aakit.losses`` gives :mod:`aakit.method.losses`)."""
from __future__ import annotations

import sys

import aakit.method.losses as _moved

sys.modules[__name__] = _moved
