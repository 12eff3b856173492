"""Moved to :mod:`aakit.method.objective`; this path is kept for one release (the same module object:
``import aakit.objective`` gives :mod:`aakit.method.objective`)."""
from __future__ import annotations

import sys

import aakit.method.objective as _moved

sys.modules[__name__] = _moved
