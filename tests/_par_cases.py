"""The fixed cases on which aakit's PAR is compared with AFA's (tests/test_par.py,
benchmarks/par_agreement.py): inputs made from a seed, so that the fixture stores only AFA's
outputs (and checksums of the inputs, which catch a change of numpy's random streams).

Each case: batch B, classes C, image size (H, W), probability size (h, w), image kind, PAR's
dilations and iterations. Image kinds: ``structured`` (flat rectangles and discs of random
colours on a random background, pixel noise, uint8 values), ``noise`` (uniform uint8 noise),
``float`` (uniform real values in [0, 255)), ``unit`` (structured, divided by 255: the scale
AFA's training feeds its PAR). Probabilities are the softmax of normal logits (std 2), in float32.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

DEFAULT_DILATIONS = (1, 2, 4, 8, 12, 24)


class Case(NamedTuple):
    name: str
    seed: int
    batch: int
    classes: int
    size: tuple[int, int]
    prob_size: tuple[int, int]
    kind: str
    dilations: tuple[int, ...] = DEFAULT_DILATIONS
    iterations: int = 10


CASES = [
    Case("noise-c2-b2", 1, 2, 2, (33, 47), (9, 12), "noise"),
    Case("structured-c21-b2", 2, 2, 21, (21, 25), (7, 8), "structured"),
    Case("structured-c2-b3-same-size", 3, 3, 2, (32, 32), (32, 32), "structured"),
    Case("float-c21-odd-tiny", 4, 1, 21, (17, 13), (5, 4), "float"),
    Case("structured-c3-b2", 5, 2, 3, (48, 36), (13, 10), "structured"),
    Case("unit-c2-b1", 6, 1, 2, (40, 40), (11, 11), "unit"),
    Case("noise-c2-b2-dil124-it3", 7, 2, 2, (31, 37), (8, 10), "noise", (1, 2, 4), 3),
]


def structured_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(3, H, W) uint8: a random background with 4 flat rectangles or discs, noise of std 6."""
    yy, xx = np.mgrid[:h, :w]
    image = np.empty((3, h, w), np.float64)
    image[:] = rng.uniform(0, 255, (3, 1, 1))
    for k in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(min(h, w) / 8, min(h, w) / 3)
        shape = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) if k % 2 else ((abs(yy - cy) < r) & (abs(xx - cx) < 0.7 * r))
        image[:, shape] = rng.uniform(0, 255, (3, 1))
    return np.clip(np.rint(image + rng.normal(0, 6, image.shape)), 0, 255).astype(np.uint8)


def case_inputs(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """images (B, 3, H, W) float32 and probs (B, C, h, w) float32 of ``case``."""
    rng = np.random.default_rng(case.seed)
    (h, w), b = case.size, case.batch
    if case.kind in ("structured", "unit"):
        images = np.stack([structured_image(rng, h, w) for _ in range(b)]).astype(np.float32)
        if case.kind == "unit":
            images = images / np.float32(255)
    elif case.kind == "noise":
        images = rng.integers(0, 256, (b, 3, h, w)).astype(np.float32)
    elif case.kind == "float":
        images = rng.uniform(0, 255, (b, 3, h, w)).astype(np.float32)
    else:
        raise ValueError(f"unknown image kind {case.kind!r}")
    logits = rng.normal(0, 2, (b, case.classes) + tuple(case.prob_size))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(probs)


def checksum(images: torch.Tensor, probs: torch.Tensor) -> np.ndarray:
    """Two float64 sums that tell whether the inputs are the ones the fixture was made from."""
    return np.array([images.double().sum().item(), (probs.double() * torch.arange(probs.numel(), dtype=torch.float64).reshape(probs.shape).remainder(7)).sum().item()])
