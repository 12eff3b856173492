"""The loss table: each term of the training objective as a small object built from the config.

:mod:`aakit.method.losses` keeps one pure function per equation; a term here owns what the config says
about it (as mmsegmentation's loss modules own ``loss_weight`` and ``loss_name``)::

    name  weight           active in                          needs
    cls   1                every epoch                        class scores, image labels
    ce    1                after train.cls_warmup_epochs      F^c, pseudo labels
    aa    loss.lambda_aa   after train.cls_warmup_epochs      softmax F^c, labels and V at stride
    lr    loss.lambda_lr   the last loss.lr_last_epochs       F^s, labels at stride, softmax F^c

(``train.supervision: full`` has no warm-up: masks stand for the pseudo labels.) The name is the
term's key in every step record of ``metrics.jsonl``; the TUI and the report read the names from
there. The objective is the sum of the active terms; the terms that need no pseudo label (L_cls)
are computed first, so that their backward pass can overlap the CRFs (``pseudo.overlap``), and
:class:`StepLosses` says which terms went back early and what is left.

Adding a term is one class and one config key::

    @loss_term
    class EntropyLoss(LossTerm):
        loss_name = "ent"
        needs = frozenset({SEG_LOGITS})

        def loss(self, x: LossInputs) -> Tensor:
            return losses.entropy_loss(x.seg_prob)  # its equation, in aakit.method.losses

        @classmethod
        def from_config(cls, cfg: Config) -> LossTerm | None:
            return cls(cfg.loss.lambda_ent, first_epoch=segmentation_start(cfg)) if cfg.loss.lambda_ent else None
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

import aakit.method.losses as losses
from aakit.config import Config

#: What a term may need from the step (:attr:`LossTerm.needs`).
CLS_LOGITS, IMAGE_LABELS, SEG_LOGITS = "cls_logits", "image_labels", "seg_logits"
PSEUDO_LABELS, CONFIDENCE, EMBEDDING = "pseudo_labels", "confidence", "embedding"


class LossInputs:
    """What the terms of one step read: the network's outputs, the image labels and, once made,
    the pseudo labels (or masks) with their confidence. Maps derived from them are computed once,
    when a term first asks, and shared by the terms that follow."""

    def __init__(self, out: Mapping[str, Tensor], image_labels: Tensor, size: tuple[int, int]) -> None:
        self.out = out
        self.image_labels = image_labels
        self.size = size  # the crop's (H, W)
        self.labels: Tensor | None = None  # (B, H, W) pseudo labels at crop size
        self.confidence: Tensor | None = None  # (B, H, W) V

    @cached_property
    def at_stride(self) -> tuple[Tensor, Tensor]:
        """Labels and confidence sampled to F^c's resolution (METHOD.md 2.6)."""
        from aakit.method.pseudo.rule import downsample_labels

        assert self.labels is not None and self.confidence is not None, "pseudo labels first"
        height, width = self.out["seg_logits"].shape[-2:]
        return downsample_labels(self.labels, self.confidence, (height, width))

    @cached_property
    def seg_prob(self) -> Tensor:
        """softmax F^c, in float32."""
        return self.out["seg_logits"].float().softmax(1)


class LossTerm:
    """One term of the objective: ``loss_weight * loss(inputs)``, active from ``first_epoch`` on
    (0-based), named ``loss_name`` in the records."""

    loss_name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, loss_weight: float = 1.0, *, first_epoch: int = 0) -> None:
        self.loss_weight = loss_weight
        self.first_epoch = first_epoch

    @classmethod
    def from_config(cls, cfg: Config) -> LossTerm | None:
        """The term as ``cfg`` sets it, or None when the config leaves it out."""
        raise NotImplementedError

    def loss(self, x: LossInputs) -> Tensor:
        """The unweighted term (one function of :mod:`aakit.method.losses`)."""
        raise NotImplementedError

    def __call__(self, x: LossInputs) -> Tensor:
        return self.loss_weight * self.loss(x)

    def active(self, epoch: int) -> bool:
        return epoch >= self.first_epoch

    @property
    def needs_labels(self) -> bool:
        return PSEUDO_LABELS in self.needs

    def describe(self) -> dict[str, Any]:
        """The term as a run records it (``summary.json``): epochs counted from 1."""
        return {"name": self.loss_name, "weight": self.loss_weight, "from_epoch": self.first_epoch + 1,
                "needs": sorted(self.needs)}


#: The registered terms, in table order (the order of the step records and of the sum).
LOSS_TERMS: list[type[LossTerm]] = []


def loss_term(cls: type[LossTerm]) -> type[LossTerm]:
    """Class decorator: add a term to the table."""
    if any(t.loss_name == cls.loss_name for t in LOSS_TERMS):
        raise ValueError(f"two loss terms are named {cls.loss_name!r}")
    LOSS_TERMS.append(cls)
    return cls


def segmentation_start(cfg: Config) -> int:
    """The first epoch (0-based) of the terms on pseudo labels: after the classification-only
    warm-up (``train.cls_warmup_epochs``); at once with masks (``train.supervision: full``)."""
    return 0 if cfg.train.supervision == "full" else cfg.train.cls_warmup_epochs


# ----------------------------------------------------------------------------- the terms
@loss_term
class ClassificationLoss(LossTerm):
    """L_cls: multilabel soft margin on the pooled class scores."""

    loss_name = "cls"
    needs = frozenset({CLS_LOGITS, IMAGE_LABELS})

    @classmethod
    def from_config(cls, cfg: Config) -> LossTerm | None:
        return cls() if cfg.loss.cls else None

    def loss(self, x: LossInputs) -> Tensor:
        return losses.classification_loss(x.out["cls_logits"], x.image_labels)


@loss_term
class JointCELoss(LossTerm):
    """L_ce: RRM's joint cross entropy of F^c, upsampled to the crop, against the pseudo labels."""

    loss_name = "ce"
    needs = frozenset({SEG_LOGITS, PSEUDO_LABELS})

    @classmethod
    def from_config(cls, cfg: Config) -> LossTerm | None:
        return cls(first_epoch=segmentation_start(cfg)) if cfg.loss.ce else None

    def loss(self, x: LossInputs) -> Tensor:
        up = F.interpolate(x.out["seg_logits"], size=x.size, mode="bilinear", align_corners=False)
        assert x.labels is not None
        return losses.joint_ce_loss(up, x.labels)


@loss_term
class AffinityLoss(LossTerm):
    """lambda1 L_AA (eqs. 8-12), or the standard L_SA (``loss.affinity: sa``, Omega = 1)."""

    loss_name = "aa"
    needs = frozenset({SEG_LOGITS, PSEUDO_LABELS, CONFIDENCE})

    def __init__(self, loss_weight: float, *, first_epoch: int, adaptive: bool, dilations: tuple[int, ...],
                 margin: float, weighting: losses.Weighting, kl: losses.KLKind, net_confidence: bool = False) -> None:
        super().__init__(loss_weight, first_epoch=first_epoch)
        self.adaptive, self.dilations, self.margin, self.weighting, self.kl = adaptive, dilations, margin, weighting, kl
        self.net_confidence = net_confidence  # loss.aa_confidence: net (V = detached softmax maximum)

    @classmethod
    def from_config(cls, cfg: Config) -> LossTerm | None:
        L = cfg.loss
        if L.affinity == "none":
            return None
        return cls(L.lambda_aa, first_epoch=segmentation_start(cfg), adaptive=L.affinity == "aa",
                   dilations=tuple(L.dilations), margin=L.margin_aa, weighting=L.weighting, kl=L.kl,
                   net_confidence=L.aa_confidence == "net")

    def confidence(self, x: LossInputs) -> Tensor:
        """V at F^c's resolution as AA takes it: with the labels (CRF, CAM or oracle), or the
        network's own certainty (``loss.aa_confidence: net``), not the pseudo label's."""
        _, small_conf = x.at_stride
        if self.net_confidence:
            return x.seg_prob.detach().amax(dim=1).to(small_conf.dtype)
        return small_conf

    def loss(self, x: LossInputs) -> Tensor:
        small, _ = x.at_stride
        return losses.affinity_loss(x.seg_prob, small, dilations=self.dilations, margin=self.margin,
                                    confidence=self.confidence(x) if self.adaptive else None,
                                    weighting=self.weighting, kl=self.kl)


@loss_term
class LabelReassignLoss(LossTerm):
    """lambda2 L_LR (eqs. 13-17), in the last ``loss.lr_last_epochs`` epochs."""

    loss_name = "lr"
    needs = frozenset({EMBEDDING, SEG_LOGITS, PSEUDO_LABELS})

    def __init__(self, loss_weight: float, *, first_epoch: int, margin: float, gamma: float,
                 reading: losses.LRReading = "similarity") -> None:
        super().__init__(loss_weight, first_epoch=first_epoch)
        self.margin, self.gamma, self.reading = margin, gamma, reading

    @classmethod
    def from_config(cls, cfg: Config) -> LossTerm | None:
        L = cfg.loss
        if not L.label_reassign:
            return None
        first = max(segmentation_start(cfg), cfg.train.epochs - L.lr_last_epochs)
        return cls(L.lambda_lr, first_epoch=first, margin=L.margin_lr, gamma=L.gamma, reading=L.lr_reading)

    @staticmethod
    def weight(x: LossInputs) -> Tensor:
        """beta of eq. 13: the network's probability of each pixel's pseudo label (detached)."""
        small, _ = x.at_stride
        prob = x.seg_prob
        return prob.detach().gather(1, small.clamp(0, prob.shape[1] - 1).unsqueeze(1)).squeeze(1)

    def loss(self, x: LossInputs) -> Tensor:
        small, _ = x.at_stride
        return losses.label_reassign_loss(x.out["embedding"].float(), small, self.weight(x), margin=self.margin,
                                          gamma=self.gamma, reading=self.reading)


# ----------------------------------------------------------------------------- the sum
class Objective:
    """The active terms of an epoch, summed in table order."""

    def __init__(self, terms: Sequence[LossTerm]) -> None:
        self.terms = tuple(terms)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.loss_name for t in self.terms)

    def active(self, epoch: int) -> tuple[LossTerm, ...]:
        return tuple(t for t in self.terms if t.active(epoch))

    def needs_labels(self, epoch: int) -> bool:
        """Whether this epoch's steps need pseudo labels (or masks) at all."""
        return any(t.needs_labels for t in self.active(epoch))

    def __call__(self, x: LossInputs, epoch: int, *, labelled: bool) -> dict[str, Tensor]:
        """The weighted active terms by name: those on pseudo labels (``labelled``) or the others."""
        return {t.loss_name: t(x) for t in self.active(epoch) if t.needs_labels == labelled}

    def describe(self) -> list[dict[str, Any]]:
        return [t.describe() for t in self.terms]


def build_objective(cfg: Config) -> Objective:
    """The loss table of ``cfg``: every registered term the config switches on."""
    return Objective([t for t in (cls.from_config(cfg) for cls in LOSS_TERMS) if t is not None])


@dataclass
class StepLosses:
    """The named terms of one step, and which of them went back early (``pseudo.overlap``).

    The step backpropagates :meth:`pending`: the total without overlap; with it, the total less
    the terms :meth:`backward_early` already took (gradients add up to the total's).
    """

    terms: dict[str, Tensor]
    anchor: Tensor  # the class scores: a zero on the graph when no term is active
    early: tuple[str, ...] = ()

    def _zero(self) -> Tensor:
        return self.anchor.sum() * 0.0

    @cached_property
    def total(self) -> Tensor:
        """The whole objective (read it once every term is in)."""
        return sum(self.terms.values()) if self.terms else self._zero()  # type: ignore[return-value]

    def backward_early(self, backward: Callable[[Tensor], None]) -> None:
        """Hand the terms so far to ``backward`` (which must keep the graph: the rest shares it)."""
        parts = list(self.terms.values())
        if parts:
            backward(parts[0] if len(parts) == 1 else sum(parts))  # type: ignore[arg-type]
            self.early = tuple(self.terms)

    def pending(self) -> Tensor:
        """What is left to backpropagate."""
        if not self.early:
            return self.total
        rest = [v for k, v in self.terms.items() if k not in self.early]
        return sum(rest) if rest else self._zero()  # type: ignore[return-value]

    def scalars(self) -> dict[str, float]:
        """Every term and the total, as floats (the step record's ``losses``)."""
        out = {k: float(v.detach()) for k, v in self.terms.items()}
        out["total"] = float(self.total.detach())
        return out
