"""``aakit data check``: find EVERY problem of a VOC-style data set folder, not just the first.

Each problem is a :class:`Problem` with a ``kind`` (see :data:`KINDS`), ``where`` (a path
relative to the root, or the root itself) and a one-line ``message``. An empty list means the
layout is ready for training and evaluation; so does a list of notes alone (``is_note``).

Speed: folder listings are read once into sets (no ``stat`` per image), and the per-image work
(decoding a JPEG and a mask) runs in a thread pool; Pillow releases the GIL while decoding.
JPEGs are decoded at 1/8 scale (``Image.draft``), which still reads every byte of the file, so
truncation is caught at a fraction of the cost. ``quick=True`` only reads file headers (sizes,
modes) and skips pixel decoding: no value check, no truncation check.

With ``Annotations/`` present the image-level labels follow the XML (see
:func:`aakit.data.voc.parse_annotation`): the cache is compared with the XML, and the images
whose XML objects and mask classes differ are counted in one *note* (``Problem.is_note``),
which is information, not an error: in VOC, small, occluded or difficult objects often have
no pixel in the mask.
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
    ANNOTATION_DIR,
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
    parse_annotation,
    parse_split_line,
    voc_info,
)
from aakit.labels import IGNORE_INDEX

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
    "missing_xml": "Annotations/ exists but an id of a split has no Annotations/<id>.xml",
    "bad_xml": "an annotation XML is malformed or has an object without a <name>",
    "xml_mask_disagreement": "note: images whose XML objects and mask classes differ",
    "xml_unknown_class": "note: XML object names outside the class list (left out, as psa does)",
}

# Kinds that inform without failing the check (``aakit data check`` exits 0 on notes alone).
NOTE_KINDS = frozenset({"xml_mask_disagreement", "xml_unknown_class"})
EXAMPLES = 5  # images named in a note; all are counted
REBUILD = "rebuild with `aakit data voc --voc ROOT`"

DEFAULT_SPLITS = ("train", "train_aug", "val")


@dataclass(frozen=True)
class Problem:
    """One problem: its kind (a key of :data:`KINDS`), where it is, and what is wrong."""

    kind: str
    where: str
    message: str  # does not repeat ``where``

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    @property
    def is_note(self) -> bool:
        """True for information that does not make the layout unusable (:data:`NOTE_KINDS`)."""
        return self.kind in NOTE_KINDS


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
        msg = "image-level label cache not found; run `aakit data voc --voc ROOT`"
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
    cached: tuple[int, ...] | None  # cached labels to compare with the label source
    xml: str | None = None  # relative path of the annotation XML, None if absent
    from_xml: bool = False  # labels follow the XML (Annotations/ exists), not the mask


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
        msg = f"mask values {bad[:8]} outside 0..{info.num_classes - 1} and {IGNORE_INDEX}"
        problems.append(Problem("bad_mask_values", rel, msg))
    return classes_in_mask(mask), problems


@dataclass(frozen=True)
class _Outcome:
    """What checking one image found."""

    problems: list[Problem]
    xml_classes: list[int] | None = None  # classes the XML names (None: no XML or unreadable)
    mask_classes: list[int] | None = None  # classes in the first mask (None: not decoded)
    unknown: tuple[str, ...] = ()  # XML object names outside the class list


def _check_xml(
    root: Path, rel: str, info: DatasetInfo
) -> tuple[list[int] | None, tuple[str, ...], list[Problem]]:
    """Classes and unknown names of one annotation XML, or the problem with it."""
    try:
        classes, unknown = parse_annotation(root / rel, info.class_names)
    except DataError as e:
        msg = str(e).removeprefix(f"{root / rel}: ")
        return None, (), [Problem("bad_xml", rel, msg)]
    return classes, tuple(unknown), []


def _stale(job: _Job, reference: list[int] | None, rel: str, verb: str) -> list[Problem]:
    """A label_mismatch problem if the cached labels differ from ``reference``."""
    if job.cached is None or reference is None or sorted(job.cached) == reference:
        return []
    msg = (f"{LABEL_CACHE} lists classes {sorted(job.cached)} but {rel} {verb} "
           f"{reference}; {REBUILD}")  # fmt: skip
    return [Problem("label_mismatch", job.image_id, msg)]


def _check_one(root: Path, job: _Job, info: DatasetInfo, quick: bool) -> _Outcome:
    """Decode one image, its masks and XML; compare the cached labels with their source."""
    problems: list[Problem] = []
    size = None
    if job.image is not None:
        size, found = _check_jpeg(root, job.image, job.image_id, quick)
        problems += found
    first: list[int] | None = None
    for n, rel in enumerate(job.masks):
        classes, found = _check_mask(root, rel, job.image_id, size, info, quick)
        problems += found
        if n == 0:
            first = classes
            if not job.from_xml:
                problems += _stale(job, classes, rel, "holds")
    if job.xml is None:
        return _Outcome(problems, mask_classes=first)
    xml_classes, unknown, found = _check_xml(root, job.xml, info)
    problems += found + _stale(job, xml_classes, job.xml, "names")
    return _Outcome(problems, xml_classes, first, unknown)


def _notes(outcomes: Sequence[tuple[str, _Outcome]]) -> list[Problem]:
    """The XML-vs-mask disagreements and unknown XML names, each as one counted note."""
    differ = [(i, o.xml_classes, o.mask_classes) for i, o in outcomes
              if o.xml_classes is not None and o.mask_classes is not None
              and o.xml_classes != o.mask_classes]  # fmt: skip
    notes: list[Problem] = []
    if differ:
        more_xml = sum(1 for _, x, m in differ if set(x or ()) - set(m or ()))
        more_mask = sum(1 for _, x, m in differ if set(m or ()) - set(x or ()))
        shown = "; ".join(f"{i} XML {x} mask {m}" for i, x, m in differ[:EXAMPLES])
        msg = (f"{len(differ)} image(s) where the XML objects and the mask classes differ "
               f"({more_xml} with an XML class absent from the mask, {more_mask} with a mask "
               f"class absent from the XML); labels follow the XML; e.g. {shown}")  # fmt: skip
        notes.append(Problem("xml_mask_disagreement", ANNOTATION_DIR, msg))
    odd = [(i, o.unknown) for i, o in outcomes if o.unknown]
    if odd:
        names = sorted({n for _, u in odd for n in u})
        shown = "; ".join(f"{i}.xml {list(u)}" for i, u in odd[:EXAMPLES])
        msg = (f"{len(odd)} XML file(s) name objects outside the class list, left out as psa "
               f"does: {names[:EXAMPLES * 2]}; e.g. {shown}")  # fmt: skip
        notes.append(Problem("xml_unknown_class", ANNOTATION_DIR, msg))
    return notes


# ----------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class _Files:
    """File names present in the data folders, listed once."""

    images: set[str]
    voc_masks: set[str]
    aug_masks: set[str]
    xmls: set[str] | None  # None when there is no Annotations/ folder

    @classmethod
    def scan(cls, root: Path) -> "_Files":
        folders = [_listing(root / d) for d in (IMAGE_DIR, MASK_DIR, AUG_MASK_DIR)]
        xml_dir = root / ANNOTATION_DIR
        return cls(*folders, _listing(xml_dir) if xml_dir.is_dir() else None)


def _cache_entry(
    cache: dict[str, Any], image_id: str, num_classes: int
) -> tuple[tuple[int, ...] | None, list[Problem]]:
    """The cached labels of a training image, or the problem with them."""
    entry = cache.get(image_id)
    hint = REBUILD
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
    xml = None
    if files.xmls is not None:
        xml = f"{ANNOTATION_DIR}/{image_id}.xml"
        if f"{image_id}.xml" not in files.xmls:
            msg = f"image {image_id} has no annotation (`aakit data voc` reads labels from it)"
            problems.append(Problem("missing_xml", xml, msg))
            xml = None
    image = f"{IMAGE_DIR}/{jpg}" if jpg in files.images else None
    job = _Job(image_id, image, tuple(masks), cached, xml, files.xmls is not None)
    return job, problems


# ----------------------------------------------------------------------------- entry point
def check_layout(
    root: str | Path,
    *,
    quick: bool = False,
    splits: Sequence[str] = DEFAULT_SPLITS,
    progress: ProgressFn | None = None,
    workers: int | None = None,
) -> list[Problem]:
    """Every problem of the data set at ``root``, notes last (none but notes: all good).

    With ``Annotations/``, every id needs an XML, the cache is compared with the XML, and one
    note counts the images whose XML and mask disagree (needs decoding: not with ``quick``).

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
        outcomes: list[tuple[str, _Outcome]] = []
        for done, (job, outcome) in enumerate(zip(jobs, results), start=1):
            problems += outcome.problems
            outcomes.append((job.image_id, outcome))
            if progress is not None:
                progress(done, len(jobs))
    return problems + _notes(outcomes)
