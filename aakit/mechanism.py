"""Whether a mechanism acts: what AA changes against SA, and what LR's gamma changes (issue 28).

Two objectives can only be told apart by training when their gradients differ. This module
measures that on one batch, with a network and its pseudo labels, and trains nothing.
:func:`measure_mechanism` works on any config, trained or not (``aakit grid --preflight`` can
call it at a grid's shared starting point); a run records it at each evaluation
(:class:`aakit.engine.hooks.MechanismHook`, ``eval.mechanism``) on a fixed probe batch
(:func:`probe_batch`: the first ``eval.mechanism_images`` training images, centre crop, no
augmentation). Gradients are taken w.r.t. the segmentation logits F^c (the affinity loss's
input, through its softmax) and, for LR, w.r.t. the embedding F^s; every term keeps its weight
(lambda1, lambda2). The keys of the record:

    aa_vs_sa_grad_share    |g_AA - g_SA| / |g_total| on F^c: AA at the run's settings (V source,
                           Omega's function loss.weighting, margin, dilations, KL), SA the same
                           loss with Omega = 1, g_total the gradient of the run's whole objective
                           with every term on (as in its last epoch)
    aa_vs_sa_grad_cos      cos(g_AA, g_SA)
    aa_grad_share          |g_AA| / |g_total|: how much of the gradient the affinity term is at all
    omega_mean             mean Omega over the labelled pairs
    omega_right, omega_wrong   mean Omega on the pairs whose pseudo same/different relation agrees /
                           disagrees with the masks' (pairs with a 255 in the mask left out);
                           pairs_right, pairs_wrong count them
    repel_pairs            different-label pairs (the repulsion term's); of them
    repel_active           the share with W < Omega m (active in AA; its gradient is -1 in both losses)
    repel_in_gap           the share with Omega m <= W < m: active in SA only, where AA and SA differ
    lr_alpha_median, lr_alpha_q10, lr_alpha_q90   eq. 16's factor at the run's gamma, LR's pixels
    lr_gamma_vs_0_cos      cos(g_LR(gamma), g_LR(0)) on F^s: 1 means gamma only rescales LR ...
    lr_gamma_vs_0_norm_ratio   ... by |g_LR(gamma)| / |g_LR(0)|
    lr_pixels, lr_reassigned   the pixels LR sees, and the share whose nearest centroid is another
                           class than their pseudo label
    lr_right_to_wrong, lr_wrong_to_right   pixels whose label is right and nearest centroid wrong,
                           and the reverse (counts; pixels with a 255 in the mask left out)

Every run records every key, whatever its objective: an SA run records what AA *would* change at
its state, a run without LR what LR would. A quantity that cannot be computed is None, never 0,
and ``reasons`` says why (``{"omega_wrong": "no mask"}``).

Measuring a config at its starting point, nothing trained::

    model = build_model(dataclasses.replace(cfg.model, pretrained=None))
    load_initial_weights(model, cfg.model.pretrained, like=cfg)        # aakit.engine.train
    labeler = make_labeler(cfg, workers=0)                              # aakit.method.targets
    probe = probe_batch(_build_data(cfg).train, cfg.eval.mechanism_images)
    record = measure_mechanism(model, probe, cfg, labeler, torch.device("cpu"))
    labeler.close()
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from aakit.config import Config
from aakit.engine.batches import collate
from aakit.labels import IGNORE_INDEX
import aakit.method.losses as losses
from aakit.method.objective import AffinityLoss, LabelReassignLoss, LossInputs, build_objective
from aakit.method.targets import request_targets, uses_oracle

#: Quantiles of eq. 16's factor that the record keeps.
ALPHA_QUANTILES = {"lr_alpha_q10": 0.1, "lr_alpha_median": 0.5, "lr_alpha_q90": 0.9}


class Record:
    """The values of a mechanism record and, for each that is None, the reason."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.reasons: dict[str, str] = {}

    def put(self, key: str, value: Any, reason: str | None = None) -> None:
        """``value``, or None with ``reason`` when it is None."""
        self.values[key] = value
        if value is None:
            self.reasons[key] = reason or "not computable"

    def absent(self, keys: Any, reason: str) -> None:
        for k in keys:
            self.put(k, None, reason)

    def as_dict(self) -> dict[str, Any]:
        return {**self.values, "reasons": dict(self.reasons)}


# ----------------------------------------------------------------------------- vectors
def gradient_of(loss: Tensor, wrt: Tensor) -> Tensor:
    """d loss / d wrt (zeros where ``loss`` does not depend on it); the graph is kept."""
    if not loss.requires_grad:
        return torch.zeros_like(wrt)
    (g,) = torch.autograd.grad(loss, wrt, retain_graph=True, allow_unused=True)
    return torch.zeros_like(wrt) if g is None else g


def norm_ratio(a: Tensor, b: Tensor) -> float | None:
    """|a| / |b|, None when b is zero."""
    nb = float(b.double().norm())
    return float(a.double().norm()) / nb if nb > losses.NORM_EPS else None


def cosine(a: Tensor, b: Tensor) -> float | None:
    """cos(a, b) of the flattened tensors, None when either is zero."""
    a, b = a.double().flatten(), b.double().flatten()
    na, nb = float(a.norm()), float(b.norm())
    if na <= losses.NORM_EPS or nb <= losses.NORM_EPS:
        return None
    return float(a @ b) / (na * nb)


# ----------------------------------------------------------------------------- AA against SA
def affinity_pair_counts(prob: Tensor, label: Tensor, confidence: Tensor, truth: Tensor | None, *,
                         dilations: tuple[int, ...], margin: float, weighting: losses.Weighting,
                         kl: losses.KLKind = "binary", ignore_index: int = IGNORE_INDEX) -> dict[str, float]:
    """Sums and counts over the pairs of the affinity loss (eqs. 4, 7, 10), as
    :func:`aakit.method.losses.single_kernel_affinity` forms them: every dilation, every offset, both
    orders of a pair, pairs with an ignored label dropped.

    Args:
        prob: (B, C, h, w) softmax F^c; label, confidence: (B, h, w) pseudo labels and V at stride;
        truth: (B, h, w) ground truth at stride (255 = unknown), or None.
        dilations, margin, weighting, kl: the AA loss's settings.

    Returns:
        ``pairs``, ``omega_sum``; ``right``, ``wrong``, ``omega_right_sum``, ``omega_wrong_sum``
        (0 without ``truth``); ``repel``, ``repel_active`` (W < Omega m), ``repel_in_gap``
        (Omega m <= W < m).
    """
    mass, log_mass, self_term = losses.kl_parts(prob.detach().float(), kl)
    conf = confidence.detach().float()
    keys = ("pairs", "omega_sum", "right", "wrong", "omega_right_sum", "omega_wrong_sum", "repel", "repel_active",
            "repel_in_gap")
    acc = dict.fromkeys(keys, 0.0)
    height, width = label.shape[-2:]
    for d in dilations:
        for dy, dx in losses.neighbour_offsets(int(d)):
            pair = losses._pair_slices(height, width, dy, dx)
            if pair is None:
                continue
            (ri, ci), (rj, cj) = pair
            lab_i, lab_j = label[:, ri, ci], label[:, rj, cj]
            valid = (lab_i != ignore_index) & (lab_j != ignore_index)
            neg = valid & (lab_i != lab_j)
            w_ij = self_term[:, ri, ci] - (mass[:, :, ri, ci] * log_mass[:, :, rj, cj]).sum(dim=1)
            omega = losses.connection_weight(conf[:, ri, ci], conf[:, rj, cj], weighting)
            acc["pairs"] += float(valid.sum())
            acc["omega_sum"] += float(omega[valid].sum())
            acc["repel"] += float(neg.sum())
            acc["repel_active"] += float((neg & (w_ij < omega * margin)).sum())
            acc["repel_in_gap"] += float((neg & (w_ij >= omega * margin) & (w_ij < margin)).sum())
            if truth is not None:
                t_i, t_j = truth[:, ri, ci], truth[:, rj, cj]
                known = valid & (t_i != ignore_index) & (t_j != ignore_index)
                right = known & ((lab_i == lab_j) == (t_i == t_j))
                wrong = known & ~right
                acc["right"] += float(right.sum())
                acc["wrong"] += float(wrong.sum())
                acc["omega_right_sum"] += float(omega[right].sum())
                acc["omega_wrong_sum"] += float(omega[wrong].sum())
    return acc


def pair_records(rec: Record, counts: dict[str, float], truth_reason: str | None) -> None:
    """Omega's means and the repulsion shares from :func:`affinity_pair_counts`, into ``rec``."""
    def share(num: float, den: float) -> float | None:
        return num / den if den > 0 else None

    rec.put("omega_mean", share(counts["omega_sum"], counts["pairs"]), "no labelled pair in the probe batch")
    for side in ("right", "wrong"):
        n = counts[side]
        rec.put(f"pairs_{side}", None if truth_reason else int(n), truth_reason)
        reason = truth_reason or f"no {side} pair (same/different relation against the masks) in the probe batch"
        rec.put(f"omega_{side}", None if truth_reason else share(counts[f"omega_{side}_sum"], n), reason)
    rec.put("repel_pairs", int(counts["repel"]))
    for key in ("repel_active", "repel_in_gap"):
        rec.put(key, share(counts[key], counts["repel"]), "no repulsion pair (different labels) in the probe batch")


# ----------------------------------------------------------------------------- LR
def reassignment_counts(embedding: Tensor, label: Tensor, weight: Tensor, truth: Tensor | None, *,
                        gamma: float, ignore_index: int = IGNORE_INDEX,
                        reading: losses.LRReading = "similarity") -> dict[str, Any]:
    """What LR does per pixel (eqs. 13-16, as :func:`aakit.method.losses.label_reassign_loss`): the
    modulation factors of its pixels, and which pixels' nearest centroid is not their label.

    Returns:
        ``alpha`` (N,) factors of the pixels of the images with >= 2 classes; ``pixels``,
        ``reassigned``; with ``truth``, ``right_to_wrong`` (label right, nearest centroid
        wrong) and ``wrong_to_right`` (pixels whose mask is 255 left out), else None.
    """
    emb_all = embedding.detach().float()
    alphas: list[Tensor] = []
    out: dict[str, Any] = {"pixels": 0, "reassigned": 0, "right_to_wrong": 0, "wrong_to_right": 0}
    for b in range(emb_all.shape[0]):
        lab = label[b].reshape(-1)
        keep = lab != ignore_index
        classes = torch.unique(lab[keep])
        if classes.numel() < 2:
            continue
        lab = lab[keep]
        emb = emb_all[b].reshape(emb_all.shape[1], -1).t()[keep]
        members = lab.unsqueeze(1) == classes.unsqueeze(0)
        sim = losses.cosine_to_centroids(emb, losses.class_centroids(emb, members, weight[b].reshape(-1)[keep]))
        top = sim.topk(2, dim=1)
        alphas.append(losses.modulation_factor(top.values[:, 0], top.values[:, 1], gamma, reading))
        nearest = classes[top.indices[:, 0]]
        out["pixels"] += int(lab.numel())
        out["reassigned"] += int((nearest != lab).sum())
        if truth is not None:
            gt = truth[b].reshape(-1)[keep]
            known = gt != ignore_index
            out["right_to_wrong"] += int((known & (lab == gt) & (nearest != gt)).sum())
            out["wrong_to_right"] += int((known & (lab != gt) & (nearest == gt)).sum())
    if truth is None:
        out["right_to_wrong"] = out["wrong_to_right"] = None
    out["alpha"] = torch.cat(alphas) if alphas else torch.zeros(0)
    return out


def reassign_records(rec: Record, counts: dict[str, Any], truth_reason: str | None) -> None:
    """eq. 16's quantiles and the reassignment counts from :func:`reassignment_counts`, into ``rec``."""
    alpha, none = counts["alpha"], "no probe image with two labelled classes (LR skips such images)"
    for key, q in ALPHA_QUANTILES.items():
        rec.put(key, float(torch.quantile(alpha.double(), q)) if alpha.numel() else None, none)
    rec.put("lr_pixels", counts["pixels"])
    rec.put("lr_reassigned", counts["reassigned"] / counts["pixels"] if counts["pixels"] else None, none)
    for key in ("right_to_wrong", "wrong_to_right"):
        rec.put(f"lr_{key}", counts[key], truth_reason or "no mask")


# ----------------------------------------------------------------------------- the probe
def probe_batch(dataset: Any, images: int) -> dict[str, Any]:
    """The fixed probe: the first ``images`` items of a :class:`aakit.data.voc.TrainDataset`,
    centre-cropped without augmentation (:meth:`~aakit.data.voc.TrainDataset.probe`), as a batch.
    ``mask`` is in it when an image has one; an image without is all 255 (unknown) there."""
    items = [dataset.probe(i) for i in range(min(images, len(dataset)))]
    if any("mask" in it for it in items):
        for it in items:
            it.setdefault("mask", torch.full(it["valid"].shape, IGNORE_INDEX, dtype=torch.int64))
    return collate(items)


def _targets(model: torch.nn.Module, batch: dict[str, Any], cfg: Config, labeler: Any,
             device: torch.device) -> tuple[LossInputs, Config, str | None]:
    """The network's outputs on the batch (no grad; F^c and F^s as leaves that take gradients)
    and the pseudo labels with V, as a training step makes them. Returns the inputs, the config
    whose V they carry, and why AA's V is not the run's (oracle without masks), else None."""
    aa_reason = None
    if uses_oracle(_variant(cfg, affinity="aa")) and "mask" not in batch:  # V from the CRF: LR still measures
        aa_reason = "loss.aa_confidence = oracle needs masks; the probe images have none"
        cfg = _variant(cfg, aa_confidence="crf")
    images = batch["image"].to(device)
    with torch.no_grad():
        out = dict(model(images))
        # V as AA takes it (an SA run too: what AA would change), so ask for AA's targets
        pending = request_targets(model, batch, out, images, _variant(cfg, affinity="aa"), labeler, device)
        labels, conf = pending.result()
    for key in ("seg_logits", "embedding"):
        out[key] = out[key].detach().float().requires_grad_(True)
    x = LossInputs(out, batch["labels"].to(device), (images.shape[-2], images.shape[-1]))
    x.labels, x.confidence = labels.to(device), conf.to(device)
    return x, cfg, aa_reason


def outputs_and_targets(model: torch.nn.Module, batch: dict[str, Any], cfg: Config, labeler: Any,
                        device: torch.device) -> tuple[LossInputs, Config, str | None]:
    """What every term of ``cfg``'s objective reads on ``batch`` (as :func:`_targets`), for a
    measurement beside this module's: ``aakit grid --preflight`` differentiates whole objectives
    with it (:func:`aakit.engine.startpoint.objective_gradient`). The network in eval mode."""
    return _targets(model, batch, cfg, labeler, device)


def _variant(cfg: Config, **loss: Any) -> Config:
    return dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, **loss))


def gradient_records(rec: Record, x: LossInputs, cfg: Config, aa_reason: str | None) -> None:
    """The gradient comparisons: AA against SA on F^c, LR at gamma against gamma 0 on F^s.

    g_total is the run's objective, every term on: the terms other than the affinity term
    differentiated together, plus the run's own affinity term, which is AA or SA as measured here
    (the same settings), so that neither is computed twice."""
    seg, emb = x.out["seg_logits"], x.out["embedding"]
    terms = build_objective(cfg).terms
    values = {t.loss_name: t(x) for t in terms if not isinstance(t, AffinityLoss)}
    g_total = gradient_of(sum(values.values(), seg.sum() * 0.0), seg)
    aa_keys = ("aa_vs_sa_grad_share", "aa_vs_sa_grad_cos", "aa_grad_share")
    if aa_reason:
        rec.absent(aa_keys, aa_reason)
    else:
        aa, sa = (AffinityLoss.from_config(_variant(cfg, affinity=kind)) for kind in ("aa", "sa"))
        g_aa, g_sa = gradient_of(aa(x), seg), gradient_of(sa(x), seg)  # type: ignore[misc]
        for t in terms:
            if isinstance(t, AffinityLoss):
                g_total = g_total + (g_aa if t.adaptive else g_sa)
        flat = "the objective has no gradient on the segmentation logits"
        rec.put("aa_vs_sa_grad_share", norm_ratio(g_aa - g_sa, g_total), flat)
        rec.put("aa_vs_sa_grad_cos", cosine(g_aa, g_sa), "an affinity gradient is zero (lambda_aa 0, or no pair)")
        rec.put("aa_grad_share", norm_ratio(g_aa, g_total), flat)
    lr, lr0 = (LabelReassignLoss.from_config(_variant(cfg, label_reassign=True, gamma=g)) for g in (cfg.loss.gamma, 0.0))
    own = values.get(LabelReassignLoss.loss_name)  # the run's own LR term is LR at its gamma: reuse it
    g_lr = gradient_of(own if own is not None else lr(x), emb)  # type: ignore[misc]
    g_lr0 = gradient_of(lr0(x), emb)  # type: ignore[misc]
    zero = "LR has no gradient at gamma 0 (lambda_lr 0, or no image with two labelled classes)"
    rec.put("lr_gamma_vs_0_cos", cosine(g_lr, g_lr0), zero)
    rec.put("lr_gamma_vs_0_norm_ratio", norm_ratio(g_lr, g_lr0), zero)


def measure_mechanism(model: torch.nn.Module, batch: dict[str, Any], cfg: Config, labeler: Any,
                      device: torch.device) -> dict[str, Any]:
    """What AA changes against SA and what LR's gamma changes, at ``model``'s state, on ``batch``.

    Nothing is trained and nothing of the network, the optimiser or the random streams changes:
    the network runs in eval mode under no_grad (its mode is restored), gradients are taken
    w.r.t. detached copies of F^c and F^s (no parameter gets a ``.grad``), and the torch random
    state is forked (:func:`torch.random.fork_rng`).

    Args:
        model: the bare network (not DDP).
        batch: a collated batch with ``image``, ``raw``, ``valid``, ``labels`` and, where the
            data has them, ``mask`` (:func:`probe_batch`).
        cfg: the run's config: its objective, its V source and its Omega function.
        labeler: the run's :class:`aakit.method.pseudo.PseudoLabeler`
            (:func:`aakit.method.targets.make_labeler`); None with ``train.supervision: full``.
        device: where ``model`` is.

    Returns:
        The record (see the module's docstring): plain floats, ints and None, ``reasons`` for
        the None ones, ``settings`` (what AA and LR were measured with) and ``images``.
    """
    was = model.training
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model.eval()
        try:
            x, cfg_v, aa_reason = _targets(model, batch, cfg, labeler, device)
            rec = Record()
            with torch.enable_grad():
                gradient_records(rec, x, cfg_v, aa_reason)
            fill_counts(rec, x, cfg_v, batch, aa_reason)
        finally:
            model.train(was)
    L = cfg.loss
    settings = {"affinity": L.affinity, "aa_confidence": L.aa_confidence, "weighting": L.weighting,
                "margin_aa": L.margin_aa, "dilations": list(L.dilations), "lambda_aa": L.lambda_aa,
                "label_reassign": L.label_reassign, "gamma": L.gamma, "lambda_lr": L.lambda_lr,
                "lr_reading": L.lr_reading}
    return {"images": int(batch["image"].shape[0]), "settings": settings, **rec.as_dict()}


def fill_counts(rec: Record, x: LossInputs, cfg: Config, batch: dict[str, Any], aa_reason: str | None) -> None:
    """The pair and pixel counts of :func:`affinity_pair_counts` and :func:`reassignment_counts`."""
    from aakit.method.pseudo.rule import downsample_labels

    small, _ = x.at_stride
    truth, truth_reason = None, "no mask"
    if "mask" in batch:
        mask = batch["mask"].to(small.device)
        truth = downsample_labels(mask, mask, tuple(small.shape[-2:]))[0]
        truth_reason = None if bool((truth != IGNORE_INDEX).any()) else "no mask"
        truth = truth if truth_reason is None else None
    pair_keys = ("omega_mean", "pairs_right", "omega_right", "pairs_wrong", "omega_wrong", "repel_pairs",
                 "repel_active", "repel_in_gap")
    if aa_reason:
        rec.absent(pair_keys, aa_reason)
    else:
        aa = AffinityLoss.from_config(_variant(cfg, affinity="aa"))
        assert isinstance(aa, AffinityLoss)
        counts = affinity_pair_counts(x.seg_prob, small, aa.confidence(x), truth, dilations=aa.dilations,
                                      margin=aa.margin, weighting=aa.weighting, kl=aa.kl)
        pair_records(rec, counts, truth_reason)
    counts_lr = reassignment_counts(x.out["embedding"], small, LabelReassignLoss.weight(x), truth, gamma=cfg.loss.gamma,
                                   reading=cfg.loss.lr_reading)
    reassign_records(rec, counts_lr, truth_reason)
