"""The pseudo labels of a batch: :class:`PseudoLabeler`, built from a run's config by
:meth:`PseudoLabeler.from_config` (the one place that reads ``pseudo.*`` and ``loss.aa_confidence``
for the labels), its images spread over a persistent :class:`~aakit.method.crf.pool.CRFPool` or
labelled in process on the CAMs' device.

torch is imported inside the functions that need it: CRF worker processes import this module
(for :func:`_job`) and must not load torch.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from aakit.config import Config, CRFParams, PseudoConfig
from aakit.labels import IGNORE_INDEX
from aakit.method.crf.pool import CRFPool, PendingMap
from aakit.method.crf.registry import resolve_backend
from aakit.method.pseudo.refiner import Refiner
from aakit.method.pseudo.refiners import build_refiner
from aakit.method.pseudo.rule import ConfidenceSource, present_classes, pseudo_label_present

if TYPE_CHECKING:
    import torch


def _job(args: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Worker entry point (module level, so it pickles by name)."""
    image, cam, class_ids, valid, params, crf, ignore_index, confidence, refiner = args
    return pseudo_label_present(
        image, cam, class_ids, params=params, crf=crf, valid=valid, ignore_index=ignore_index, confidence=confidence,
        refiner=refiner,
    )


def _numpy(x: Any) -> np.ndarray:
    """Tensor (any device, with grad or not) or array -> numpy array."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class PseudoLabeler:
    """Pseudo labels of a batch, the images spread over a persistent :class:`CRFPool`.

    ``labeler(...)`` waits for the labels; ``labeler.submit(...)`` returns at once with a
    :class:`PendingLabels` whose ``result()`` waits, so other work can run meanwhile.

    Args:
        params: pseudo-label settings (``params.workers`` is the default worker count).
        crf: training dense-CRF parameters.
        workers: CRF processes (0 = in-process); None takes ``params.workers``.
        ignore_index: value of unlabelled pixels.
        context: multiprocessing start method of the pool.
        confidence: where V comes from, ``crf`` or ``cam`` (see :func:`pseudo_label_single`).

    Step 2's refiner is ``params.refine`` (:mod:`aakit.method.pseudo.refiners`) on the CRF back-end
    ``params.crf_backend``; ``auto`` is resolved per batch on the CAMs' device
    (:func:`aakit.method.crf.resolve_backend`). With a batched refiner (the dense CRF on torch),
    ``batched`` runs the refinement of the whole batch in this process on the CAMs' device
    (:func:`aakit.method.pseudo.rule_torch.pseudo_labels_on_device`: the labels stay there)
    instead of one image per worker job; None (default) = batched unless the CAMs are on the CPU
    (where one image per worker is faster: docs/performance.md, "Dense CRF in PyTorch").

    Build a run's labeller with :meth:`from_config`.
    """

    def __init__(
        self,
        params: PseudoConfig,
        crf: CRFParams,
        workers: int | None = None,
        *,
        ignore_index: int = IGNORE_INDEX,
        context: str = "spawn",
        confidence: ConfidenceSource = "crf",
        batched: bool | None = None,
    ) -> None:
        self.params = params
        self.batched = batched
        self.crf = crf
        self.ignore_index = ignore_index
        self.confidence = confidence
        self.pool = CRFPool(params.workers if workers is None else workers, context=context)

    @classmethod
    def from_config(cls, cfg: Config, *, workers: int | None = None, confidence: ConfidenceSource | None = None,
                    crf_backend: str | None = None, batched: bool | None = None,
                    context: str = "spawn") -> PseudoLabeler:
        """The labeller of ``cfg``: ``cfg.pseudo`` (thresholds, refiner, CRF back-end, workers) and
        ``cfg.crf.train``; V from the CAM with ``loss.aa_confidence: cam``, else from the refined
        scores (``net`` and ``oracle`` take these labels and set V themselves: the objective's AA
        term and :func:`aakit.method.targets.oracle_confidence`).

        Args:
            cfg: the run's configuration.
            workers: CRF processes instead of ``pseudo.workers`` (0 = in process).
            confidence: V's source instead of the one ``loss.aa_confidence`` implies (profiles
                compare both).
            crf_backend: a back-end instead of ``pseudo.crf_backend`` (benchmarks).
            batched, context: as the class.
        """
        params = cfg.pseudo if crf_backend is None else dataclasses.replace(cfg.pseudo, crf_backend=crf_backend)
        if confidence is None:
            confidence = "cam" if cfg.loss.aa_confidence == "cam" else "crf"
        return cls(params, cfg.crf.train, workers=workers, context=context, confidence=confidence, batched=batched)

    def refiner(self, device: str = "cpu") -> Refiner:
        """Step 2's refiner for a batch whose CAMs are on ``device`` (``auto`` back-end resolved there)."""
        backend = resolve_backend(self.params.crf_backend, device)
        return build_refiner(self.params.refine, self.params, self.crf, backend)

    def __call__(self, *batch: Any, **named: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Label a batch and wait: ``submit(...).result()`` (arguments as :meth:`submit`)."""
        return self.submit(*batch, **named).result()

    def submit(
        self,
        images: Any,
        cams: Any,
        image_labels: Any,
        cls_scores: Any,
        valid: Any | None = None,
    ) -> PendingLabels:
        """Hand a batch to the CRF workers and return at once.

        The inputs are copied into the jobs before this returns, so the caller may change
        or free its tensors (e.g. run a backward pass) while the workers run.

        Args:
            images: (B, H, W, 3) uint8 crops (array or tensor).
            cams: (B, K, H, W) CAMs at crop size.
            image_labels: (B, K) 0/1.
            cls_scores: (B, K) sigmoid scores.
            valid: optional (B, H, W) bool, False where no label may be made.

        Returns:
            A :class:`PendingLabels`; its ``result()`` gives labels (B, H, W) int64 and
            confidence (B, H, W) float32: on the CPU from the workers, on the CAMs' device when
            the torch back-end labels the batch in process.
        """
        labels, scores = _numpy(image_labels), _numpy(cls_scores)
        device = str(getattr(cams, "device", "cpu"))
        refiner = self.refiner(device)
        b = labels.shape[0]
        if tuple(images.shape[:1]) != (b,) or images.ndim != 4 or images.shape[3] != 3 or cams.shape[0] != b \
                or tuple(cams.shape[2:]) != tuple(images.shape[1:3]):
            raise ValueError(f"PseudoLabeler: images {tuple(images.shape)} and cams {tuple(cams.shape)} disagree")
        keeps = [present_classes(labels[i], scores[i], self.params.min_class_score) for i in range(b)]
        if refiner.batched and (self.batched or (self.batched is None and device != "cpu")):
            return PendingLabels(ready=self._on_device(images, cams, keeps, valid, refiner))
        imgs = _numpy(images)
        cam = _numpy(cams).astype(np.float32, copy=False)
        masks = None if valid is None else _numpy(valid).astype(bool)
        jobs = []
        for i, keep in enumerate(keeps):
            jobs.append((
                np.ascontiguousarray(imgs[i], dtype=np.uint8).copy(),
                np.ascontiguousarray(cam[i, keep]),  # fancy indexing: already a copy
                keep,
                None if masks is None else masks[i].copy(),
                self.params,
                self.crf,
                self.ignore_index,
                self.confidence,
                refiner,
            ))
        return PendingLabels(self.pool.submit_map(_job, jobs))

    def _on_device(self, images: Any, cams: Any, keeps: list[np.ndarray], valid: Any | None,
                   refiner: Refiner) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole batch in this process, on the CAMs' device (a batched refiner)."""
        import torch

        from aakit.method.pseudo.rule_torch import pseudo_labels_on_device

        def tensor(x: Any) -> torch.Tensor:
            return x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))

        return pseudo_labels_on_device(
            tensor(images), tensor(cams).float(), [torch.from_numpy(k) for k in keeps], params=self.params,
            crf=self.crf, valid=None if valid is None else tensor(valid).bool(), confidence=self.confidence,
            ignore_index=self.ignore_index, refiner=refiner)

    def close(self) -> None:
        """Stop the CRF workers."""
        self.pool.close()

    def __enter__(self) -> PseudoLabeler:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class PendingLabels:
    """Pseudo labels being computed by the CRF workers (from :meth:`PseudoLabeler.submit`)."""

    def __init__(self, pending: PendingMap[tuple[np.ndarray, np.ndarray]] | None = None, *,
                 ready: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        self._pending = pending
        self._ready = ready  # made in process already (torch back-end, batched): on the CAMs' device

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Wait for the workers: labels (B, H, W) int64 and confidence (B, H, W) float32 (on the
        CPU from the workers; on the CAMs' device when made in process by the torch back-end)."""
        import torch

        if self._ready is not None:
            return self._ready
        assert self._pending is not None
        results = self._pending.result()
        out_labels = torch.from_numpy(np.stack([r[0] for r in results]).astype(np.int64))
        out_conf = torch.from_numpy(np.stack([r[1] for r in results]))
        return out_labels, out_conf
