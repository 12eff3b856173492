"""The loss table (aakit.method.objective): which terms a config builds, when each is active, and what
a step backpropagates with and without the early backward of L_cls."""
from __future__ import annotations

import pytest
import torch

from aakit.config import Config
from aakit.method.objective import (
    LOSS_TERMS,
    LossInputs,
    LossTerm,
    StepLosses,
    build_objective,
    loss_term,
)


def _f(t: torch.Tensor) -> float:
    return float(t.detach())


def _cfg(**loss: object) -> Config:
    cfg = Config()
    cfg.train.epochs, cfg.train.cls_warmup_epochs = 8, 2
    for k, v in loss.items():
        setattr(cfg.loss, k, v)
    return cfg


def test_the_table_follows_the_config() -> None:
    assert build_objective(_cfg()).names == ("cls", "ce", "aa", "lr")
    assert build_objective(_cfg(affinity="none", label_reassign=False)).names == ("cls", "ce")
    assert build_objective(_cfg(affinity="sa")).names == ("cls", "ce", "aa", "lr")  # SA is recorded as "aa" too
    only_cls = _cfg(ce=False, affinity="none", label_reassign=False)
    assert build_objective(only_cls).names == ("cls",) and not build_objective(only_cls).needs_labels(7)


def test_weights_and_active_epochs() -> None:
    cfg = _cfg(lambda_aa=0.3, lambda_lr=0.05, lr_last_epochs=3)
    terms = {t.loss_name: t for t in build_objective(cfg).terms}
    assert [terms[k].loss_weight for k in ("cls", "ce", "aa", "lr")] == [1.0, 1.0, 0.3, 0.05]
    objective = build_objective(cfg)
    active = {e: [t.loss_name for t in objective.active(e)] for e in range(8)}
    assert active[0] == active[1] == ["cls"]  # the warm-up: classification only
    assert active[2] == active[4] == ["cls", "ce", "aa"]
    assert active[5] == active[7] == ["cls", "ce", "aa", "lr"]  # the last 3 epochs
    assert not objective.needs_labels(1) and objective.needs_labels(2)
    lr = terms["lr"].describe()
    assert lr == {"name": "lr", "weight": 0.05, "from_epoch": 6, "needs": ["embedding", "pseudo_labels", "seg_logits"]}


def test_full_supervision_has_no_warm_up_and_lr_never_starts_before_the_labels() -> None:
    cfg = _cfg(lr_last_epochs=8)
    assert {t.loss_name: t.first_epoch for t in build_objective(cfg).terms} == {"cls": 0, "ce": 2, "aa": 2, "lr": 2}
    cfg.train.supervision = "full"
    assert {t.loss_name: t.first_epoch for t in build_objective(cfg).terms} == {"cls": 0, "ce": 0, "aa": 0, "lr": 0}


def test_terms_read_what_they_need_once() -> None:
    torch.manual_seed(0)
    seg = torch.randn(2, 3, 5, 5, requires_grad=True)
    out = {"cls_logits": torch.randn(2, 2), "seg_logits": seg, "embedding": torch.randn(2, 4, 5, 5)}
    x = LossInputs(out, torch.tensor([[1.0, 0.0], [1.0, 1.0]]), (9, 9))
    x.labels = torch.randint(0, 3, (2, 9, 9))
    x.confidence = torch.rand(2, 9, 9)
    terms = build_objective(_cfg())(x, 7, labelled=True)
    assert list(terms) == ["ce", "aa", "lr"]
    assert x.seg_prob is x.seg_prob and x.at_stride[0].shape == (2, 5, 5)


def test_step_losses_with_and_without_the_early_backward() -> None:
    a = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(3.0, requires_grad=True)
    plain = StepLosses({"cls": a * 1.0, "ce": b * 2.0}, anchor=a)
    assert _f(plain.pending()) == _f(plain.total) == 8.0
    assert plain.scalars() == {"cls": 2.0, "ce": 6.0, "total": 8.0}
    seen: list[float] = []
    overlap = StepLosses({"cls": a * 1.0}, anchor=a)
    overlap.backward_early(lambda t: seen.append(_f(t)))
    overlap.terms |= {"ce": b * 2.0}
    assert seen == [2.0] and overlap.early == ("cls",)
    assert _f(overlap.pending()) == 6.0 and _f(overlap.total) == 8.0  # the rest; the record keeps all
    alone = StepLosses({"cls": a * 1.0}, anchor=a)
    alone.backward_early(lambda t: None)
    assert _f(alone.pending()) == 0.0 and alone.pending().requires_grad  # nothing left, still on the graph
    assert _f(StepLosses({}, anchor=a).total) == 0.0


def test_a_new_term_is_one_class_and_names_are_unique() -> None:
    class Twice(LossTerm):
        loss_name = "cls"

    with pytest.raises(ValueError, match="two loss terms"):
        loss_term(Twice)
    assert [t.loss_name for t in LOSS_TERMS] == ["cls", "ce", "aa", "lr"]


def test_aa_confidence_sources_change_only_v() -> None:
    """loss.aa_confidence (issue 14): crf/cam V arrive with the labels; net takes F^c's own
    detached softmax maximum. SA ignores V whatever its source."""
    from aakit.method import losses

    torch.manual_seed(1)
    seg = torch.randn(2, 3, 5, 5)
    out = {"cls_logits": torch.randn(2, 2), "seg_logits": seg, "embedding": torch.randn(2, 4, 5, 5)}
    x = LossInputs(out, torch.tensor([[1.0, 0.0], [1.0, 1.0]]), (9, 9))
    x.labels = torch.randint(0, 3, (2, 9, 9))
    x.confidence = torch.full((2, 9, 9), 0.9)
    got = {src: _f(build_objective(_cfg(aa_confidence=src))(x, 7, labelled=True)["aa"]) for src in ("crf", "net")}
    small, _ = x.at_stride
    prob = seg.softmax(1)
    want_net = 0.1 * losses.affinity_loss(prob, small, dilations=(4, 8, 12, 24), margin=3.0, confidence=prob.amax(1))
    want_crf = 0.1 * losses.affinity_loss(prob, small, dilations=(4, 8, 12, 24), margin=3.0,
                                          confidence=torch.full((2, 5, 5), 0.9))
    assert got["net"] == pytest.approx(_f(want_net)) and got["crf"] == pytest.approx(_f(want_crf))
    assert got["net"] != pytest.approx(got["crf"])
    sa = {src: _f(build_objective(_cfg(affinity="sa", aa_confidence=src))(x, 7, labelled=True)["aa"])
          for src in ("crf", "net")}
    assert sa["crf"] == sa["net"]
