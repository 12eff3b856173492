"""Tests of aakit.method.losses against plain-loop references written straight from the equations.

The references loop over pixels and neighbours (AA) or pixels and classes (LR) on tiny
float64 inputs, so any vectorisation slip (wrong shift, padding pairs, per-image instead of
pooled means, one pair order only, wrong argmax, alpha with gradient...) shows up.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aakit.method.losses import (
    affinity_loss,
    class_centroids,
    classification_loss,
    connection_weight,
    joint_ce_loss,
    label_reassign_loss,
    modulation_factor,
    neighbour_offsets,
    pairwise_kl,
    reassign_margin_terms,
    single_kernel_affinity,
)

IGNORE = 255
DT = torch.float64


# ============================================================================ references
def _clamp(v: float) -> float:
    return min(max(v, 1e-4), 1.0)


def ref_kl(pi: np.ndarray, pj: np.ndarray, kl: str) -> float:
    """Eq. 4 for one pair, class by class."""
    w = 0.0
    for c in range(len(pi)):
        a, b = _clamp(pi[c]), _clamp(pj[c])
        w += a * math.log(a / b)
        if kl == "binary":
            qa, qb = _clamp(1.0 - pi[c]), _clamp(1.0 - pj[c])
            w += qa * math.log(qa / qb)
    return w


def ref_affinity(prob, label, *, dilations, margin, confidence, weighting, kl) -> float:
    """Eqs. 1-12 with explicit loops over dilations, pixels and the 8 neighbours."""
    prob = prob.detach().numpy()
    label = label.numpy()
    conf = None if confidence is None else confidence.numpy()
    bsz, _, height, width = prob.shape
    total = 0.0
    for d in dilations:
        fg, bg, neg = [], [], []
        for b in range(bsz):
            for y in range(height):
                for x in range(width):
                    for dy in (-d, 0, d):
                        for dx in (-d, 0, d):
                            if dy == 0 and dx == 0:
                                continue
                            yj, xj = y + dy, x + dx
                            if not (0 <= yj < height and 0 <= xj < width):
                                continue
                            li, lj = label[b, y, x], label[b, yj, xj]
                            if li == IGNORE or lj == IGNORE:
                                continue
                            w = ref_kl(prob[b, :, y, x], prob[b, :, yj, xj], kl)
                            if conf is None:
                                om = 1.0
                            else:
                                vi, vj = conf[b, y, x], conf[b, yj, xj]
                                om = {"max": max(vi, vj), "min": min(vi, vj), "mean": (vi + vj) / 2}[weighting]
                            if li == lj and li != 0:
                                fg.append(om * w)
                            elif li == lj:
                                bg.append(om * w)
                            else:
                                neg.append(max(0.0, om * margin - w))
        mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
        total += mean(fg) + mean(bg) + 2.0 * mean(neg)
    return total


def ref_label_reassign(emb, label, weight, *, margin, gamma):
    """Eqs. 13-17 with loops over images, pixels and classes; differentiable w.r.t. emb."""
    bsz, dim, height, width = emb.shape
    bg_terms, fg_terms = [], []
    for b in range(bsz):
        pix = [(y, x) for y in range(height) for x in range(width) if int(label[b, y, x]) != IGNORE]
        classes = sorted({int(label[b, y, x]) for y, x in pix})
        if len(classes) < 2:
            continue
        cents = []
        for k in classes:  # eq. 13
            num, den = torch.zeros(dim, dtype=emb.dtype), 0.0
            for y, x in pix:
                if int(label[b, y, x]) == k:
                    num = num + float(weight[b, y, x]) * emb[b, :, y, x]
                    den += float(weight[b, y, x])
            cents.append(num / den)
        for y, x in pix:
            e = emb[b, :, y, x]
            s = [torch.dot(e, c) / (e.norm() * c.norm()) for c in cents]
            order = sorted(range(len(classes)), key=lambda t: -s[t].item())
            a, second = order[0], order[1]
            sa, sb = s[a].item(), s[second].item()
            ratio = (sa - sb) / (sa + sb) if sa + sb > 1e-8 else 0.0
            ratio = min(max(ratio, 0.0), 1.0)
            alpha = (1.0 - ratio) ** gamma  # a plain float: no gradient
            hinge = sum(torch.relu(margin + s[k] - s[a]) for k in range(len(classes)) if k != a)
            (bg_terms if int(label[b, y, x]) == 0 else fg_terms).append(alpha * hinge)
    zero = (emb * 0).sum()
    lm = sum(bg_terms) / len(bg_terms) if bg_terms else zero
    lp = sum(fg_terms) / len(fg_terms) if fg_terms else zero
    return lm + lp


# ============================================================================ inputs
def random_inputs(shape, *, seed, n_labels=3, p_ignore=0.25, logit_scale=2.0):
    """prob (softmax of random logits), labels with some ignored pixels, confidences."""
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = shape
    logits = torch.randn(b, c, h, w, generator=g, dtype=DT) * logit_scale
    label = torch.randint(0, n_labels, (b, h, w), generator=g)
    label[torch.rand(b, h, w, generator=g) < p_ignore] = IGNORE
    conf = torch.rand(b, h, w, generator=g, dtype=DT)
    return logits, label, conf


# ============================================================================ AA / SA
@pytest.mark.parametrize("weighting", ["max", "min", "mean"])
@pytest.mark.parametrize("kl", ["binary", "categorical"])
@pytest.mark.parametrize("adaptive", [False, True])
def test_affinity_matches_loop_reference(weighting, kl, adaptive):
    # d = 8 is larger than H = 7 but not W = 9 (horizontal pairs only); d = 12 has no pair.
    logits, label, conf = random_inputs((2, 3, 7, 9), seed=1)
    prob = logits.softmax(1)
    kwargs = dict(dilations=(1, 2, 8, 12), margin=3.0, weighting=weighting, kl=kl,
                  confidence=conf if adaptive else None)
    got = affinity_loss(prob, label, **kwargs)
    want = ref_affinity(prob, label, **kwargs)
    assert got.dim() == 0
    assert got.item() == pytest.approx(want, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(
    "shape, seed, n_labels, p_ignore, scale, dilations",
    [
        ((1, 4, 5, 5), 2, 4, 0.1, 6.0, (1, 4)),  # large logits: the 1e-4 clamps are active
        ((3, 2, 6, 4), 3, 2, 0.5, 1.0, (2, 3, 5)),  # many ignored pixels
        ((2, 5, 4, 8), 4, 5, 0.0, 3.0, (1, 3, 7)),  # no ignored pixel, d = 7 only horizontal
        ((2, 3, 1, 6), 5, 3, 0.2, 2.0, (1, 2)),  # one-row image
    ],
)
def test_affinity_reference_other_shapes(shape, seed, n_labels, p_ignore, scale, dilations):
    logits, label, conf = random_inputs(shape, seed=seed, n_labels=n_labels, p_ignore=p_ignore,
                                        logit_scale=scale)
    prob = logits.softmax(1)
    for kl in ("binary", "categorical"):
        for confidence in (None, conf):
            kwargs = dict(dilations=dilations, margin=2.0, weighting="max", kl=kl, confidence=confidence)
            got = affinity_loss(prob, label, **kwargs).item()
            assert got == pytest.approx(ref_affinity(prob, label, **kwargs), rel=1e-10, abs=1e-12)


def test_affinity_pairs_are_pooled_over_the_batch():
    # Image 0 has few valid pairs, image 1 many: a per-image mean would differ from the pooled one.
    logits, label, conf = random_inputs((2, 3, 6, 6), seed=6, p_ignore=0.0)
    label[0, :, 2:] = IGNORE
    prob = logits.softmax(1)
    kwargs = dict(dilations=(1,), margin=3.0, weighting="max", kl="binary")
    pooled = affinity_loss(prob, label, confidence=conf, **kwargs).item()
    assert pooled == pytest.approx(ref_affinity(prob, label, confidence=conf, **kwargs), rel=1e-10)
    per_image = 0.5 * sum(
        affinity_loss(prob[i:i + 1], label[i:i + 1], confidence=conf[i:i + 1], **kwargs).item()
        for i in range(2)
    )
    assert abs(pooled - per_image) > 1e-6


def test_affinity_is_sum_of_single_kernels():
    logits, label, conf = random_inputs((2, 3, 7, 9), seed=7)
    prob = logits.softmax(1)
    total = affinity_loss(prob, label, dilations=(1, 3), confidence=conf)
    parts = sum(single_kernel_affinity(prob, label, d, confidence=conf) for d in (1, 3))
    assert total.item() == pytest.approx(parts.item(), rel=1e-12)


def test_sa_equals_aa_with_unit_confidence():
    logits, label, _ = random_inputs((2, 3, 7, 9), seed=8)
    prob = logits.softmax(1)
    ones = torch.ones(label.shape, dtype=DT)
    sa = affinity_loss(prob, label, dilations=(1, 2), confidence=None)
    for weighting in ("max", "min", "mean"):
        aa = affinity_loss(prob, label, dilations=(1, 2), confidence=ones, weighting=weighting)
        assert aa.item() == pytest.approx(sa.item(), rel=1e-12)


@pytest.mark.parametrize(
    "case",
    ["all_ignore", "one_class", "all_background", "dilation_too_big", "one_pixel", "one_hot_prob"],
)
def test_affinity_degenerate_inputs_are_finite(case):
    logits, label, conf = random_inputs((2, 3, 5, 6), seed=9)
    dilations = (1, 2)
    if case == "all_ignore":
        label[:] = IGNORE
    elif case == "one_class":
        label[label != IGNORE] = 2
    elif case == "all_background":
        label[:] = 0
    elif case == "dilation_too_big":
        dilations = (6, 24)
    elif case == "one_pixel":
        logits, label, conf = logits[:, :, :1, :1], label[:, :1, :1], conf[:, :1, :1]
    elif case == "one_hot_prob":
        logits = F.one_hot(logits.argmax(1), 3).permute(0, 3, 1, 2).to(DT) * 1e3
    logits = logits.clone().requires_grad_(True)
    for confidence in (None, conf):
        for kl in ("binary", "categorical"):
            prob = logits.softmax(1)
            loss = affinity_loss(prob, label, dilations=dilations, confidence=confidence, kl=kl)
            assert loss.dim() == 0 and torch.isfinite(loss)
            want = ref_affinity(prob, label, dilations=dilations, margin=3.0, confidence=confidence,
                                weighting="max", kl=kl)
            assert loss.item() == pytest.approx(want, rel=1e-10, abs=1e-12)
            (grad,) = torch.autograd.grad(loss, logits)
            assert torch.isfinite(grad).all()
            if case in ("all_ignore", "dilation_too_big", "one_pixel"):
                assert loss.item() == 0.0 and not grad.any()


def test_affinity_gradcheck():
    # Small logits keep p away from the 1e-4 clamp; with V >= 0.5 and m = 3, Omega m >= 1.5 is
    # far above every W here, so the hinge is active everywhere (no kink nearby).
    g = torch.Generator().manual_seed(10)
    logits = (0.5 * torch.randn(2, 3, 4, 5, generator=g, dtype=DT)).requires_grad_(True)
    label = torch.randint(0, 3, (2, 4, 5), generator=g)
    label[0, 0, :2] = IGNORE
    conf = 0.5 + 0.5 * torch.rand(2, 4, 5, generator=g, dtype=DT)
    for confidence, kl, weighting in [(None, "binary", "max"), (conf, "binary", "max"),
                                      (conf, "categorical", "mean"), (conf, "binary", "min")]:
        def f(z: torch.Tensor) -> torch.Tensor:
            return affinity_loss(z.softmax(1), label, dilations=(1, 2), confidence=confidence,
                                 weighting=weighting, kl=kl)
        assert torch.autograd.gradcheck(f, (logits,), eps=1e-6, atol=1e-7, rtol=1e-5)
    # margin 0: the hinge is inactive (W > 0), only the attraction terms carry gradient.
    assert torch.autograd.gradcheck(
        lambda z: affinity_loss(z.softmax(1), label, dilations=(1,), margin=0.0), (logits,), atol=1e-7
    )


def test_affinity_confidence_gets_no_gradient():
    logits, label, conf = random_inputs((1, 3, 5, 5), seed=11)
    conf = conf.clone().requires_grad_(True)
    logits.requires_grad_(True)
    affinity_loss(logits.softmax(1), label, dilations=(1,), confidence=conf).backward()
    assert conf.grad is None and logits.grad is not None


def test_affinity_float32_matches_float64():
    logits, label, conf = random_inputs((2, 4, 6, 7), seed=12)
    prob = logits.softmax(1)
    a = affinity_loss(prob, label, dilations=(1, 2), confidence=conf)
    b = affinity_loss(prob.float(), label, dilations=(1, 2), confidence=conf.float())
    assert b.dtype == torch.float32
    assert b.item() == pytest.approx(a.item(), rel=1e-4)


def test_affinity_rejects_bad_arguments():
    logits, label, conf = random_inputs((1, 3, 4, 4), seed=13)
    prob = logits.softmax(1)
    with pytest.raises(ValueError, match="weighting"):
        affinity_loss(prob, label, confidence=conf, weighting="median")
    with pytest.raises(ValueError, match="kl"):
        affinity_loss(prob, label, kl="js")
    with pytest.raises(ValueError, match="label shape"):
        affinity_loss(prob, label[:, :3])
    with pytest.raises(ValueError, match="confidence shape"):
        affinity_loss(prob, label, confidence=conf[:, :3])
    with pytest.raises(ValueError, match="dilation"):
        affinity_loss(prob, label, dilations=(0,))


def test_pairwise_kl_and_connection_weight():
    p = torch.tensor([[0.7, 0.2, 0.1]], dtype=DT)
    q = torch.tensor([[0.1, 0.3, 0.6]], dtype=DT)
    for kl in ("binary", "categorical"):
        assert pairwise_kl(p, q, kl).item() == pytest.approx(ref_kl(p[0].numpy(), q[0].numpy(), kl))
        assert pairwise_kl(p, p, kl).item() == pytest.approx(0.0, abs=1e-15)
    v_i, v_j = torch.tensor([0.2, 0.9]), torch.tensor([0.6, 0.1])
    assert connection_weight(v_i, v_j, "max").tolist() == pytest.approx([0.6, 0.9])
    assert connection_weight(v_i, v_j, "min").tolist() == pytest.approx([0.2, 0.1])
    assert connection_weight(v_i, v_j, "mean").tolist() == pytest.approx([0.4, 0.5])
    assert sorted(neighbour_offsets(2)) == sorted(
        [(-2, -2), (-2, 0), (-2, 2), (0, -2), (0, 2), (2, -2), (2, 0), (2, 2)]
    )


# ============================================================================ LR
def lr_inputs(shape, *, seed, n_labels=3, p_ignore=0.2):
    g = torch.Generator().manual_seed(seed)
    b, d, h, w = shape
    emb = torch.randn(b, d, h, w, generator=g, dtype=DT)
    label = torch.randint(0, n_labels, (b, h, w), generator=g)
    label[torch.rand(b, h, w, generator=g) < p_ignore] = IGNORE
    weight = 0.1 + 0.9 * torch.rand(b, h, w, generator=g, dtype=DT)
    return emb, label, weight


@pytest.mark.parametrize("gamma", [0.0, 2.0, 0.5])
@pytest.mark.parametrize(
    "shape, seed, n_labels, margin",
    [((2, 3, 7, 9), 20, 3, 1.0), ((3, 5, 4, 5), 21, 4, 0.5), ((1, 2, 6, 6), 22, 2, 1.0)],
)
def test_label_reassign_matches_loop_reference(gamma, shape, seed, n_labels, margin):
    emb, label, weight = lr_inputs(shape, seed=seed, n_labels=n_labels)
    emb_a = emb.clone().requires_grad_(True)
    emb_b = emb.clone().requires_grad_(True)
    got = label_reassign_loss(emb_a, label, weight, margin=margin, gamma=gamma)
    want = ref_label_reassign(emb_b, label, weight, margin=margin, gamma=gamma)
    assert got.dim() == 0
    assert got.item() == pytest.approx(want.item(), rel=1e-10)
    # Same gradient as the reference, in which alpha is a constant (eq. 16 has no gradient).
    (ga,) = torch.autograd.grad(got, emb_a)
    (gb,) = torch.autograd.grad(want, emb_b)
    torch.testing.assert_close(ga, gb, rtol=1e-9, atol=1e-12)


def test_label_reassign_skips_images_with_fewer_than_two_classes():
    emb, label, weight = lr_inputs((3, 4, 5, 6), seed=23)
    label[0][label[0] != IGNORE] = 1  # one class only
    label[2][:] = IGNORE  # nothing labelled
    full = label_reassign_loss(emb, label, weight)
    alone = label_reassign_loss(emb[1:2], label[1:2], weight[1:2])
    assert full.item() == pytest.approx(alone.item(), rel=1e-12)  # skipped pixels are not counted
    assert full.item() == pytest.approx(
        ref_label_reassign(emb, label, weight, margin=1.0, gamma=2.0).item(), rel=1e-10
    )


def test_label_reassign_pools_bg_and_fg_over_the_batch():
    emb, label, weight = lr_inputs((2, 4, 5, 6), seed=24)
    label[0, :4] = IGNORE  # few pixels in image 0, many in image 1
    pooled = label_reassign_loss(emb, label, weight).item()
    per_image = 0.5 * sum(label_reassign_loss(emb[i:i + 1], label[i:i + 1], weight[i:i + 1]).item()
                          for i in range(2))
    assert pooled == pytest.approx(ref_label_reassign(emb, label, weight, margin=1.0, gamma=2.0).item())
    assert abs(pooled - per_image) > 1e-6


def test_label_reassign_gradcheck():
    emb, label, weight = lr_inputs((2, 3, 4, 5), seed=25)
    emb.requires_grad_(True)
    # gamma = 0: alpha = 1 and the loss is a smooth function of emb away from ties and hinge
    # kinks, so finite differences must agree with autograd.
    assert torch.autograd.gradcheck(
        lambda e: label_reassign_loss(e, label, weight, gamma=0.0), (emb,), eps=1e-6, atol=1e-7
    )
    # gamma = 2 is not gradcheck-able (alpha depends on emb but carries no gradient on
    # purpose); test_label_reassign_matches_loop_reference compares its gradient with the
    # reference's, in which alpha is a plain float.


def test_label_reassign_weight_gets_no_gradient():
    emb, label, weight = lr_inputs((2, 3, 4, 5), seed=26)
    emb.requires_grad_(True)
    weight.requires_grad_(True)
    label_reassign_loss(emb, label, weight).backward()
    assert weight.grad is None and emb.grad is not None


@pytest.mark.parametrize(
    "case", ["all_ignore", "one_class", "zero_embedding", "some_zero_pixels", "zero_weight", "identical"]
)
def test_label_reassign_degenerate_inputs_are_finite(case):
    emb, label, weight = lr_inputs((2, 4, 4, 5), seed=27)
    if case == "all_ignore":
        label[:] = IGNORE
    elif case == "one_class":
        label[label != IGNORE] = 0
    elif case == "zero_embedding":
        emb = torch.zeros_like(emb)
    elif case == "some_zero_pixels":
        emb[:, :, 0, :] = 0.0
    elif case == "zero_weight":
        weight[label == 1] = 0.0
    elif case == "identical":
        emb = emb[:, :, :1, :1].expand_as(emb).clone()
    emb.requires_grad_(True)
    loss = label_reassign_loss(emb, label, weight)
    assert loss.dim() == 0 and torch.isfinite(loss)
    (grad,) = torch.autograd.grad(loss, emb)
    assert torch.isfinite(grad).all()
    if case in ("all_ignore", "one_class"):
        assert loss.item() == 0.0
    if case in ("zero_embedding", "identical"):
        # All similarities equal: ratio 0, alpha 1, l_i = (|K| - 1) * n for every pixel.
        k = [len(set(label[b][label[b] != IGNORE].tolist())) for b in range(2)]
        assert k[0] == k[1] == 3
        assert loss.item() == pytest.approx(2 * 2.0)


def test_lr_building_blocks():
    emb = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]], dtype=DT)
    members = torch.tensor([[True, False], [True, False], [False, True]])
    weight = torch.tensor([1.0, 3.0, 0.5], dtype=DT)
    cents = class_centroids(emb, members, weight)
    torch.testing.assert_close(cents, torch.tensor([[2.5, 0.0], [0.0, 2.0]], dtype=DT))
    # ordinary; s_a + s_b = 0 (ratio 0); both 0; a tie; ratio 9 clamped to 1.
    s_a = torch.tensor([0.9, 0.5, 0.0, 0.3, 0.5], dtype=DT)
    s_b = torch.tensor([0.1, -0.5, 0.0, 0.3, -0.4], dtype=DT)
    alpha = modulation_factor(s_a, s_b, gamma=2.0)
    assert alpha.tolist() == pytest.approx([(1 - 0.8 / 1.0) ** 2, 1.0, 1.0, 1.0, 0.0])
    assert modulation_factor(s_a, s_b, gamma=0.0).tolist() == [1.0] * 5
    sim = torch.tensor([[0.9, 0.5, -0.2]], dtype=DT)
    terms = reassign_margin_terms(sim, torch.tensor([0]), margin=1.0)
    assert terms.item() == pytest.approx(max(0.0, 1 + 0.5 - 0.9) + max(0.0, 1 - 0.2 - 0.9))  # 0.6 + 0


def test_label_reassign_rejects_bad_shapes():
    emb, label, weight = lr_inputs((1, 3, 4, 4), seed=28)
    with pytest.raises(ValueError, match="label shape"):
        label_reassign_loss(emb, label[:, :2], weight)
    with pytest.raises(ValueError, match="weight shape"):
        label_reassign_loss(emb, label, weight[:, :2])


# ============================================================================ baseline terms
def test_classification_loss_matches_torch():
    g = torch.Generator().manual_seed(30)
    logits = torch.randn(4, 20, generator=g, dtype=DT)
    labels = (torch.rand(4, 20, generator=g) < 0.2).to(DT)
    got = classification_loss(logits, labels)
    assert got.dim() == 0
    assert got.item() == pytest.approx(F.multilabel_soft_margin_loss(logits, labels).item(), rel=1e-12)


def test_joint_ce_matches_hand_computation():
    g = torch.Generator().manual_seed(31)
    logits = torch.randn(2, 4, 3, 5, generator=g, dtype=DT)
    label = torch.randint(0, 4, (2, 3, 5), generator=g)
    label[0, 0, :3] = IGNORE
    bg, fg = [], []
    for b in range(2):
        for y in range(3):
            for x in range(5):
                lab = int(label[b, y, x])
                if lab == IGNORE:
                    continue
                z = logits[b, :, y, x].tolist()
                ce = -(z[lab] - math.log(sum(math.exp(v) for v in z)))
                (bg if lab == 0 else fg).append(ce)
    want = sum(bg) / len(bg) + sum(fg) / len(fg)
    assert joint_ce_loss(logits, label).item() == pytest.approx(want, rel=1e-12)


def test_joint_ce_empty_parts():
    g = torch.Generator().manual_seed(32)
    logits = torch.randn(1, 3, 2, 2, generator=g, dtype=DT, requires_grad=True)
    only_bg = torch.zeros(1, 2, 2, dtype=torch.long)
    want = F.cross_entropy(logits, only_bg)  # the object part is empty and adds 0
    assert joint_ce_loss(logits, only_bg).item() == pytest.approx(want.item(), rel=1e-12)
    none = torch.full((1, 2, 2), IGNORE, dtype=torch.long)
    loss = joint_ce_loss(logits, none)
    assert loss.dim() == 0 and loss.item() == 0.0
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(grad).all()
