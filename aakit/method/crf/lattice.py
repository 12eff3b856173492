"""Dense CRF mean-field inference in PyTorch, matching pydensecrf (issue 15): the ``torch`` back-end
(:class:`aakit.method.crf.torch_backend.TorchLattice`).

The fully connected CRF of Kraehenbuehl & Koltun (2011) with a Gaussian kernel on position, a
bilateral kernel on position and colour and Potts compatibilities, computed as pydensecrf
computes it: every kernel is a permutohedral-lattice filter (Adams, Baek & Davis 2010) with
symmetric normalisation, and mean field starts from ``softmax(-unary)`` and runs
``Q <- softmax(-unary + sum_k w_k N_k K_k N_k Q)`` for the configured number of iterations
(``N_k = 1 / sqrt(K_k 1)``; the filter includes each pixel's own contribution, as pydensecrf's
does).

The lattice follows pydensecrf's ``permutohedral.cpp`` step by step: features divided by the
kernel widths, scaled by the diagonal of the elevation matrix and lifted onto the d+1
dimensional hyperplane, rounded to the nearest remainder-0 point (half to even, as its SSE
build), ranked, given barycentric weights, then splat, blurred with [1 2 1] along each of the
d+1 lattice axes (missing neighbours count as zero) and sliced with the constant
``1 / (1 + 2^-d)``. Everything is vectorised over pixels and images: lattice points are
integer keys encoded in one int64 (batch index included, so the images of a batch get disjoint
lattices), found with ``unique``; blur neighbours by arithmetic on the codes and
``searchsorted``. Memory is linear in the number of pixels.

Example::

    q = dense_crf_batch(images, probs, CRFParams())   # (B, 3, H, W) uint8, (B, C, H, W) float
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from aakit.config import CRFParams
from aakit.method.crf.backend import PROB_CLIP  # pydensecrf's unary_from_softmax clip


@dataclass
class Lattice:
    """A permutohedral lattice built on the features of P pixels (all images of a batch).

    Attributes:
        offsets: (P, d+1) int64 row of each enclosing simplex vertex in the value table
            (row 0 is an always-zero row standing for absent neighbours).
        weights: (P, d+1) float32 barycentric weights of those vertices.
        neighbours: (d+1, 2, M+1) int64 rows of the two blur neighbours of every lattice point
            along each axis (0 where absent).
        n_rows: M+1, lattice points plus the zero row.
        splat: (M+1, P) sparse CSR matrix of the weights (splatting is ``splat @ values``).
        slice: (P, M+1) sparse CSR matrix of the weights (slicing is ``slice @ rows``).
    """

    offsets: torch.Tensor
    weights: torch.Tensor
    neighbours: torch.Tensor
    n_rows: int
    splat: torch.Tensor
    slice: torch.Tensor

    @property
    def d(self) -> int:
        """Feature dimensionality."""
        return self.offsets.shape[1] - 1


def _scale_factors(d: int, device: torch.device) -> torch.Tensor:
    """Diagonal of the elevation matrix times the inverse filter std (float32, as pydensecrf)."""
    inv_std = float(torch.tensor(math.sqrt(2.0 / 3.0) * (d + 1), dtype=torch.float32))
    return torch.tensor([1.0 / math.sqrt((i + 2) * (i + 1)) * inv_std for i in range(d)],
                        dtype=torch.float32, device=device)


def _elevate(features: torch.Tensor) -> torch.Tensor:
    """(P, d) features -> (P, d+1) points on the hyperplane sum = 0 (float32, C's order)."""
    n, d = features.shape
    scale = _scale_factors(d, features.device)
    elevated = features.new_empty(n, d + 1)
    sm = features.new_zeros(n)
    for j in range(d, 0, -1):
        cf = features[:, j - 1] * scale[j - 1]
        elevated[:, j] = sm - j * cf
        sm = sm + cf
    elevated[:, 0] = sm
    return elevated


def _simplex(elevated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest remainder-0 point, rank of each coordinate and barycentric weights.

    Returns:
        rem0 (P, d+1) int64, rank (P, d+1) int64, barycentric (P, d+1) float32.
    """
    n, d1 = elevated.shape
    d = d1 - 1
    down = float(torch.tensor(1.0 / d1, dtype=torch.float32))
    v = torch.round(elevated * down)  # half to even: the SSE build's rounding mode
    rem0f = v * d1
    total = v.sum(dim=1).to(torch.int64)
    diff = elevated - rem0f
    rank = torch.zeros(n, d1, dtype=torch.int64, device=elevated.device)
    for i in range(d):
        for j in range(i + 1, d1):
            less = (diff[:, i] < diff[:, j]).to(torch.int64)
            rank[:, i] += less
            rank[:, j] += 1 - less
    rank += total[:, None]
    rem0 = rem0f.to(torch.int64)
    shift = (rank < 0).to(torch.int64) - (rank > d).to(torch.int64)
    rank += shift * d1
    rem0 += shift * d1
    bary = elevated.new_zeros(n, d1 + 1)
    for i in range(d1):
        w = (elevated[:, i] - rem0[:, i].to(elevated.dtype)) * down
        p = (d - rank[:, i])[:, None]
        bary.scatter_add_(1, p, w[:, None])
        bary.scatter_add_(1, p + 1, -w[:, None])
    bary[:, 0] += 1 + bary[:, d1]
    return rem0, rank, bary[:, :d1].contiguous()


def _vertex_codes(rem0: torch.Tensor, rank: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """(P, d+1) int64 codes of the d+1 vertices of each pixel's simplex, and the radix.

    Vertex ``r`` has the key ``rem0[i] + r - (d+1) [rank[i] > d - r]`` (i < d): pydensecrf's
    canonical simplex. A key is encoded as ``sum_i (key_i - low) radix_i`` plus the image's
    index times ``radix_d``, with room for the blur neighbours (keys +- d), so a neighbour's
    code is the point's code plus a constant. Since ``rank`` is a permutation, the correction
    term grows by one coordinate per remainder: no (P, d+1, d) tensor is needed.

    Raises:
        ValueError: the keys span too wide a range to encode in one int64.
    """
    n, d1 = rem0.shape
    d = d1 - 1
    head = rem0[:, :d]
    low = int(head.min()) - 2 * d1
    span = int(head.max()) + 2 * d1 - low + 1
    n_batch = int(batch.max()) + 1 if n else 1
    if math.log2(span) * d + math.log2(n_batch) > 62:
        raise ValueError("crf_torch: lattice keys too wide for int64 (features span too large)")
    radix = [span ** i for i in range(d)]
    radix_t = torch.tensor(radix + [0], dtype=torch.int64, device=rem0.device)
    base = ((head - low) * radix_t[:d]).sum(dim=1) + batch * span ** d
    by_rank = torch.empty_like(rank).scatter_(1, rank, torch.arange(d1, device=rank.device).expand(n, d1))
    sel = radix_t[by_rank]                                            # radix of the coordinate of rank k
    codes = torch.empty_like(rank)
    correction = torch.zeros_like(base)
    for r in range(d1):
        if r > 0:
            correction += sel[:, d - r + 1]
        codes[:, r] = base + r * sum(radix) - d1 * correction
    return codes, radix


def build_lattice(features: torch.Tensor, batch: torch.Tensor) -> Lattice:
    """Build the lattice of (P, d) float32 features; ``batch`` (P,) keeps images apart.

    Raises:
        ValueError: the keys span too wide a range to encode in one int64.
    """
    n, d = features.shape
    rem0, rank, bary = _simplex(_elevate(features))
    codes, radix = _vertex_codes(rem0, rank, batch)
    ordered, perm = codes.reshape(-1).sort(stable=True)               # pixels ascending per point
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[1:] = ordered[1:] != ordered[:-1]
    uniq = ordered[first]
    n_rows = uniq.numel() + 1                                         # row 0: the zero row
    offsets = torch.empty_like(ordered)
    offsets[perm] = first.cumsum(0)
    offsets = offsets.reshape(n, d + 1)
    neighbours = torch.zeros(d + 1, 2, n_rows, dtype=torch.int64, device=features.device)
    for j in range(d + 1):
        delta = -sum(radix) + ((d + 1) * radix[j] if j < d else 0)
        for side, sign in enumerate((1, -1)):
            target = uniq + sign * delta
            pos = torch.searchsorted(uniq, target).clamp_(max=uniq.numel() - 1)
            neighbours[j, side, 1:] = torch.where(uniq[pos] == target, pos + 1, torch.zeros_like(pos))
    starts = torch.nonzero(first).reshape(-1)
    crow = torch.cat([starts.new_zeros(1), starts, starts.new_full((1,), ordered.numel())])
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        splat = torch.sparse_csr_tensor(crow, perm // (d + 1), bary.reshape(-1)[perm], (n_rows, n),
                                        check_invariants=False)
        slice_ = _slice_matrix(offsets, bary, n_rows)
    return Lattice(offsets=offsets, weights=bary, neighbours=neighbours, n_rows=n_rows, splat=splat, slice=slice_)


def _slice_matrix(offsets: torch.Tensor, weights: torch.Tensor, n_rows: int) -> torch.Tensor:
    """The (P, n_rows) CSR matrix of the barycentric weights (columns sorted per row on CUDA)."""
    n, d1 = offsets.shape
    cols, vals = offsets, weights
    if offsets.is_cuda:
        cols, order = offsets.sort(dim=1)
        vals = weights.gather(1, order)
    crow = torch.arange(0, n * d1 + 1, d1, device=offsets.device)
    return torch.sparse_csr_tensor(crow, cols.reshape(-1), vals.reshape(-1), (n, n_rows),
                                   check_invariants=False)


def lattice_filter(lattice: Lattice, values: torch.Tensor) -> torch.Tensor:
    """Splat (P, C) values, blur along each axis in order, slice: pydensecrf's ``compute``.

    Splat and slice are sparse products (the same sums as pydensecrf's loops, added in
    another order: the results differ in the last bits of float32)."""
    rows = lattice.splat @ values
    for j in range(lattice.d + 1):  # rows + 0.5 (rows[n1] + rows[n2]), in place where possible
        n1, n2 = lattice.neighbours[j]
        blurred = torch.index_select(rows, 0, n1)
        blurred += torch.index_select(rows, 0, n2)
        blurred *= 0.5
        blurred += rows
        rows = blurred
    alpha = float(torch.tensor(1.0 / (1.0 + 2.0 ** -lattice.d), dtype=torch.float32))
    return (lattice.slice @ rows) * alpha


@dataclass
class DenseKernel:
    """A symmetric-normalised Gaussian kernel with a Potts weight."""

    lattice: Lattice
    norm: torch.Tensor  # (P, 1): 1 / sqrt(K 1 + 1e-20)
    compat: float

    @classmethod
    def from_features(cls, features: torch.Tensor, batch: torch.Tensor, compat: float) -> DenseKernel:
        """Lattice and normalisation for (P, d) features."""
        lattice = build_lattice(features, batch)
        ones = features.new_ones(features.shape[0], 1)
        filtered = lattice_filter(lattice, ones).to(torch.float64)
        norm = (1.0 / torch.sqrt(filtered + 1e-20)).to(torch.float32)
        return cls(lattice=lattice, norm=norm, compat=float(compat))

    def message(self, q: torch.Tensor) -> torch.Tensor:
        """``compat * N K N q``: what this kernel adds to the negative energy."""
        out = lattice_filter(self.lattice, q * self.norm)
        out *= self.norm
        out *= self.compat
        return out


def _features(images: torch.Tensor, params: CRFParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian (P, 2) and bilateral (P, 5) features of (B, 3, H, W) images, and batch ids."""
    b, _, h, w = images.shape
    dev = images.device
    f32 = torch.float32
    x = torch.arange(w, device=dev, dtype=f32)[None, :].expand(h, w).reshape(-1)
    y = torch.arange(h, device=dev, dtype=f32)[:, None].expand(h, w).reshape(-1)
    gx, gy = x / f32_scalar(params.gaussian_sxy), y / f32_scalar(params.gaussian_sxy)
    bx, by = x / f32_scalar(params.bilateral_sxy), y / f32_scalar(params.bilateral_sxy)
    gauss = torch.stack([gx, gy], dim=1).repeat(b, 1)
    rgb = images.to(f32).permute(0, 2, 3, 1).reshape(-1, 3) / f32_scalar(params.bilateral_srgb)
    bilateral = torch.cat([torch.stack([bx, by], dim=1).repeat(b, 1), rgb], dim=1)
    batch = torch.arange(b, device=dev).repeat_interleave(h * w)
    return gauss, bilateral, batch


def f32_scalar(value: float) -> float:
    """``value`` rounded to float32 (pydensecrf receives its parameters as C floats)."""
    return float(torch.tensor(value, dtype=torch.float32))


def _exp_normalize(x: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax as pydensecrf's expAndNormalize (max subtracted, exp, divided by sum)."""
    e = x - x.max(dim=1, keepdim=True).values
    e.exp_()
    e /= e.sum(dim=1, keepdim=True)
    return e


@torch.no_grad()
def dense_crf_batch(images: torch.Tensor, probs: torch.Tensor, params: CRFParams) -> torch.Tensor:
    """Mean-field marginals of the dense CRF for a batch, on the inputs' device.

    Args:
        images: (B, 3, H, W) uint8 RGB.
        probs: (B, C, H, W) scores in [0, 1]; unary ``-log(clip(prob, 1e-5, 1))``.
        params: iterations and kernel parameters (:class:`CRFParams`).

    Returns:
        (B, C, H, W) float32 marginals Q on ``probs.device``.

    Raises:
        ValueError: shapes disagree.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"dense_crf_batch: images must be (B, 3, H, W), got {tuple(images.shape)}")
    if probs.ndim != 4 or probs.shape[0] != images.shape[0] or probs.shape[2:] != images.shape[2:]:
        raise ValueError(f"dense_crf_batch: probs {tuple(probs.shape)} do not match images {tuple(images.shape)}")
    b, c, h, w = probs.shape
    images = images.to(probs.device)
    gauss, bilateral, batch = _features(images, params)
    kernels = [DenseKernel.from_features(gauss, batch, params.gaussian_compat),
               DenseKernel.from_features(bilateral, batch, params.bilateral_compat)]
    p = probs.to(torch.float32).permute(0, 2, 3, 1).reshape(-1, c)
    unary = -torch.log(p.clamp(PROB_CLIP, 1.0))
    q = _exp_normalize(-unary)
    for _ in range(params.iterations):
        energy = -unary
        for kernel in kernels:
            energy += kernel.message(q)
        q = _exp_normalize(energy)
    return q.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
