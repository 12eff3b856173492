"""Tiny VOC-style layouts for the data tests, written without aakit's own writers.

The masks, JPEGs, label cache and annotation XMLs are made here with plain PIL/json/strings,
so the code under test is checked against independently produced files.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

W, H = 40, 30  # image size used everywhere (width x height)


def voc_like_palette() -> list[int]:
    """A 256-colour palette (values do not matter to the readers, only indices do)."""
    rng = np.random.default_rng(123)
    pal = rng.integers(0, 256, size=(256, 3))
    pal[0] = 0
    return pal.reshape(-1).astype(int).tolist()


def write_palette_png(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(mask.astype(np.uint8))
    img.putpalette(voc_like_palette())
    img.save(path)


def make_mask(index: int, num_classes: int) -> np.ndarray:
    """Background, one or two object rectangles, a 255 boundary line around the first one."""
    mask = np.zeros((H, W), np.uint8)
    c1 = 1 + index % (num_classes - 1)
    mask[5:15, 5:20] = c1
    mask[4, 4:21] = 255
    if index % 2 == 1:
        c2 = 1 + (index + 3) % (num_classes - 1)
        mask[18:28, 22:38] = c2
    return mask


def make_image(index: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + index)
    return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


@dataclass
class Layout:
    root: Path
    splits: dict[str, list[str]]
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    classes: dict[str, list[int]] = field(default_factory=dict)
    num_classes: int = 21


def make_layout(
    root: Path,
    *,
    train: tuple[str, ...] = ("t0", "t1", "t2"),
    extra_aug: tuple[str, ...] = ("s0", "s1"),
    val: tuple[str, ...] = ("v0", "v1"),
    num_classes: int = 21,
    meta: dict | None = None,
) -> Layout:
    """Write a complete, clean layout: JPEGs, both mask folders, three splits, label cache.

    ``train`` ids have masks in SegmentationClass and SegmentationClassAug, ``extra_aug`` ids
    (the SBD part) only in SegmentationClassAug, ``val`` ids only in SegmentationClass.
    """
    ids = list(train) + list(extra_aug) + list(val)
    layout = Layout(
        root=root,
        splits={"train": list(train), "train_aug": sorted(train + extra_aug), "val": list(val)},
        num_classes=num_classes,
    )
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "SegmentationClassAug").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for n, image_id in enumerate(ids):
        Image.fromarray(make_image(n)).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        mask = make_mask(n, num_classes)
        layout.masks[image_id] = mask
        layout.classes[image_id] = sorted(int(v) for v in np.unique(mask) if v not in (0, 255))
        if image_id in train or image_id in val:
            write_palette_png(root / "SegmentationClass" / f"{image_id}.png", mask)
        if image_id not in val:
            write_palette_png(root / "SegmentationClassAug" / f"{image_id}.png", mask)
    for split, split_ids in layout.splits.items():
        path = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        path.write_text("".join(f"{i}\n" for i in split_ids))
    (root / "cls_labels.json").write_text(json.dumps(layout.classes))
    if meta is not None:
        (root / "meta.json").write_text(json.dumps(meta))
    return layout


def small_meta(num_classes: int = 5) -> dict:
    return {
        "name": "tiny",
        "version": "1",
        "num_classes": num_classes,
        "class_names": ["background"] + [f"shape{i}" for i in range(1, num_classes)],
        "palette": [[10 * i, 20 * i, 30 * i] for i in range(num_classes)],
        "image_size": W,
    }


# The 20 VOC object names, in class order 1..20 (written out here, not taken from aakit).
VOC_NAMES = ("aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse "
             "motorbike person pottedplant sheep sofa train tvmonitor").split()


def write_annotation(path: Path, image_id: str, objects: Sequence[tuple[str, int]]) -> None:
    """A VOC-style annotation XML: one ``<object>`` per (name, difficult), each with a part
    (whose ``<name>`` is not a class) and a box, as in VOC2012's files."""
    body = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{difficult}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin>"
        f"<xmax>5</xmax><ymax>5</ymax></bndbox><part><name>head</name></part></object>"
        for name, difficult in objects
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<annotation><folder>VOC2012</folder><filename>{image_id}.jpg</filename>"
        f"<size><width>{W}</width><height>{H}</height><depth>3</depth></size>"
        f"<segmented>1</segmented>{body}</annotation>\n"
    )


def add_annotations(
    layout: Layout, extra: dict[str, list[tuple[str, int]]] | None = None
) -> dict[str, list[int]]:
    """Write ``Annotations/<id>.xml`` for every id: one object per class of its mask, plus the
    ``extra`` (name, difficult) objects of some ids. Returns the labels psa's rule gives:
    the classes of every named object (difficult included, unknown names left out)."""
    expected: dict[str, list[int]] = {}
    for image_id, classes in layout.classes.items():
        objects = [(VOC_NAMES[c - 1], 0) for c in classes] + list((extra or {}).get(image_id, []))
        write_annotation(layout.root / "Annotations" / f"{image_id}.xml", image_id, objects)
        named = {VOC_NAMES.index(n) + 1 for n, _ in objects if n in VOC_NAMES}
        expected[image_id] = sorted(named)
    return expected
