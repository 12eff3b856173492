"""Moved to :mod:`aakit.method.crf.lattice` (the torch CRF back-end); this path is kept for one release."""
from __future__ import annotations

from aakit.method.crf.lattice import *  # noqa: F401,F403
from aakit.method.crf.lattice import Lattice, build_lattice, dense_crf_batch, lattice_filter  # noqa: F401
