"""The training objective: L_cls + L_ce + lambda1 L_AA + lambda2 L_LR (paper section 3).

Every paper equation lives in one small function named after it; ``METHOD.md`` section 3 fixes
every detail the paper leaves open. Summary:

* :func:`affinity_loss` (eqs. 1-12): pixel pairs at the 8 neighbours of a dilated 3x3 kernel,
  split by their pseudo labels into fg+ / bg+ / neg sets; same-label pairs are pulled together
  (small KL divergence ``W_ij``), different-label pairs pushed apart up to a margin. The adaptive
  version (AA) weights each pair by ``Omega_ij`` built from the pixels' confidences; without
  confidences it is the standard affinity (SA) loss.
* :func:`label_reassign_loss` (eqs. 13-17): a triplet-centre loss in the embedding space F^s that
  pulls each pixel towards its *nearest* class centroid (its reassigned label), focusing on
  pixels whose two nearest centroids are close (the likely erroneous labels).
* :func:`classification_loss` and :func:`joint_ce_loss`: RRM's baseline terms.

Memory: the affinity loss loops over the (dilation, offset) shifts in Python and computes each
shift on two overlapping views of the probability map, so at most a few tensors of the size of
``prob`` are alive per shift (plus what autograd saves). Nothing is stacked over the 8 * |K|
shifts. For B=2, C=21, 41x41 one such tensor is 2*21*1681*4 bytes = 0.28 MB in float32, so the
whole loss with 4 dilations keeps on the order of tens of MB for backward.
"""
from __future__ import annotations

from typing import Literal, TypedDict, Unpack

import torch
import torch.nn.functional as F
from torch import Tensor

from aakit.labels import IGNORE_INDEX

Weighting = Literal["max", "min", "mean"]
KLKind = Literal["binary", "categorical"]
LRReading = Literal["similarity", "distance"]  # eq. 16's D (modulation_factor)

#: Probabilities p and 1 - p are clamped to [PROB_EPS, 1] before the KL divergence (as AAF).
PROB_EPS = 1e-4
#: ratio of eq. 16 is 0 when s_a + s_b is not above this (METHOD.md section 3).
RATIO_EPS = 1e-8
#: A vector with a smaller norm has no direction: its cosine similarity is defined as 0.
NORM_EPS = 1e-12


# ============================================================================ helpers
def _zero_like_graph(t: Tensor) -> Tensor:
    """A 0-dim zero that stays connected to ``t``'s graph (so ``backward`` always works)."""
    return t.sum() * 0.0


def _float(t: Tensor) -> Tensor:
    """Half-precision inputs (AMP) are computed in float32: logs and cosines need the range."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def neighbour_offsets(dilation: int) -> list[tuple[int, int]]:
    """The 8 neighbours of a 3x3 kernel with the given dilation: {-d, 0, d}^2 minus (0, 0)."""
    d = int(dilation)
    return [(dy, dx) for dy in (-d, 0, d) for dx in (-d, 0, d) if (dy, dx) != (0, 0)]


def _pair_slices(
    height: int, width: int, dy: int, dx: int
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Views that pair pixel i = (y, x) with j = (y + dy, x + dx), both inside the image.

    Returns ``(slices_i, slices_j)`` over (H, W), or None when no pair fits (|offset| >= size).
    There is no padding: a pixel whose neighbour falls outside the image has no pair there.
    """
    h, w = height - abs(dy), width - abs(dx)
    if h <= 0 or w <= 0:
        return None
    rows_i = slice(max(0, -dy), max(0, -dy) + h)
    cols_i = slice(max(0, -dx), max(0, -dx) + w)
    rows_j = slice(max(0, dy), max(0, dy) + h)
    cols_j = slice(max(0, dx), max(0, dx) + w)
    return (rows_i, cols_i), (rows_j, cols_j)


# ============================================================================ AA / SA loss
def kl_parts(prob: Tensor, kl: KLKind = "binary") -> tuple[Tensor, Tensor, Tensor]:
    """Per-pixel pieces of eq. 4, computed once per map instead of once per pair.

    ``KL(i || j) = sum_c m_ic log m_ic - sum_c m_ic log m_jc`` where the "masses" m are the
    clamped class probabilities (categorical) or, for the binary form of AAF, the clamped
    probabilities followed by the clamped complements 1 - p (each class a Bernoulli variable).

    Args:
        prob: (B, C, ...) probabilities.
        kl: "binary" (AAF, default) or "categorical".

    Returns:
        ``(mass, log_mass, self_term)``: mass and its log (B, C', ...), C' = 2C or C, and
        ``self_term = sum_c m log m`` (B, ...).
    """
    if kl == "binary":
        mass = torch.cat([prob.clamp(PROB_EPS, 1.0), (1.0 - prob).clamp(PROB_EPS, 1.0)], dim=1)
    elif kl == "categorical":
        mass = prob.clamp(PROB_EPS, 1.0)
    else:
        raise ValueError(f"kl must be 'binary' or 'categorical', got {kl!r}")
    log_mass = mass.log()
    return mass, log_mass, (mass * log_mass).sum(dim=1)


def pairwise_kl(prob_i: Tensor, prob_j: Tensor, kl: KLKind = "binary") -> Tensor:
    """Eq. 4: connection strength ``W_ij = D_KL(F^c_i || F^c_j)``, summed over classes.

    ``kl="binary"``: ``sum_c p_ic log(p_ic/p_jc) + (1-p_ic) log((1-p_ic)/(1-p_jc))`` (AAF);
    ``kl="categorical"``: ``sum_c p_ic log(p_ic/p_jc)``. p and 1 - p are clamped to [1e-4, 1].

    Args:
        prob_i: (B, C, ...) probabilities of the first pixels.
        prob_j: probabilities of their partners, same shape.
        kl: which divergence.

    Returns:
        (B, ...) divergences.
    """
    mass_i, _, self_i = kl_parts(prob_i, kl)
    _, log_j, _ = kl_parts(prob_j, kl)
    return self_i - (mass_i * log_j).sum(dim=1)


def connection_weight(v_i: Tensor, v_j: Tensor, weighting: Weighting = "max") -> Tensor:
    """Eq. 7 (and the Table 3 variants): ``Omega_ij`` from the confidences of i and j.

    Args:
        v_i: confidences V of the first pixels, any shape.
        v_j: confidences of their partners, same shape.
        weighting: "max" (eq. 7), "min" or "mean".
    """
    if weighting == "max":
        return torch.maximum(v_i, v_j)
    if weighting == "min":
        return torch.minimum(v_i, v_j)
    if weighting == "mean":
        return 0.5 * (v_i + v_j)
    raise ValueError(f"weighting must be 'max', 'min' or 'mean', got {weighting!r}")


class KernelOptions(TypedDict, total=False):
    """The options of one affinity kernel, shared by :func:`single_kernel_affinity` and
    :func:`affinity_loss` (defaults: ``margin=3.0``, ``confidence=None``, ``weighting="max"``,
    ``ignore_index=IGNORE_INDEX``, ``kl="binary"``)."""

    margin: float
    confidence: Tensor | None
    weighting: Weighting
    ignore_index: int
    kl: KLKind


def single_kernel_affinity(prob: Tensor, label: Tensor, dilation: int, **options: Unpack[KernelOptions]) -> Tensor:
    """Eqs. 1-3 and 5 (SKSA, ``confidence=None``) or eqs. 8-10 and 11 (SKAA).

    ``L = mean_fg+(Omega W) + mean_bg+(Omega W) + 2 mean_neg(relu(Omega m - W))`` over the
    pairs of one dilated 3x3 kernel, pooled over the batch. Both orders of a pair count; a pair
    with an ignored pixel is dropped; an empty set adds 0. ``Omega = 1`` without confidences.

    Args:
        prob: (B, C, H, W) softmax probabilities.
        label: (B, H, W) pseudo labels, 0 = background, ``ignore_index`` = unlabelled.
        dilation: the kernel's dilation d (neighbours at offsets {-d, 0, d}^2).
        margin: m of eqs. 3/10.
        confidence: (B, H, W) V in [0, 1] (no gradient), or None for the standard loss.
        weighting: how Omega combines V_i and V_j (eq. 7, Table 3).
        ignore_index: label of unlabelled pixels.
        kl: divergence of eq. 4.

    Returns:
        0-dim loss.
    """
    margin, confidence = options.get("margin", 3.0), options.get("confidence")
    weighting, kl = options.get("weighting", "max"), options.get("kl", "binary")
    ignore_index = options.get("ignore_index", IGNORE_INDEX)
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")
    if weighting not in ("max", "min", "mean"):
        raise ValueError(f"weighting must be 'max', 'min' or 'mean', got {weighting!r}")
    height, width = label.shape[-2:]
    mass, log_mass, self_term = kl_parts(prob, kl)
    conf = confidence.detach() if confidence is not None else None

    # Running sums and pair counts of the three sets, pooled over offsets and the batch.
    # Counts stay tensors: no host-device synchronisation per shift on a GPU.
    zero = _zero_like_graph(prob)
    sums = {"fg": zero, "bg": zero, "neg": zero}
    counts = {name: torch.zeros((), device=prob.device, dtype=prob.dtype) for name in sums}
    for dy, dx in neighbour_offsets(dilation):
        pair = _pair_slices(height, width, dy, dx)
        if pair is None:
            continue
        (ri, ci), (rj, cj) = pair
        lab_i, lab_j = label[:, ri, ci], label[:, rj, cj]
        valid = (lab_i != ignore_index) & (lab_j != ignore_index)
        same = valid & (lab_i == lab_j)
        masks = {"fg": same & (lab_i != 0), "bg": same & (lab_i == 0), "neg": valid & (lab_i != lab_j)}
        # Eq. 4 on this shift: W_ij for every (i, j = i + offset) at once, (B, h, w).
        w_ij = self_term[:, ri, ci] - (mass[:, :, ri, ci] * log_mass[:, :, rj, cj]).sum(dim=1)
        omega = 1.0 if conf is None else connection_weight(conf[:, ri, ci], conf[:, rj, cj], weighting)
        attract = omega * w_ij  # eqs. 1-2 / 8-9
        repel = F.relu(omega * margin - w_ij)  # eqs. 3 / 10
        for name, term in (("fg", attract), ("bg", attract), ("neg", repel)):
            m = masks[name]
            # where() rather than a product: masked-out terms contribute exact zeros.
            sums[name] = sums[name] + torch.where(m, term, torch.zeros_like(term)).sum()
            counts[name] = counts[name] + m.sum()

    def mean(name: str) -> Tensor:
        return sums[name] / counts[name].clamp_min(1.0)  # an empty set gives 0 / 1 = 0

    return mean("fg") + mean("bg") + 2.0 * mean("neg")  # eqs. 5 / 11


def affinity_loss(prob: Tensor, label: Tensor, *, dilations: tuple[int, ...] = (4, 8, 12, 24),
                  **options: Unpack[KernelOptions]) -> Tensor:
    """Eqs. 6 / 12: the affinity loss, summed over the kernels' dilations.

    ``confidence=None`` gives the standard affinity (SA) loss (Omega = 1); a (B, H, W)
    confidence map gives the adaptive affinity (AA) loss. See :func:`single_kernel_affinity`.

    Args:
        prob: (B, C, H, W) softmax probabilities of F^c.
        label: (B, H, W) integer pseudo labels (0 = background).
        dilations: one 3x3 kernel per dilation (the set K of eq. 6/12).
        options: :class:`KernelOptions` — ``margin`` m, ``confidence`` (B, H, W) V or None,
            ``weighting`` "max" | "min" | "mean" (Table 3), ``ignore_index``, ``kl`` "binary"
            (AAF) or "categorical".

    Returns:
        0-dim loss, finite on every input (0 when no pair exists).

    Example::

        prob = torch.softmax(logits, dim=1)
        loss = affinity_loss(prob, label, confidence=v)  # AA; confidence=None gives SA
    """
    if prob.dim() != 4:
        raise ValueError(f"prob must be (B, C, H, W), got shape {tuple(prob.shape)}")
    if label.shape != prob.shape[:1] + prob.shape[2:]:
        raise ValueError(f"label shape {tuple(label.shape)} does not match prob {tuple(prob.shape)}")
    confidence = options.get("confidence")
    if confidence is not None and confidence.shape != label.shape:
        raise ValueError(f"confidence shape {tuple(confidence.shape)} does not match label {tuple(label.shape)}")
    if len(dilations) == 0:
        raise ValueError("dilations must not be empty")
    prob = _float(prob)
    if confidence is not None:
        options = {**options, "confidence": confidence.to(prob.dtype)}
    total = _zero_like_graph(prob)
    for d in dilations:
        total = total + single_kernel_affinity(prob, label, int(d), **options)
    return total


# ============================================================================ LR loss
def _unit(x: Tensor) -> Tensor:
    """Rows of ``x`` scaled to unit norm; a (near-)zero row stays zero and gets no gradient."""
    norm = x.norm(dim=-1, keepdim=True)
    ok = norm > NORM_EPS
    return torch.where(ok, x / norm.clamp_min(NORM_EPS), torch.zeros_like(x))


def class_centroids(embedding: Tensor, members: Tensor, weight: Tensor) -> Tensor:
    """Eq. 13: ``c_k = sum_{i in I_k} beta_i e_i / sum_{i in I_k} beta_i``.

    The denominator runs over the class's own pixels (METHOD.md). A class whose weights sum to
    0 gets the zero centroid (whose cosine similarity is 0); otherwise the tiny-sum clamp does
    not matter since only the centroid's direction is used.

    Args:
        embedding: (N, D) pixel embeddings e_i.
        members: (N, K) boolean, pixel i labelled with the k-th class.
        weight: (N,) confidences beta_i (no gradient).

    Returns:
        (K, D) centroids.
    """
    w = members.to(embedding.dtype) * weight.to(embedding.dtype).unsqueeze(1)  # (N, K)
    return (w.t() @ embedding) / w.sum(dim=0).clamp_min(NORM_EPS).unsqueeze(1)


def cosine_to_centroids(embedding: Tensor, centroids: Tensor) -> Tensor:
    """The similarity D(x_i, c_k) of eqs. 14-16: cosine, (N, D) x (K, D) -> (N, K).

    A zero-norm embedding or centroid has cosine 0 with everything (and no gradient).
    """
    return _unit(embedding) @ _unit(centroids).t()


def modulation_factor(s_a: Tensor, s_b: Tensor, gamma: float = 2.0, reading: LRReading = "similarity") -> Tensor:
    """Eq. 16: ``alpha = (1 - |D_a - D_b| / (D_a + D_b))^gamma``, a weight without gradient.

    s_a / s_b: cosine similarity to the nearest / second nearest centroid. ``reading`` says what
    eq. 16's D is: ``"similarity"`` (METHOD.md): D = s, the ratio ``(s_a - s_b) / (s_a + s_b)``;
    ``"distance"`` (a departure, docs/method.md): D = the cosine distance 1 - s, which the paper's
    own words for eq. 16 use ("the distance between the reassigned pixel embedding and its
    nearest centroid"), the ratio ``(s_a - s_b) / (2 - s_a - s_b)``. Post-ReLU embeddings have
    cosines near 1, where the similarity ratio is near 0 for every pixel (alpha ~ 1, gamma only
    rescales LR) and the distance ratio still spreads over [0, 1]. The ratio is 0 when its
    denominator is <= 1e-8 and is clamped to [0, 1]; gamma = 0 gives alpha = 1 in both readings.
    """
    s_a, s_b = s_a.detach(), s_b.detach()
    den = s_a + s_b if reading == "similarity" else 2.0 - s_a - s_b
    ok = den > RATIO_EPS
    ratio = torch.where(ok, (s_a - s_b) / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))
    return (1.0 - ratio.clamp(0.0, 1.0)).pow(gamma)


def reassign_margin_terms(sim: Tensor, assigned: Tensor, margin: float = 1.0) -> Tensor:
    """Eqs. 14-15 inner sum: ``sum_{k != a} max(0, n + s_k - s_a)`` for each pixel.

    Args:
        sim: (N, K) cosine similarities to the image's class centroids.
        assigned: (N,) index a of the nearest centroid (the reassigned label).
        margin: n.

    Returns:
        (N,) hinge sums (before the modulation factor alpha).
    """
    s_a = sim.gather(1, assigned.unsqueeze(1))  # (N, 1)
    hinge = F.relu(margin + sim - s_a)
    others = torch.ones_like(sim, dtype=torch.bool).scatter(1, assigned.unsqueeze(1), False)
    return torch.where(others, hinge, torch.zeros_like(hinge)).sum(dim=1)


def label_reassign_loss(
    embedding: Tensor,
    label: Tensor,
    weight: Tensor,
    *,
    margin: float = 1.0,
    gamma: float = 2.0,
    ignore_index: int = IGNORE_INDEX,
    reading: LRReading = "similarity",
) -> Tensor:
    """Eq. 17: ``L_LR = L_- + L_+``, the label reassign loss (eqs. 13-16 inside).

    Per image, over its labelled classes K (images with |K| < 2 are skipped): centroids by
    eq. 13, cosine similarities s_k, a = nearest centroid, b = second nearest,
    ``l_i = alpha_i * sum_{k != a} relu(n + s_k - s_a)``. L_- averages l_i over pixels whose
    pseudo label is 0, L_+ over the other labelled pixels, both pooled over the batch (over
    the images not skipped); an empty part gives 0.

    Args:
        embedding: (B, D, H, W) embeddings F^s.
        label: (B, H, W) pseudo labels (0 = background, ``ignore_index`` = unlabelled).
        weight: (B, H, W) beta = network probability of the pixel's pseudo label (detached here).
        margin: n.
        gamma: concentration gamma of eq. 16.
        ignore_index: label of unlabelled pixels.
        reading: eq. 16's D, ``"similarity"`` or ``"distance"`` (:func:`modulation_factor`).

    Returns:
        0-dim loss, finite on every input.
    """
    if embedding.dim() != 4:
        raise ValueError(f"embedding must be (B, D, H, W), got shape {tuple(embedding.shape)}")
    if label.shape != embedding.shape[:1] + embedding.shape[2:]:
        raise ValueError(f"label shape {tuple(label.shape)} does not match embedding {tuple(embedding.shape)}")
    if weight.shape != label.shape:
        raise ValueError(f"weight shape {tuple(weight.shape)} does not match label {tuple(label.shape)}")
    embedding = _float(embedding)
    weight = weight.detach().to(embedding.dtype)
    dim = embedding.shape[1]

    sum_bg, sum_fg = _zero_like_graph(embedding), _zero_like_graph(embedding)
    n_bg, n_fg = 0, 0
    for b in range(embedding.shape[0]):  # B is small; everything inside is vectorised
        lab = label[b].reshape(-1)
        keep = lab != ignore_index
        classes = torch.unique(lab[keep])
        if classes.numel() < 2:
            continue  # N >= 2 classes are needed (eqs. 14-15)
        lab = lab[keep]
        emb = embedding[b].reshape(dim, -1).t()[keep]  # (N, D)
        members = lab.unsqueeze(1) == classes.unsqueeze(0)  # (N, K)
        centroids = class_centroids(emb, members, weight[b].reshape(-1)[keep])
        sim = cosine_to_centroids(emb, centroids)  # (N, K)
        top = sim.topk(2, dim=1)
        alpha = modulation_factor(top.values[:, 0], top.values[:, 1], gamma, reading)
        per_pixel = alpha * reassign_margin_terms(sim, top.indices[:, 0], margin)
        is_bg = lab == 0
        sum_bg = sum_bg + per_pixel[is_bg].sum()
        sum_fg = sum_fg + per_pixel[~is_bg].sum()
        n_bg += int(is_bg.sum())
        n_fg += int((~is_bg).sum())
    return sum_bg / max(n_bg, 1) + sum_fg / max(n_fg, 1)  # eqs. 14 + 15 = eq. 17


# ============================================================================ baseline terms
def classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """L_cls: multilabel soft margin on the pooled class scores.

    ``mean_b mean_c -[y log sigmoid(x) + (1 - y) log sigmoid(-x)]`` (same as torch's
    ``multilabel_soft_margin_loss``).

    Args:
        logits: (B, C-1) pooled scores of the object classes.
        labels: (B, C-1) image labels in {0, 1}.
    """
    if logits.shape != labels.shape:
        raise ValueError(f"labels shape {tuple(labels.shape)} does not match logits {tuple(logits.shape)}")
    y = labels.to(logits.dtype)
    per_class = -(y * F.logsigmoid(logits) + (1.0 - y) * F.logsigmoid(-logits))
    return per_class.mean(dim=1).mean()


def joint_ce_loss(logits: Tensor, label: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """L_ce: RRM's joint cross entropy, background and objects averaged separately.

    ``CE`` averaged over the background-labelled pixels plus ``CE`` averaged over the
    object-labelled pixels (pooled over the batch), so the usually dominant background does
    not drown the objects. An empty part adds 0 (RRM's code would give NaN there).

    Args:
        logits: (B, C, H, W) segmentation logits (at the label's resolution).
        label: (B, H, W) pseudo labels, 0 = background, ``ignore_index`` = unlabelled.
        ignore_index: label of unlabelled pixels.
    """
    if logits.dim() != 4 or label.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"label shape {tuple(label.shape)} does not match logits {tuple(logits.shape)}")
    label = label.long()
    ce = F.cross_entropy(_float(logits), label, ignore_index=ignore_index, reduction="none")  # 0 at ignored
    is_bg = label == 0
    is_fg = (label != 0) & (label != ignore_index)
    bg = torch.where(is_bg, ce, torch.zeros_like(ce)).sum() / is_bg.sum().clamp_min(1)
    fg = torch.where(is_fg, ce, torch.zeros_like(ce)).sum() / is_fg.sum().clamp_min(1)
    return bg + fg
