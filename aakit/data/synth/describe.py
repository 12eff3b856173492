"""Summaries of a generated set: :func:`describe` (text) and :func:`contact_sheet` (a picture)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from aakit.data.scene import SynthError
from aakit.data.synth.versions import version_of_label
from aakit.data.synth.write import DATASET_NAME, _read_meta


def describe(root: str | Path) -> str:
    """A short text summary: per-class image counts, visible area, context share; totals.

    Raises:
        SynthError: ``root`` has no readable ``meta.json`` of an aakit-synth set.
    """
    root = Path(root)
    meta = _read_meta(root)
    if meta is None or meta.get("name") != DATASET_NAME:
        raise SynthError(f"{root / 'meta.json'}: missing or not an {DATASET_NAME} meta file")
    names = meta["class_names"]
    k = len(names)
    sets = root / "ImageSets" / "Segmentation"
    scenes = json.loads((root / "scenes.json").read_text(encoding="utf-8"))
    classes = {i + 1: c for i, c in enumerate(meta["classes"])}
    lines = [f"{meta['name']} v{meta['version']}  seed {meta['seed']}  {meta['image_size']}px  "
             f"{k - 1} classes  train {meta['n_train']}  val {meta['n_val']}"]
    for split in ("train", "val"):
        ids = (sets / f"{split}.txt").read_text(encoding="utf-8").split()
        if not ids:
            continue
        n_img = np.zeros(k, dtype=np.int64)
        area = np.zeros(k)
        on_ctx = np.zeros(k, dtype=np.int64)
        n_cls = []
        fg = []
        for iid in ids:
            m = np.asarray(Image.open(root / "SegmentationClassAug" / f"{iid}.png"))
            counts = np.bincount(m.ravel(), minlength=256)[:k]
            present = np.flatnonzero(counts[1:]) + 1
            n_img[present] += 1
            area[present] += counts[present] / m.size
            n_cls.append(len(present))
            fg.append(1 - counts[0] / m.size)
            for c in present.tolist():
                on_ctx[c] += scenes[iid]["background"] == classes[c]["context"]
        lines.append(f"[{split}] {len(ids)} images, {np.mean(n_cls):.2f} classes/image, "
                     f"foreground {100 * np.mean(fg):.1f}% of pixels")
        lines.append(f"  {'class':<16} {'images':>6} {'area%':>6} {'on own context%':>15}")
        for c in range(1, k):
            mean_area = 100 * area[c] / max(n_img[c], 1)
            ctx = 100 * on_ctx[c] / max(n_img[c], 1)
            lines.append(f"  {names[c]:<16} {n_img[c]:>6} {mean_area:>6.1f} {ctx:>15.0f}")
        version = version_of_label(meta["version"])
        if version is not None:  # what the version adds (version 2: decoys and halos)
            lines += version.describe_lines(scenes, ids)
    return "\n".join(lines)


def contact_sheet(
    root: str | Path, ids: list[str] | None = None, n: int = 16, cols: int = 4
) -> Image.Image:
    """Image | mask (with band) pairs in a grid, for eyeballing the set.

    Args:
        root: a generated set.
        ids: images to show (default: the first ``n`` train images).
        n: number of images when ``ids`` is None.
        cols: pairs per row.
    """
    root = Path(root)
    if ids is None:
        ids = (root / "ImageSets" / "Segmentation" / "train.txt").read_text(encoding="utf-8").split()[:n]
    tiles = []
    for iid in ids:
        im = Image.open(root / "JPEGImages" / f"{iid}.jpg").convert("RGB")
        mk = Image.open(root / "SegmentationClass" / f"{iid}.png").convert("RGB")
        pair = Image.new("RGB", (im.width * 2 + 4, im.height), (255, 255, 255))
        pair.paste(im, (0, 0))
        pair.paste(mk, (im.width + 4, 0))
        tiles.append(pair)
    rows = (len(tiles) + cols - 1) // cols
    tw, th = tiles[0].size
    sheet = Image.new("RGB", (cols * (tw + 8), rows * (th + 8)), (255, 255, 255))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * (tw + 8), (i // cols) * (th + 8)))
    return sheet
