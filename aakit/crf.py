"""Moved to :mod:`aakit.method.crf` (back-ends, registry, dense CRF, worker pool); this path is kept
for one release."""
from __future__ import annotations

from aakit.method.crf import (  # noqa: F401
    BACKENDS, PROB_CLIP, CRFBackEnd, CRFBackend, CRFPool, PendingMap, backend_names, crf_backend, dense_crf,
    dense_crf_batch, dense_crf_job, pydensecrf_available, resolve_backend,
)
from aakit.method.crf.pool import _THREAD_ENV, _init_worker, _noop  # noqa: F401
