"""PASCAL VOC 2012 layout (and the embedded benchmark, which uses the same layout).

::

    ROOT/                              e.g. data/VOCdevkit/VOC2012
      JPEGImages/<id>.jpg
      SegmentationClass/<id>.png       palette PNG, value = class index, 255 = boundary
      SegmentationClassAug/<id>.png    VOC + SBD masks (see aakit.data.sbd)
      ImageSets/Segmentation/{train,train_aug,val}.txt
      Annotations/<id>.xml             VOC object annotations (source of the image-level labels)
      cls_labels.json                  {id: [class indices 1..K present]}, made once (see below)
      cls_labels.source.json           {"source": "xml" | "masks" | "mixed"}: where the labels came from
      meta.json                        only for non-VOC data sets (the embedded benchmark)

Image-level labels follow psa / RRM: the classes named by the ``<object>`` elements of
``Annotations/<id>.xml``, ``difficult`` objects included (an object may have no pixel in the
mask). Without ``Annotations/`` (the embedded benchmark) they are the classes present in the mask.

Class indices: 0 is background, 1..K are the K = num_classes - 1 object classes. The image-level
label vector of an image has K entries; entry ``c - 1`` is 1 when class ``c`` is present.

The training loader in image-level mode reads only JPEGs and ``cls_labels.json``: it never
opens a mask, so no pixel label can leak into weakly supervised training. Two diagnostics are
the exceptions, both named as such: ``loss.aa_confidence: oracle`` (V from the masks, a bound,
not the paper's method) and the mechanism probe (:meth:`TrainDataset.probe`, which only measures).
"""
from __future__ import annotations

import io
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np
import torch
from PIL import Image

from aakit.data.transforms import TrainTransform, normalize
from aakit.errors import AakitError
from aakit.labels import IGNORE_INDEX
from aakit.files import atomic_write_bytes, atomic_write_json

# ----------------------------------------------------------------------------- constants
IMAGE_DIR = "JPEGImages"
MASK_DIR = "SegmentationClass"
AUG_MASK_DIR = "SegmentationClassAug"
SPLIT_DIR = "ImageSets/Segmentation"
ANNOTATION_DIR = "Annotations"
LABEL_CACHE = "cls_labels.json"
LABEL_SOURCE = "cls_labels.source.json"  # beside the cache: its format stays {id: [classes]}
META_FILE = "meta.json"

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

Palette = Sequence[Sequence[int]] | np.ndarray  # (n, 3) colours, index = class

# A progress callback: ``progress(done, total)`` after each item (as aakit.data.synth and the
# CLI's progress bar use it). A function with several passes starts again from 1 each pass.
ProgressFn = Callable[[int, int], None]


class DataError(AakitError):
    """A problem with the data set on disk; the message names the file or the image id."""


# ----------------------------------------------------------------------------- palette
def voc_palette(n: int = 256) -> np.ndarray:
    """The VOC colour map: (n, 3) uint8. Index i spreads its bits over R, G, B from the top bit.

    Index 0 is black, 1 is (128, 0, 0), ..., 255 is (224, 224, 192), the boundary colour.
    """
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def full_palette(palette: Palette | None) -> np.ndarray:
    """A 256-entry palette: the given colours first, VOC colours for the remaining indices."""
    pal = voc_palette(256)
    if palette is not None:
        given = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:256]
        pal[: len(given)] = given
    return pal


def mask_to_png_bytes(mask: np.ndarray, palette: Palette | None = None) -> bytes:
    """Encode a (H, W) mask of class indices as palette PNG bytes (deterministic)."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError("mask values must lie in 0..255")
    img = Image.fromarray(np.ascontiguousarray(mask.astype(np.uint8)))  # mode L
    img.putpalette(full_palette(palette).reshape(-1).tolist())  # L + palette -> mode P
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_mask_png(path: str | Path, mask: np.ndarray, palette: Palette | None = None) -> None:
    """Write a (H, W) mask as a palette PNG, atomically (temp file + ``os.replace``)."""
    atomic_write_bytes(Path(path), mask_to_png_bytes(mask, palette))


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask PNG as (H, W) uint8 palette indices (not colours).

    Raises:
        DataError: missing, undecodable, or not a single-channel (palette/grey) image.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode not in ("P", "L"):
                raise DataError(
                    f"{path}: mask must be a palette (P) or grey (L) PNG, got mode {mode}"
                )
            arr = np.array(img)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: mask file not found") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: cannot decode mask ({e})") from None
    return arr.astype(np.uint8, copy=False)


def bad_mask_values(mask: np.ndarray, num_classes: int) -> list[int]:
    """Values of ``mask`` outside {0..num_classes-1, 255}, sorted (empty list if none)."""
    counts = np.bincount(mask.reshape(-1), minlength=256)
    present = np.flatnonzero(counts)
    return [int(v) for v in present if v >= num_classes and v != IGNORE_INDEX]


def classes_in_mask(mask: np.ndarray) -> list[int]:
    """Object classes present in a mask: values other than background 0 and ignore 255."""
    counts = np.bincount(mask.reshape(-1), minlength=256)
    return [int(v) for v in np.flatnonzero(counts) if v not in (0, IGNORE_INDEX)]


def read_checked_mask(path: str | Path, num_classes: int) -> np.ndarray:
    """:func:`read_mask` plus a value check against {0..num_classes-1, 255}."""
    mask = read_mask(path)
    bad = bad_mask_values(mask, num_classes)
    if bad:
        shown = ", ".join(map(str, bad[:8])) + (" ..." if len(bad) > 8 else "")
        raise DataError(
            f"{path}: mask values {shown} outside 0..{num_classes - 1} and {IGNORE_INDEX} (ignore)"
        )
    return mask


# ----------------------------------------------------------------------------- data set info
@dataclass(frozen=True)
class DatasetInfo:
    """What a data set is: its classes (background first) and their colours."""

    num_classes: int
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    name: str = "voc2012"
    version: str | None = None
    image_size: int | None = None

    @property
    def num_object_classes(self) -> int:
        """K: classes other than background (length of an image-level label vector)."""
        return self.num_classes - 1


def voc_info() -> DatasetInfo:
    """The 21 PASCAL VOC classes with the standard VOC colours."""
    pal = voc_palette(len(VOC_CLASSES))
    return DatasetInfo(
        num_classes=len(VOC_CLASSES),
        class_names=VOC_CLASSES,
        palette=tuple(tuple(int(v) for v in c) for c in pal),  # type: ignore[misc]
    )


def _meta_error(path: Path, msg: str) -> DataError:
    return DataError(f"{path}: {msg}")


def parse_meta(meta: Any, path: Path) -> DatasetInfo:
    """Check and convert the content of ``meta.json`` (``path`` is used in messages only)."""
    if not isinstance(meta, dict):
        raise _meta_error(path, "must be a JSON object")
    k = meta.get("num_classes")
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 255:
        raise _meta_error(path, f"key num_classes must be an integer in 2..255, got {k!r}")
    names = meta.get("class_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _meta_error(path, "key class_names must be a list of strings")
    if len(names) != k:
        raise _meta_error(path, f"key class_names has {len(names)} names but num_classes is {k}")
    if len(set(names)) != len(names):
        raise _meta_error(path, "key class_names has duplicate names")
    pal = meta.get("palette")
    if pal is None:
        palette = tuple(tuple(int(v) for v in c) for c in voc_palette(k))
    else:
        ok = isinstance(pal, list) and all(
            isinstance(c, list) and len(c) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
            for c in pal
        )  # fmt: skip
        if not ok:
            raise _meta_error(path, "key palette must be a list of [r, g, b] integers in 0..255")
        if len(pal) < k:
            raise _meta_error(path, f"key palette has {len(pal)} colours but num_classes is {k}")
        palette = tuple(tuple(c) for c in pal[:k])
    size = meta.get("image_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise _meta_error(path, f"key image_size must be a positive integer, got {size!r}")
    version = meta.get("version")
    return DatasetInfo(
        num_classes=k,
        class_names=tuple(names),
        palette=palette,  # type: ignore[arg-type]
        name=str(meta.get("name", path.parent.name)),
        version=None if version is None else str(version),
        image_size=size,
    )


def load_info(root: str | Path) -> DatasetInfo:
    """Classes of the data set at ``root``: ``meta.json`` if present, else the 21 VOC classes.

    Raises:
        DataError: ``meta.json`` unreadable or inconsistent (names the key).
    """
    path = Path(root) / META_FILE
    if not path.exists():
        return voc_info()
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _meta_error(path, f"cannot read JSON ({e})") from None
    return parse_meta(meta, path)


# ----------------------------------------------------------------------------- paths and splits
def split_path(root: str | Path, split: str) -> Path:
    return Path(root) / SPLIT_DIR / f"{split}.txt"


def image_path(root: str | Path, image_id: str) -> Path:
    return Path(root) / IMAGE_DIR / f"{image_id}.jpg"


def parse_split_line(line: str) -> str | None:
    """Image id of one split line; accepts ``id`` or psa-style ``/JPEGImages/id.jpg ...``."""
    tok = line.strip().split()
    if not tok:
        return None
    first = tok[0]
    return Path(first).stem if "/" in first or first.endswith(".jpg") else first


def read_split(root: str | Path, split: str) -> list[str]:
    """Image ids of ``ImageSets/Segmentation/<split>.txt``, in file order.

    Raises:
        DataError: the list is missing or empty (names the file).
    """
    path = split_path(root, split)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: split file not found (split {split!r})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read split file ({e})") from None
    ids = [i for i in map(parse_split_line, text.splitlines()) if i]
    if not ids:
        raise DataError(f"{path}: split file is empty (split {split!r})")
    return ids


def mask_dirs_for_split(split: str) -> tuple[str, str]:
    """Mask folders to look in, in order: train splits prefer the augmented set, others VOC's."""
    if split.startswith("train"):
        return (AUG_MASK_DIR, MASK_DIR)
    return (MASK_DIR, AUG_MASK_DIR)


def find_mask(
    root: str | Path, image_id: str, dirs: Sequence[str] = (AUG_MASK_DIR, MASK_DIR)
) -> Path:
    """Path of the first existing ``<dir>/<id>.png`` among ``dirs``.

    Raises:
        DataError: no folder has a mask for the id.
    """
    root = Path(root)
    for d in dirs:
        p = root / d / f"{image_id}.png"
        if p.is_file():
            return p
    tried = ", ".join(f"{d}/{image_id}.png" for d in dirs)
    raise DataError(f"image {image_id}: no mask found under {root} (tried {tried})")


def load_image(root: str | Path, image_id: str) -> np.ndarray:
    """The RGB image of ``image_id`` as (H, W, 3) uint8.

    Raises:
        DataError: missing or corrupt JPEG (names the id).
    """
    path = image_path(root, image_id)
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"image {image_id}: file not found: {path}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"image {image_id}: corrupt image {path} ({e})") from None


# ----------------------------------------------------------------------------- label cache
def _cache_hint() -> str:
    return "run `aakit data voc --voc ROOT` to build it"


def read_label_cache(root: str | Path) -> dict[str, list[int]]:
    """Content of ``ROOT/cls_labels.json``.

    Raises:
        DataError: missing or malformed cache.
    """
    path = Path(root) / LABEL_CACHE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: image-level label cache not found; {_cache_hint()}") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read label cache ({e}); {_cache_hint()}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: label cache must be a JSON object {{id: [classes]}}")
    for key, value in data.items():
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise DataError(f"{path}: entry {key!r} must be a list of class indices")
    return data


def labels_to_vector(classes: Iterable[int], num_classes: int) -> np.ndarray:
    """Class indices 1..K -> (K,) float32 multi-hot vector (entry c - 1 for class c)."""
    vec = np.zeros(num_classes - 1, dtype=np.float32)
    for c in classes:
        vec[c - 1] = 1.0
    return vec


def load_image_labels(
    root: str | Path, ids: Sequence[str], num_classes: int | None = None
) -> np.ndarray:
    """Image-level labels of ``ids`` from the cache: (N, K) float32, K = num_classes - 1.

    Raises:
        DataError: cache missing, an id without entry, without any object class, or with a
        class index outside 1..K (each names the id).
    """
    if num_classes is None:
        num_classes = load_info(root).num_classes
    cache = read_label_cache(root)
    path = Path(root) / LABEL_CACHE
    out = np.zeros((len(ids), num_classes - 1), dtype=np.float32)
    for n, image_id in enumerate(ids):
        classes = cache.get(image_id)
        if classes is None:
            raise DataError(f"{path}: no entry for image {image_id}; {_cache_hint()}")
        if not classes:
            raise DataError(f"{path}: image {image_id} has no object label (only background)")
        bad = [c for c in classes if not 1 <= c < num_classes]
        if bad:
            msg = f"{path}: image {image_id} has class {bad[0]} outside 1..{num_classes - 1}"
            raise DataError(msg)
        out[n] = labels_to_vector(classes, num_classes)
    return out


# ----------------------------------------------------------------------------- annotations XML
def annotation_path(root: str | Path, image_id: str) -> Path:
    return Path(root) / ANNOTATION_DIR / f"{image_id}.xml"


def parse_annotation(path: str | Path, class_names: Sequence[str]) -> tuple[list[int], list[str]]:
    """Classes named by the ``<object>`` elements of a VOC annotation XML, and unknown names.

    psa's rule: every object counts, ``difficult`` ones included; names outside
    ``class_names[1:]`` (background excluded) are left out, and returned as the second item.

    Returns:
        (sorted class indices 1..K, unknown object names in file order).

    Raises:
        DataError: missing or malformed file, or an object without a ``<name>`` (names the file).
    """
    path = Path(path)
    index = {name: c for c, name in enumerate(class_names) if c > 0}
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        raise DataError(f"{path}: annotation file not found") from None
    except ET.ParseError as e:
        raise DataError(f"{path}: malformed XML ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read annotation ({e})") from None
    classes: set[int] = set()
    unknown: list[str] = []
    for n, obj in enumerate(tree.getroot().iter("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DataError(f"{path}: object {n} has no <name>")
        if name in index:
            classes.add(index[name])
        else:
            unknown.append(name)
    return sorted(classes), unknown


def label_source(root: str | Path) -> Literal["xml", "masks"]:
    """Where :func:`build_label_cache` takes labels from: ``xml`` if ``Annotations/`` exists."""
    return "xml" if (Path(root) / ANNOTATION_DIR).is_dir() else "masks"


def fallback_warning(root: str | Path) -> str | None:
    """One-line warning when the labels must come from the masks (None when XMLs are used)."""
    if label_source(root) == "xml":
        return None
    return (f"warning: no {ANNOTATION_DIR}/ under {root}: image-level labels taken from the "
            "masks, not from the XML as psa/RRM do (objects without pixels are left out)")  # fmt: skip


def read_label_source(root: str | Path) -> str | None:
    """``xml``, ``masks`` or ``mixed`` from ``cls_labels.source.json``; None if absent/unreadable."""
    try:
        data = json.loads((Path(root) / LABEL_SOURCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    source = data.get("source") if isinstance(data, dict) else None
    return source if isinstance(source, str) else None


# ----------------------------------------------------------------------------- label cache build
@dataclass(frozen=True)
class LabelBuild:
    """Result of :func:`build_image_labels`."""

    cache: dict[str, list[int]]  # the whole cache written
    source: str  # "xml" or "masks" for the ids built now; "mixed" recorded if kept ids differ
    warning: str | None  # the fallback warning, None when the XMLs were used


def _split_ids(root: Path, splits: Sequence[str]) -> list[str]:
    """Ids of ``splits`` in order, each once."""
    return list(dict.fromkeys(i for split in splits for i in read_split(root, split)))


def build_image_labels(
    root: str | Path,
    splits: Sequence[str],
    *,
    progress: ProgressFn | None = None,
) -> LabelBuild:
    """Make ``ROOT/cls_labels.json`` for the ids of ``splits``; record its source beside it.

    From ``Annotations/<id>.xml`` (:func:`parse_annotation`) when ``Annotations/`` exists, else
    from the masks (``SegmentationClassAug`` first, then ``SegmentationClass``) with a warning.
    Entries of ids outside ``splits`` already in the cache are kept. Written atomically.

    Raises:
        DataError: a split file is missing; an XML is missing or malformed (with
        ``Annotations/``); a mask is missing, corrupt or has bad values (without).
    """
    root = Path(root)
    info = load_info(root)
    source = label_source(root)
    ids = _split_ids(root, splits)
    try:
        cache = read_label_cache(root)
    except DataError:
        cache = {}
    kept = set(cache) - set(ids)
    for n, image_id in enumerate(ids, start=1):
        if source == "xml":
            cache[image_id] = parse_annotation(annotation_path(root, image_id), info.class_names)[0]
        else:
            mask = read_checked_mask(find_mask(root, image_id), info.num_classes)
            cache[image_id] = classes_in_mask(mask)
        if progress is not None:
            progress(n, len(ids))
    recorded = source if not kept or read_label_source(root) == source else "mixed"
    cache = dict(sorted(cache.items()))
    atomic_write_json(root / LABEL_CACHE, cache)
    atomic_write_json(root / LABEL_SOURCE, {"source": recorded})
    return LabelBuild(cache, source, fallback_warning(root))


def build_label_cache(
    root: str | Path,
    splits: Sequence[str],
    *,
    progress: ProgressFn | None = None,
) -> dict[str, list[int]]:
    """:func:`build_image_labels`, returning the whole cache written (the warning is dropped)."""
    return build_image_labels(root, splits, progress=progress).cache


# ----------------------------------------------------------------------------- datasets
def check_same_size(image_id: str, mask_file: Path, mask: np.ndarray, image: np.ndarray) -> None:
    """Raise DataError if a mask and its image differ in size."""
    if mask.shape != image.shape[:2]:
        raise DataError(
            f"image {image_id}: mask {mask_file} is {mask.shape[1]}x{mask.shape[0]}, "
            f"image is {image.shape[1]}x{image.shape[0]}"
        )


def _first(ids: list[str], max_images: int | None) -> list[str]:
    return ids if max_images is None else ids[: max(0, max_images)]


def require_train_masks(root: Path, split: str, ids: list[str]) -> None:
    """``loss.aa_confidence: oracle`` needs a ground-truth mask for every training image: refuse
    in one line, before training, naming how many images lack one."""
    dirs = mask_dirs_for_split(split)
    missing = [i for i in ids if not any((root / d / f"{i}.png").is_file() for d in dirs)]
    if missing:
        raise DataError(f"loss.aa_confidence = oracle needs the ground-truth mask of every training image: "
                        f"{len(missing)} of {len(ids)} images of {split} have none under {root} "
                        f"({' or '.join(dirs)}/{missing[0]}.png); the oracle is a diagnostic for data with masks")


class TrainDataset(torch.utils.data.Dataset):
    """Augmented training crops with image-level labels (or masks, ``supervision="full"``).

    Each item: ``image`` float32 (3, crop, crop) normalised; ``raw`` uint8 (crop, crop, 3) the
    same crop un-normalised (for the CRF; its padding is the mean colour with ``pad_mode="rrm"``,
    black with ``"ignore"``); ``valid`` bool (crop, crop), False on padding;
    ``labels`` float32 (K,); ``id`` str; and, only with ``supervision="full"`` or ``masks=True``,
    ``mask`` int64 (crop, crop) with 255 on padding. ``masks=True`` is for
    ``loss.aa_confidence: oracle`` (a diagnostic whose V is whether the pseudo label is right):
    every training image must have a mask, checked here (:class:`DataError` naming how many lack one).
    :meth:`probe` gives an item without augmentation (the centre crop), with its mask where one exists.

    Randomness: in a DataLoader worker the generator is seeded from the worker's torch seed
    (different every epoch, reproducible from the torch seed); in the main process from
    ``seed`` (or torch's initial seed). :meth:`sample` takes an explicit generator.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        crop: int,
        scale_range: tuple[float, float],
        flip: bool,
        mean: Sequence[float],
        std: Sequence[float],
        max_images: int | None = None,
        supervision: Literal["image", "full"] = "image",
        seed: int | None = None,
        pad_mode: Literal["rrm", "ignore"] = "rrm",
        masks: bool = False,
    ) -> None:
        if supervision not in ("image", "full"):
            raise ValueError(f"supervision must be 'image' or 'full', got {supervision!r}")
        self.root = Path(root)
        self.split = split
        self.info = load_info(self.root)
        self.ids = _first(read_split(self.root, split), max_images)
        self.labels = load_image_labels(self.root, self.ids, self.info.num_classes)
        self.supervision = supervision
        self.masks = masks or supervision == "full"
        if masks:
            require_train_masks(self.root, split, self.ids)
        self.transform = TrainTransform(
            crop=crop,
            scale_range=(float(scale_range[0]), float(scale_range[1])),
            flip=flip,
            mean=tuple(float(m) for m in mean),  # type: ignore[arg-type]
            std=tuple(float(s) for s in std),  # type: ignore[arg-type]
            pad_mode=pad_mode,
        )
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._rng_owner: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def _generator(self) -> np.random.Generator:
        """This process's generator, made on first use (forked workers make their own)."""
        worker = torch.utils.data.get_worker_info()
        owner = (os.getpid(), worker.id if worker is not None else -1)
        if self._rng is None or self._rng_owner != owner:
            if worker is not None:
                seed = worker.seed  # base seed of this epoch's loader + worker id
            else:
                seed = self.seed if self.seed is not None else torch.initial_seed()
            self._rng = np.random.default_rng(seed)
            self._rng_owner = owner
        return self._rng

    def sample(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """Item ``index`` augmented with draws from ``rng``."""
        image_id = self.ids[index]
        image = load_image(self.root, image_id)
        mask = self._mask(image_id, image) if self.masks else None
        return self._item(index, self.transform(image, mask, rng=rng))

    def probe(self, index: int) -> dict[str, Any]:
        """Item ``index`` without augmentation: no rescale or flip, the centre crop; its mask when
        the data set has one for it (evaluation of the mechanism only, never a training target)."""
        image_id = self.ids[index]
        image = load_image(self.root, image_id)
        dirs = mask_dirs_for_split(self.split)
        has_mask = any((self.root / d / f"{image_id}.png").is_file() for d in dirs)
        mask = self._mask(image_id, image) if has_mask else None
        return self._item(index, self.transform.centre(image, mask))

    def _mask(self, image_id: str, image: np.ndarray) -> np.ndarray:
        mask_file = find_mask(self.root, image_id, mask_dirs_for_split(self.split))
        mask = read_checked_mask(mask_file, self.info.num_classes)
        check_same_size(image_id, mask_file, mask, image)
        return mask

    def _item(self, index: int, out: dict[str, np.ndarray]) -> dict[str, Any]:
        mask = out.get("mask")
        item: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1))),
            "raw": torch.from_numpy(out["raw"]),
            "valid": torch.from_numpy(out["valid"]),
            "labels": torch.from_numpy(self.labels[index].copy()),
            "id": self.ids[index],
        }
        if mask is not None:
            item["mask"] = torch.from_numpy(mask.astype(np.int64))
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.sample(index, self._generator())


class EvalDataset(torch.utils.data.Dataset):
    """Full-size images with their ground-truth masks, for evaluation.

    Each item: ``image`` float32 (3, H, W) normalised; ``raw`` uint8 (H, W, 3); ``mask`` int64
    (H, W) (255 = ignore); ``labels`` float32 (K,) from the mask; ``id`` str. Masks come from
    ``SegmentationClass`` first for val/test splits, ``SegmentationClassAug`` first for train
    splits. Every mask is located when the data set is made, so a missing one fails early.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        max_images: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.info = load_info(self.root)
        self.ids = _first(read_split(self.root, split), max_images)
        dirs = mask_dirs_for_split(split)
        self.mask_paths = [find_mask(self.root, i, dirs) for i in self.ids]
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_id = self.ids[index]
        raw = load_image(self.root, image_id)
        mask = read_checked_mask(self.mask_paths[index], self.info.num_classes)
        check_same_size(image_id, self.mask_paths[index], mask, raw)
        image = normalize(raw, self.mean, self.std).transpose(2, 0, 1)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "raw": torch.from_numpy(raw),
            "mask": torch.from_numpy(mask.astype(np.int64)),
            "labels": torch.from_numpy(
                labels_to_vector(classes_in_mask(mask), self.info.num_classes)
            ),
            "id": image_id,
        }
