"""Writing the real-object lab to disk, in the VOC layout the lab's loaders read.

    DIR/JPEGImages/<id>.jpg              composed photo (train_00000, val_00000, ...)
    DIR/SegmentationClass/<id>.png       palette PNG; 255 on a 1-px band on the object side of each outline
    DIR/SegmentationClassAug/<id>.png    the same without the band
    DIR/ImageSets/Segmentation/{train,train_aug,val}.txt
    DIR/cls_labels.json                  image-level labels
    DIR/scenes.json                      per image: background, crop, each object's cut-out and transform
    DIR/meta.json                        classes, knobs, sizes, seed, objects_by_split, sources (written last)

The split is by cut-out: each class's cut-outs are ranked by a hash of their name and the first
``val_fraction`` of them (at least 2) are val's, the rest train's, so no object is in both; the
backgrounds are split the same way. The seed changes the images, never the split.
``meta.json`` names every input (the sources' package versions and a digest of their bytes),
so it identifies the set (:mod:`aakit.data.identity`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import aakit.data.objects.sources as sources
from aakit.data.objects.compose import DEFAULT_KNOBS, ObjectKnobs, ObjectsError, Pool, check_knobs, render
from aakit.data.synth import voc_palette
from aakit.data.synth.write import jpeg_bytes, png_bytes

DATASET_NAME = "aakit-objects"
VERSION = "1.0"
SPLITS = ("train", "val")
JPEG_QUALITY = 92
IGNORE_INDEX = 255
MIN_TRAIN, MIN_VAL = 3, 2  # cut-outs per class and split
MIN_CLASSES = 4


def _rank(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def split_cutouts(cutouts: list[sources.Cutout], val_fraction: float) -> tuple[list[str], dict[str, dict[str, list[str]]]]:
    """The classes kept (enough cut-outs for both splits) and ``{split: {class: [cut-out keys]}}``.

    Raises:
        ObjectsError: fewer than :data:`MIN_CLASSES` classes have enough cut-outs.
    """
    by_cls: dict[str, list[str]] = {}
    for c in cutouts:
        by_cls.setdefault(c.cls, []).append(c.key)
    kept, split = [], {"train": {}, "val": {}}
    for cls in sources.CLASS_GROUPS:
        keys = sorted(by_cls.get(cls, []), key=_rank)
        n_val = max(MIN_VAL, math.ceil(val_fraction * len(keys)))
        if len(keys) - n_val < MIN_TRAIN:
            continue
        kept.append(cls)
        split["val"][cls], split["train"][cls] = sorted(keys[:n_val]), sorted(keys[n_val:])
    if len(kept) < MIN_CLASSES:
        have = ", ".join(f"{k} {len(v)}" for k, v in by_cls.items()) or "none"
        raise ObjectsError(f"objects: too few cut-outs for a split by object ({MIN_TRAIN} train + {MIN_VAL} val "
                           f"per class, >= {MIN_CLASSES} classes); found: {have}")
    return kept, split


def split_backgrounds(val_fraction: float) -> dict[str, list[int]]:
    """Indices into :data:`sources.BACKGROUNDS` per split (by a hash of the name)."""
    order = sorted(range(len(sources.BACKGROUNDS)), key=lambda i: _rank(sources.BACKGROUNDS[i][1]))
    n_val = max(2, math.ceil(val_fraction * len(order)))
    return {"val": sorted(order[:n_val]), "train": sorted(order[n_val:])}


def make_pool(roots: sources.Roots, classes: list[str], keys: dict[str, list[str]], bg_idx: list[int]) -> Pool:
    """The arrays one split draws from."""
    arrays = tuple(tuple(sources.load_cutout(roots, sources.Cutout(c, k + ".png")) for k in keys[c]) for c in classes)
    bgs = [sources.BACKGROUNDS[i] for i in bg_idx]
    return Pool(tuple(classes), arrays, tuple(tuple(keys[c]) for c in classes),
                tuple(sources.load_background(roots, s, p) for s, p, _ in bgs),
                tuple(f"{s}/{p}" for s, p, _ in bgs), tuple(ctx for _, _, ctx in bgs),
                tuple(sources.CLASS_CONTEXT[c] for c in classes))


def boundary_band(label: np.ndarray) -> np.ndarray:
    """``label`` with 255 on object pixels that have a 4-neighbour of another label."""
    edge = np.zeros(label.shape, dtype=bool)
    edge[1:] |= label[1:] != label[:-1]
    edge[:-1] |= label[:-1] != label[1:]
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[:, :-1] |= label[:, :-1] != label[:, 1:]
    return np.where(edge & (label > 0), IGNORE_INDEX, label).astype(np.uint8)


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index, 7]))


def expected_meta(roots: sources.Roots, n_train: int, n_val: int, seed: int, size: int,
                  knobs: ObjectKnobs) -> tuple[dict[str, Any], dict[str, Any]]:
    """``meta.json`` of the set these arguments make, and the split (cut-outs, backgrounds)."""
    sources.require(roots)
    cutouts = sources.find_cutouts(roots)
    classes, by_split = split_cutouts(cutouts, knobs.val_fraction)
    bgs = split_backgrounds(knobs.val_fraction)
    used = [c for c in cutouts if c.cls in classes]
    palette = voc_palette()
    meta = {
        "name": DATASET_NAME, "version": VERSION, "seed": seed,
        "num_classes": len(classes) + 1, "class_names": ["background", *classes],
        "palette": [palette[3 * i:3 * i + 3] for i in range(len(classes) + 1)],
        "image_size": size, "n_train": n_train, "n_val": n_val, "ignore_index": IGNORE_INDEX,
        "boundary": "SegmentationClass: 1-px band of 255 on the object side of every visible "
                    "outline; SegmentationClassAug: no band",
        "knobs": knobs.to_dict(),
        "objects_by_split": by_split,
        "backgrounds_by_split": {s: [f"{sources.BACKGROUNDS[i][0]}/{sources.BACKGROUNDS[i][1]}" for i in bgs[s]] for s in SPLITS},
        "class_folders": {c: list(sources.CLASS_GROUPS[c]) for c in classes},
        # the packages read (darknet, for pictures only, is left out: it does not change the set)
        "sources": {"packages": sources.package_versions(sources.PACKAGES), "files_digest": sources.files_digest(roots, used)},
    }
    return meta, {"by_split": by_split, "backgrounds": bgs, "classes": classes}


def check_args(n_train: int, n_val: int, seed: int, size: int) -> None:
    if n_train < 1 or n_val < 1:
        raise ObjectsError(f"objects: need n_train >= 1 and n_val >= 1 (got {n_train}, {n_val})")
    if seed < 0:
        raise ObjectsError(f"objects: seed = {seed} must be >= 0")
    if not 64 <= size <= 512:
        raise ObjectsError(f"objects: size = {size} must be in 64..512")


def read_meta(root: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_generated(root: str | Path, meta: dict[str, Any]) -> bool:
    """True if ``root`` holds the complete set ``meta`` describes (every listed image there)."""
    root = Path(root)
    if read_meta(root) != json.loads(json.dumps(meta)):
        return False
    for split, n in (("train", meta["n_train"]), ("val", meta["n_val"])):
        ids = (root / "ImageSets/Segmentation" / f"{split}.txt").read_text().split() if (root / "ImageSets/Segmentation" / f"{split}.txt").is_file() else []
        if len(ids) != n or not all((root / "JPEGImages" / f"{i}.jpg").is_file() for i in ids):
            return False
    return True


def _write_split(tmp: Path, pool: Pool, split: str, n: int, seed: int, size: int, knobs: ObjectKnobs,
                 palette: list[int], tick: Callable[[], None]) -> tuple[dict[str, list[int]], dict[str, Any]]:
    labels: dict[str, list[int]] = {}
    scenes: dict[str, Any] = {}
    for i in range(n):
        iid = f"{split}_{i:05d}"
        image, label, scene = render(image_rng(seed, split, i), pool, size, knobs)
        (tmp / "JPEGImages" / f"{iid}.jpg").write_bytes(jpeg_bytes(image, JPEG_QUALITY))
        (tmp / "SegmentationClass" / f"{iid}.png").write_bytes(png_bytes(boundary_band(label), palette))
        (tmp / "SegmentationClassAug" / f"{iid}.png").write_bytes(png_bytes(label, palette))
        labels[iid] = sorted(int(c) for c in np.unique(label) if 0 < c < IGNORE_INDEX)
        scenes[iid] = scene
        tick()
    return labels, scenes


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


def generate(root: str | Path, n_train: int = 600, n_val: int = 300, seed: int = 0, size: int = 164,
             knobs: ObjectKnobs | None = None, roots: sources.Roots | None = None,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Build the lab under ``root`` (replacing an older aakit-objects set there); its meta.json.

    Raises:
        ObjectsError, sources.SourcesMissing: bad arguments, missing sources, too few cut-outs,
            or ``root`` holds something else; nothing is written then.
    """
    knobs = check_knobs(knobs or DEFAULT_KNOBS)
    check_args(n_train, n_val, seed, size)
    roots = roots or sources.Roots.from_env()
    root = Path(root)
    meta, split = expected_meta(roots, n_train, n_val, seed, size, knobs)
    if root.exists() and not (root.is_dir() and (not any(root.iterdir()) or (read_meta(root) or {}).get("name") == DATASET_NAME)):
        raise ObjectsError(f"{root}: exists and is not an {DATASET_NAME} set; refusing to overwrite it")
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for sub in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
            (tmp / sub).mkdir(parents=True)
        _fill(tmp, roots, meta, split, knobs, progress)
        _swap(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _fill(tmp: Path, roots: sources.Roots, meta: dict[str, Any], split: dict[str, Any], knobs: ObjectKnobs,
          progress: Callable[[int, int], None] | None) -> None:
    total, done = meta["n_train"] + meta["n_val"], [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    palette = voc_palette()
    labels: dict[str, list[int]] = {}
    scenes: dict[str, Any] = {}
    for name in SPLITS:
        pool = make_pool(roots, split["classes"], split["by_split"][name], split["backgrounds"][name])
        lab, sc = _write_split(tmp, pool, name, meta[f"n_{name}"], meta["seed"], meta["image_size"], knobs, palette, tick)
        labels.update(lab)
        scenes.update(sc)
    sets = tmp / "ImageSets" / "Segmentation"
    ids = {s: [i for i in labels if i.startswith(s + "_")] for s in SPLITS}
    for name, key in (("train", "train"), ("train_aug", "train"), ("val", "val")):
        (sets / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids[key]), encoding="utf-8")
    _dump(tmp / "cls_labels.json", labels)
    _dump(tmp / "scenes.json", scenes)
    _dump(tmp / "meta.json", meta)  # last: its presence means complete


def _swap(tmp: Path, root: Path) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    old = root.parent / f".{root.name}.old-{os.getpid()}"
    if root.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(root, old)
    os.replace(tmp, root)
    shutil.rmtree(old, ignore_errors=True)


def describe(meta: dict[str, Any]) -> list[str]:
    """Lines for the CLI: classes and cut-outs per split."""
    by = meta["objects_by_split"]
    lines = [f"{c}: {len(by['train'][c])} train + {len(by['val'][c])} val cut-outs" for c in meta["class_names"][1:]]
    bgs = meta["backgrounds_by_split"]
    return lines + [f"backgrounds: {len(bgs['train'])} train + {len(bgs['val'])} val photos"]
