"""``aakit data check``: find EVERY problem of a VOC-style data set folder, not just the first.

Each problem is a :class:`Problem` with a ``kind`` (see :data:`KINDS`), ``where`` (a path
relative to the root, or the root itself) and a one-line ``message``. An empty list means the
layout is ready for training and evaluation.

Speed: folder listings are read once into sets (no ``stat`` per image), and the per-image work
(decoding a JPEG and a mask) runs in a thread pool; Pillow releases the GIL while decoding.
JPEGs are decoded at 1/8 scale (``Image.draft``), which still reads every byte of the file, so
truncation is caught at a fraction of the cost. ``quick=True`` only reads file headers (sizes,
modes) and skips pixel decoding: no value check, no truncation check.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from aakit.data.voc import (
    AUG_MASK_DIR,
    IMAGE_DIR,
    LABEL_CACHE,
    MASK_DIR,
    META_FILE,
    SPLIT_DIR,
    DataError,
    DatasetInfo,
    ProgressFn,
    bad_mask_values,
    classes_in_mask,
    load_info,
    parse_split_line,
    voc_info,
)

# Every kind of problem, with what it means.
KINDS: dict[str, str] = {
    "missing_folder": "a required folder does not exist",
    "missing_split": "a split list ImageSets/Segmentation/<split>.txt does not exist",
    "empty_split": "a split list has no image id",
    "duplicate_id": "an id appears twice in one split list",
    "missing_image": "an id of a split has no JPEGImages/<id>.jpg",
    "corrupt_image": "a JPEG cannot be opened or decoded",
    "missing_mask": "a train id has no mask, or a val id has no SegmentationClass mask",
    "bad_mask": "a mask cannot be decoded or is not a palette/grey PNG",
    "bad_mask_values": "a mask holds values outside {0..K-1, 255}",
    "size_mismatch": "a mask and its image differ in size",
    "missing_cache": "the image-level label cache cls_labels.json does not exist",
    "bad_cache": "the label cache is malformed or names a class outside 1..K-1",
    "no_labels": "a training image has no (or an empty) entry in the label cache",
    "label_mismatch": "the cached labels of an image differ from the classes in its mask",
    "overlap": "a val image is also listed in a training split",
    "bad_meta": "meta.json is unreadable or inconsistent",
}

DEFAULT_SPLITS = ("train", "train_aug", "val")


@dataclass(frozen=True)
class Problem:
    """One problem: its kind (a key of :data:`KINDS`), where it is, and what is wrong."""

    kind: str
    where: str
    message: str  # does not repeat ``where``

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def summarize(problems: Sequence[Problem]) -> dict[str, int]:
    """Number of problems per kind, in the order of :data:`KINDS`."""
    counts = Counter(p.kind for p in problems)
    return {k: counts[k] for k in KINDS if counts[k]}


# ----------------------------------------------------------------------------- global checks
def _check_meta(root: Path) -> tuple[DatasetInfo, list[Problem]]:
    """Data set info, or VOC's (with the meta's class count if readable) plus a problem."""
    try:
        return load_info(root), []
    except DataError as e:
        info = voc_info()
        try:  # keep the mask value check meaningful when only a later key is wrong
            k = json.loads((root / META_FILE).read_text(encoding="utf-8")).get("num_classes")
            if isinstance(k, int) and not isinstance(k, bool) and 2 <= k <= 255:
                info = DatasetInfo(k, tuple(f"class{i}" for i in range(k)), info.palette)
        except (OSError, ValueError, AttributeError):
            pass
        msg = str(e).removeprefix(f"{root / META_FILE}: ")
        return info, [Problem("bad_meta", META_FILE, msg)]


def _listing(folder: Path) -> set[str]:
    """Names of the files in ``folder`` (empty if it does not exist)."""
    try:
        with os.scandir(folder) as it:
            return {e.name for e in it}
    except OSError:
        return set()


def _read_splits(root: Path, splits: Sequence[str]) -> tuple[dict[str, list[str]], list[Problem]]:
    lists: dict[str, list[str]] = {}
    problems: list[Problem] = []
    for split in splits:
        rel = f"{SPLIT_DIR}/{split}.txt"
        try:
            text = (root / rel).read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(Problem("missing_split", rel, "split file not found"))
            continue
        except (OSError, UnicodeDecodeError) as e:
            problems.append(Problem("missing_split", rel, f"cannot read ({e})"))
            continue
        ids = [i for i in map(parse_split_line, text.splitlines()) if i]
        if not ids:
            problems.append(Problem("empty_split", rel, "split file has no image id"))
        for image_id, n in Counter(ids).items():
            if n > 1:
                msg = f"image {image_id} listed {n} times"
                problems.append(Problem("duplicate_id", rel, msg))
        lists[split] = list(dict.fromkeys(ids))
    return lists, problems


def _read_cache(root: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    path = root / LABEL_CACHE
    if not path.is_file():
        msg = "image-level label cache not found; run `aakit data voc` or `aakit data labels`"
        return None, [Problem("missing_cache", LABEL_CACHE, msg)]
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return None, [Problem("bad_cache", LABEL_CACHE, f"cannot read JSON ({e})")]
    if not isinstance(cache, dict):
        msg = "must be a JSON object {id: [classes]}"
        return None, [Problem("bad_cache", LABEL_CACHE, msg)]
    return cache, []


# ----------------------------------------------------------------------------- per-image checks
@dataclass(frozen=True)
class _Job:
    """What to check for one image id."""

    image_id: str
    image: str | None  # relative path of the JPEG, None if missing
    masks: tuple[str, ...]  # relative paths of the masks to check (train mask first)
    cached: tuple[int, ...] | None  # cached labels to compare with the train mask


def _check_jpeg(
    root: Path, rel: str, image_id: str, quick: bool
) -> tuple[tuple[int, int] | None, list[Problem]]:
    """Problems of one JPEG, and its (width, height) if it opens."""
    try:
        with Image.open(root / rel) as img:
            size = img.size
            if not quick:
                img.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
                img.load()
        return size, []
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        msg = f"image {image_id} cannot be decoded ({e})"
        return None, [Problem("corrupt_image", rel, msg)]


def _check_mask(
    root: Path,
    rel: str,
    image_id: str,
    size: tuple[int, int] | None,
    info: DatasetInfo,
    quick: bool,
) -> tuple[list[int] | None, list[Problem]]:
    """Problems of one mask file, and the classes it holds (None if not decoded)."""
    problems: list[Problem] = []
    try:
        with Image.open(root / rel) as img:
            if img.mode not in ("P", "L"):
                msg = f"mask of image {image_id} has mode {img.mode}, expected a palette (P) PNG"
                return None, [Problem("bad_mask", rel, msg)]
            if size is not None and img.size != size:
                msg = (f"mask is {img.size[0]}x{img.size[1]} but image {image_id} "
                       f"is {size[0]}x{size[1]}")  # fmt: skip
                problems.append(Problem("size_mismatch", rel, msg))
            if quick:
                return None, problems
            mask = np.array(img)
    except (OSError, SyntaxError, ValueError) as e:
        msg = f"mask of image {image_id} cannot be decoded ({e})"
        return None, [Problem("bad_mask", rel, msg)]
    bad = bad_mask_values(mask, info.num_classes)
    if bad:
        msg = f"mask values {bad[:8]} outside 0..{info.num_classes - 1} and 255"
        problems.append(Problem("bad_mask_values", rel, msg))
    return classes_in_mask(mask), problems


def _check_one(root: Path, job: _Job, info: DatasetInfo, quick: bool) -> list[Problem]:
    """Decode one image and its masks; compare the training mask with the cached labels."""
    problems: list[Problem] = []
    size = None
    if job.image is not None:
        size, found = _check_jpeg(root, job.image, job.image_id, quick)
        problems += found
    for n, rel in enumerate(job.masks):
        classes, found = _check_mask(root, rel, job.image_id, size, info, quick)
        problems += found
        stale = job.cached is not None and classes is not None and sorted(job.cached) != classes
        if n == 0 and stale:
            msg = (f"{LABEL_CACHE} lists classes {sorted(job.cached or ())} but {rel} holds "
                   f"{classes}; rebuild with `aakit data labels`")  # fmt: skip
            problems.append(Problem("label_mismatch", job.image_id, msg))
    return problems


# ----------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class _Files:
    """File names present in the three data folders, listed once."""

    images: set[str]
    voc_masks: set[str]
    aug_masks: set[str]

    @classmethod
    def scan(cls, root: Path) -> "_Files":
        return cls(*(_listing(root / d) for d in (IMAGE_DIR, MASK_DIR, AUG_MASK_DIR)))


def _cache_entry(
    cache: dict[str, Any], image_id: str, num_classes: int
) -> tuple[tuple[int, ...] | None, list[Problem]]:
    """The cached labels of a training image, or the problem with them."""
    entry = cache.get(image_id)
    hint = "rebuild with `aakit data labels`"
    if entry is None or entry == []:
        what = "no entry" if entry is None else "an empty entry"
        msg = f"training image has {what} in {LABEL_CACHE}; {hint}"
        return None, [Problem("no_labels", image_id, msg)]
    if not isinstance(entry, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and 1 <= c < num_classes for c in entry
    ):
        msg = f"{LABEL_CACHE} entry must list classes in 1..{num_classes - 1}, got {entry!r}"
        return None, [Problem("bad_cache", image_id, msg)]
    return tuple(entry), []


def _plan(
    image_id: str,
    *,
    train: bool,
    evaluation: bool,
    files: _Files,
    cache: dict[str, Any] | None,
    num_classes: int,
) -> tuple[_Job, list[Problem]]:
    """Problems visible from the listings and the cache alone, and the decoding job left."""
    problems: list[Problem] = []
    jpg, png = f"{image_id}.jpg", f"{image_id}.png"
    if jpg not in files.images:
        rel = f"{IMAGE_DIR}/{jpg}"
        problems.append(Problem("missing_image", rel, f"image {image_id} not found"))
    masks: list[str] = []
    cached = None
    if train:
        if png in files.aug_masks or png in files.voc_masks:
            masks.append(f"{AUG_MASK_DIR if png in files.aug_masks else MASK_DIR}/{png}")
        else:
            msg = f"training image {image_id} has no mask in {AUG_MASK_DIR}/ or {MASK_DIR}/"
            problems.append(Problem("missing_mask", f"{AUG_MASK_DIR}/{png}", msg))
        if cache is not None:
            cached, found = _cache_entry(cache, image_id, num_classes)
            problems += found
    if evaluation:
        rel = f"{MASK_DIR}/{png}"
        if png not in files.voc_masks:
            msg = f"evaluation image {image_id} has no mask"
            problems.append(Problem("missing_mask", rel, msg))
        elif rel not in masks:
            masks.append(rel)
    image = f"{IMAGE_DIR}/{jpg}" if jpg in files.images else None
    return _Job(image_id, image, tuple(masks), cached), problems


# ----------------------------------------------------------------------------- entry point
def check_layout(
    root: str | Path,
    *,
    quick: bool = False,
    splits: Sequence[str] = DEFAULT_SPLITS,
    progress: ProgressFn | None = None,
    workers: int | None = None,
) -> list[Problem]:
    """Every problem of the data set at ``root`` (empty list: all good).

    Args:
        root: ``VOCdevkit/VOC2012`` or a generated benchmark folder.
        quick: read headers only (skip pixel decoding: no value/truncation checks).
        splits: split lists to check; names starting with ``train`` are training splits
            (need a mask in SegmentationClassAug or SegmentationClass, and cached labels),
            the others are evaluation splits (need a SegmentationClass mask).
        progress: ``progress(done, total)`` after each image.
        workers: decoding threads (default: up to 4).
    """
    root = Path(root)
    if not root.is_dir():
        return [Problem("missing_folder", str(root), "data set folder not found")]
    info, problems = _check_meta(root)
    required = [IMAGE_DIR, MASK_DIR, SPLIT_DIR] + ([AUG_MASK_DIR] if "train_aug" in splits else [])
    for d in required:
        if not (root / d).is_dir():
            problems.append(Problem("missing_folder", d, f"folder not found under {root}"))
    lists, found = _read_splits(root, splits)
    problems += found
    cache, found = _read_cache(root)
    problems += found

    train_splits = [s for s in splits if s.startswith("train")]
    train_ids = {i for s in train_splits for i in lists.get(s, [])}
    eval_ids = {i for s in splits if s not in train_splits for i in lists.get(s, [])}
    files = _Files.scan(root)
    jobs: list[_Job] = []
    for image_id in dict.fromkeys(i for s in splits for i in lists.get(s, [])):
        job, found = _plan(
            image_id,
            train=image_id in train_ids,
            evaluation=image_id in eval_ids,
            files=files,
            cache=cache,
            num_classes=info.num_classes,
        )
        problems += found
        jobs.append(job)
        if image_id in train_ids and image_id in eval_ids:
            msg = f"val image {image_id} is also in a training split ({', '.join(train_splits)})"
            problems.append(Problem("overlap", image_id, msg))

    # Decoding is the slow part: threads overlap it (Pillow releases the GIL while decoding).
    n_workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, n_workers)) as pool:
        results = pool.map(lambda job: _check_one(root, job, info, quick), jobs)
        for done, found in enumerate(results, start=1):
            problems += found
            if progress is not None:
                progress(done, len(jobs))
    return problems
