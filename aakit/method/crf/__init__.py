"""The dense CRF: the back-end interface (:mod:`.backend`), the registered back-ends
(:mod:`.registry`: ``pydensecrf`` in :mod:`.pydensecrf_backend`, the torch permutohedral lattice
in :mod:`.torch_backend` / :mod:`.lattice`), the entry points (:mod:`.dense`) and the CRF worker
pool (:mod:`.pool`).

Nothing here imports torch at load time (the CRF workers import this package)."""
from __future__ import annotations

from aakit.method.crf.backend import PROB_CLIP, CRFBackEnd
from aakit.method.crf.dense import CRFBackend, dense_crf, dense_crf_batch, dense_crf_job
from aakit.method.crf.pool import CRFPool, PendingMap
from aakit.method.crf.pydensecrf_backend import pydensecrf_available
from aakit.method.crf.registry import BACKENDS, backend_names, crf_backend, resolve_backend

__all__ = [
    "BACKENDS", "CRFBackEnd", "CRFBackend", "CRFPool", "PROB_CLIP", "PendingMap", "backend_names", "crf_backend",
    "dense_crf", "dense_crf_batch", "dense_crf_job", "pydensecrf_available", "resolve_backend",
]
