"""Is the paste edge a shortcut? Two measurements on a built real-object lab.

1. **Rim vs natural edges** (:func:`rim_auc`): a logistic classifier on local edge features
   (gradient magnitude at three scales, their ratios: how sharp the edge is; the Laplacian; the
   colour step across the edge) tells pixels on the paste outline from pixels on the background
   photo's own edges of the same strength (sampled to the rim's gradient-magnitude histogram).
   Trained on train images, scored on val images: AUC 0.5 means a paste edge looks like any edge
   of that strength; 1.0, that a detector of paste edges is available to the network.
2. **Class from the rim** (:func:`class_from_rim`): a nearest-centroid classifier of each object's
   class from the colour and gradient statistics of a ring just outside its mask (background side
   of the rim: what feathering and colour matching touch), against the same from inside the mask.
   Trained on train objects, scored on val objects (other cut-outs); chance = the majority share.

Both read only the written files (JPEGImages, SegmentationClassAug, scenes.json); numpy/scipy.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion, gaussian_filter, gaussian_gradient_magnitude, gaussian_laplace

SCALES = (0.5, 1.0, 2.0)
RING_PX = 3


def _load(root: Path, iid: str) -> tuple[np.ndarray, np.ndarray]:
    img = np.asarray(Image.open(root / "JPEGImages" / f"{iid}.jpg").convert("RGB")).astype(np.float32) / 255.0
    lab = np.asarray(Image.open(root / "SegmentationClassAug" / f"{iid}.png"))
    return img, lab


def edge_features(img: np.ndarray) -> np.ndarray:
    """Per-pixel edge features, shape (H, W, 7)."""
    grey = img.mean(axis=-1)
    mags = [gaussian_gradient_magnitude(grey, s) for s in SCALES]
    eps = 1e-3
    lap = np.abs(gaussian_laplace(grey, 1.0))
    blurred = np.stack([gaussian_filter(img[..., c], 1.5) for c in range(3)], -1)
    step = np.linalg.norm(img - blurred, axis=-1)
    f = [np.log(m + eps) for m in mags] + [np.log((mags[0] + eps) / (mags[2] + eps)),
                                           np.log((mags[0] + eps) / (mags[1] + eps)), np.log(lap + eps), np.log(step + eps)]
    return np.stack(f, -1)


def outline(label: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another label (both sides of every outline)."""
    e = np.zeros(label.shape, dtype=bool)
    e[1:] |= label[1:] != label[:-1]
    e[:-1] |= label[:-1] != label[1:]
    e[:, 1:] |= label[:, 1:] != label[:, :-1]
    e[:, :-1] |= label[:, :-1] != label[:, 1:]
    return e


def _rim_samples(rng: np.random.Generator, img: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features of rim pixels and of as many natural-edge pixels, matched in gradient magnitude."""
    feats = edge_features(img)
    rim = outline(label)
    far = ~binary_dilation(rim, iterations=4) & (label == 0)
    mag = feats[..., 1]
    if rim.sum() < 10 or far.sum() < 10:
        return np.zeros((0, feats.shape[-1])), np.zeros((0, feats.shape[-1]))
    edges = np.quantile(mag[rim], np.linspace(0, 1, 11))
    pos, neg = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        r = np.flatnonzero(rim.ravel() & (mag.ravel() >= lo) & (mag.ravel() <= hi))
        n = np.flatnonzero(far.ravel() & (mag.ravel() >= lo) & (mag.ravel() <= hi))
        k = min(len(r), len(n), 40)
        if k:
            pos.append(rng.choice(r, k, replace=False))
            neg.append(rng.choice(n, k, replace=False))
    flat = feats.reshape(-1, feats.shape[-1])
    if not pos:
        return np.zeros((0, flat.shape[1])), np.zeros((0, flat.shape[1]))
    return flat[np.concatenate(pos)], flat[np.concatenate(neg)]


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 500, lr: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logistic regression by gradient descent on standardised features: ``(w, mean, std)``."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = np.c_[(x - mean) / std, np.ones(len(x))]
    w = np.zeros(z.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-z @ w))
        w -= lr * (z.T @ (p - y) / len(y) + 1e-4 * w)
    return w, mean, std


def auc(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (the rank statistic; ties count half)."""
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    for v in np.unique(score):  # average ranks of ties
        m = score == v
        if m.sum() > 1:
            ranks[m] = ranks[m].mean()
    n1, n0 = int(y.sum()), int((1 - y).sum())
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / max(n1 * n0, 1))


def _split_ids(root: Path, split: str, images: int) -> list[str]:
    return (root / "ImageSets/Segmentation" / f"{split}.txt").read_text().split()[:images]


def rim_auc(root: str | Path, images: int = 150, seed: int = 0) -> dict[str, Any]:
    """Measurement 1 on up to ``images`` train (fit) and val (score) images."""
    root, rng = Path(root), np.random.default_rng(seed)
    data = {}
    for split in ("train", "val"):
        pos, neg = zip(*(_rim_samples(rng, *_load(root, i)) for i in _split_ids(root, split, images)))
        x = np.concatenate([*pos, *neg])
        y = np.r_[np.ones(sum(len(p) for p in pos)), np.zeros(sum(len(n) for n in neg))]
        data[split] = (x, y)
    w, mean, std = fit_logistic(*data["train"])
    x, y = data["val"]
    score = np.c_[(x - mean) / std, np.ones(len(x))] @ w
    return {"auc_val": round(auc(score, y), 4), "pixels_val": int(len(y)), "pixels_train": int(len(data["train"][1]))}


def _object_stats(img: np.ndarray, mask: np.ndarray, grad: np.ndarray) -> np.ndarray:
    px = img[mask]
    return np.r_[px.mean(0), px.std(0), grad[mask].mean(), grad[mask].std()]


def _object_features(root: Path, ids: list[str], scenes: dict[str, Any]) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    rings, insides, classes = [], [], []
    for iid in ids:
        img, lab = _load(root, iid)
        grad = gaussian_gradient_magnitude(img.mean(-1), 1.0)
        for c in sorted({o["class"] for o in scenes[iid]["objects"]}):
            mask = lab == c
            ring = binary_dilation(mask, iterations=RING_PX) & ~binary_dilation(mask, iterations=1) & (lab == 0)
            inside = binary_erosion(mask, iterations=2)
            if ring.sum() < 10 or inside.sum() < 10:
                continue
            rings.append(_object_stats(img, ring, grad))
            insides.append(_object_stats(img, inside, grad))
            classes.append(c)
    return rings, insides, classes


def _nearest_centroid(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray) -> np.ndarray:
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    a, b = (xtr - mean) / std, (xte - mean) / std
    labels = np.unique(ytr)
    cents = np.stack([a[ytr == k].mean(0) for k in labels])
    return labels[np.argmin(((b[:, None] - cents[None]) ** 2).sum(-1), axis=1)]


def class_from_rim(root: str | Path, images: int = 300) -> dict[str, Any]:
    """Measurement 2: val accuracy of the class from the outer ring, from the inside, and chance."""
    root = Path(root)
    scenes = json.loads((root / "scenes.json").read_text())
    tr = _object_features(root, _split_ids(root, "train", images), scenes)
    te = _object_features(root, _split_ids(root, "val", images), scenes)
    ytr, yte = np.array(tr[2]), np.array(te[2])
    out: dict[str, Any] = {"objects_train": int(len(ytr)), "objects_val": int(len(yte))}
    for name, k in (("rim", 0), ("inside", 1)):
        pred = _nearest_centroid(np.stack(tr[k]), ytr, np.stack(te[k]))
        out[f"acc_{name}"] = round(float((pred == yte).mean()), 4)
    out["chance"] = round(float(np.bincount(yte).max() / len(yte)), 4)
    return out


def shortcut_report(root: str | Path, images: int = 150) -> dict[str, Any]:
    """Both measurements, with the set's knobs."""
    meta = json.loads((Path(root) / "meta.json").read_text())
    return {"knobs": meta["knobs"], "rim_vs_natural_edges": rim_auc(root, images),
            "class_from_rim": class_from_rim(root, 2 * images)}
