"""The paper in code: the method the engine trains.

============================  ===================================================================
:mod:`.losses`                one pure function per equation (eqs. 8-17, L_cls, L_ce)
:mod:`.objective`             the loss table: a term per class, ``build_objective(cfg)``
:mod:`.targets`               the labels a step trains on (pseudo labels, masks, oracle V)
:mod:`.step`                  the step's loss assembly, ``losses_of_batch`` (what the engine calls)
:mod:`.pseudo`                RRM's online pseudo labels: CAM, the label rule (numpy and torch),
                              the refiners (``pseudo.refine``), ``PseudoLabeler.from_config``
:mod:`.crf`                   the dense CRF: back-ends (``pseudo.crf_backend``), the worker pool
============================  ===================================================================

The engine imports the method only from here (``from aakit.method import ...``; tests/test_layering.py).
The names below are loaded on first use, so that a CRF worker, which imports
:mod:`aakit.method.pseudo` and :mod:`aakit.method.crf`, never loads torch through this package.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and for the import graph of tests/test_layering.py
    from aakit.method.crf import BACKENDS, CRFPool, dense_crf, dense_crf_batch, pydensecrf_available, resolve_backend
    from aakit.method.objective import (
        LOSS_TERMS, AffinityLoss, LabelReassignLoss, LossInputs, LossTerm, Objective, StepLosses, build_objective,
    )
    from aakit.method.pseudo import REFINERS, PendingLabels, PseudoLabeler, downsample_labels, multiscale_cam
    from aakit.method.step import compute_losses, losses_of_batch
    from aakit.method.targets import (
        PendingTargets, make_labeler, oracle_confidence, request_targets, training_cam, uses_oracle,
    )

#: exported name -> the submodule that defines it
_WHERE = {
    **dict.fromkeys(("BACKENDS", "CRFPool", "dense_crf", "dense_crf_batch", "pydensecrf_available",
                     "resolve_backend"), "crf"),
    **dict.fromkeys(("LOSS_TERMS", "AffinityLoss", "LabelReassignLoss", "LossInputs", "LossTerm", "Objective",
                     "StepLosses", "build_objective"), "objective"),
    **dict.fromkeys(("REFINERS", "PendingLabels", "PseudoLabeler", "downsample_labels", "multiscale_cam"), "pseudo"),
    **dict.fromkeys(("compute_losses", "losses_of_batch"), "step"),
    **dict.fromkeys(("PendingTargets", "make_labeler", "oracle_confidence", "request_targets", "training_cam",
                     "uses_oracle"), "targets"),
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    """``aakit.method.<name>``: imports the submodule that defines it (PEP 562)."""
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'aakit.method' has no attribute {name!r}")
    return getattr(importlib.import_module(f"aakit.method.{where}"), name)
