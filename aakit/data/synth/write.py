"""The files of a set: each image's JPEG and two label PNGs (by job, in this process or a pool),
the split lists, ``cls_labels.json``, ``scenes.json`` and ``meta.json`` (last), written into a
temporary directory renamed into place when complete; :func:`is_generated` checks a set."""
from __future__ import annotations

import dataclasses
import io
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Unpack

import numpy as np
from PIL import Image

from aakit.data.scene import Knobs, SynthError
from aakit.data.synth.appearance import BACKGROUNDS
from aakit.data.synth.render import render_scene
from aakit.data.synth.spec import SynthOptions, synth_spec
from aakit.data.synth.versions import synth_version
from aakit.labels import IGNORE_INDEX

SYNTH_VERSION = "1.0"  # version 1's (aakit.data.synth.v1.VERSION); kept for old callers
DATASET_NAME = "aakit-synth"
JPEG_QUALITY = 95
SPLITS = ("train", "val")


# ----------------------------------------------------------------------------- palette
def voc_palette() -> list[int]:
    """The 256-entry VOC colour map (flat RGB list); index 255 is (224, 224, 192)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


_PALETTE = voc_palette()


# ----------------------------------------------------------------------------- files
def png_bytes(label: np.ndarray, palette: list[int] = _PALETTE) -> bytes:
    """A (H, W) uint8 label map as palette PNG bytes (the generators' encoding: their digests
    depend on it; the objects set shares it)."""
    im = Image.fromarray(label, mode="P")
    im.putpalette(palette)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """A (H, W, 3) uint8 image as JPEG bytes at ``quality``."""
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def image_id(split: str, index: int) -> str:
    """The id of image ``index`` of ``split``, e.g. ``train_00042``."""
    return f"{split}_{index:05d}"


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


# tmp root, split, index, seed, classes, size, knobs, version
_Job = tuple[str, str, int, int, int, int, Knobs, int]


def _make_one(job: _Job) -> tuple[str, list[int], dict[str, Any]]:
    """Render image ``index`` of ``split`` and write its three files under ``tmp_root``."""
    tmp_root, split, index, seed, n_classes, size, knobs, version = job
    root = Path(tmp_root)
    iid = image_id(split, index)
    rng = _image_rng(seed, split, index)
    v = synth_version(version)
    steps = v.make_steps(knobs, seed, SPLITS.index(split), index)  # None: version 1
    image, label, banded, scene = render_scene(rng, size, v.CLASSES[:n_classes], knobs, steps)
    (root / "JPEGImages" / f"{iid}.jpg").write_bytes(jpeg_bytes(image))
    (root / "SegmentationClass" / f"{iid}.png").write_bytes(png_bytes(banded))
    (root / "SegmentationClassAug" / f"{iid}.png").write_bytes(png_bytes(label))
    present = sorted(int(c) for c in np.unique(label) if 0 < c < IGNORE_INDEX)
    return iid, present, scene




def _meta(
    n_train: int, n_val: int, num_classes: int, size: int, seed: int, knobs: Knobs, version: int = 1
) -> dict[str, Any]:
    v = synth_version(version)
    classes = v.CLASSES[:num_classes]
    return {
        "name": DATASET_NAME,
        "version": v.VERSION,
        "seed": seed,
        "num_classes": num_classes + 1,
        "class_names": ["background"] + [c.name for c in classes],
        "palette": [_PALETTE[3 * i:3 * i + 3] for i in range(num_classes + 1)],
        "image_size": size,
        "n_train": n_train,
        "n_val": n_val,
        "ignore_index": IGNORE_INDEX,
        "boundary": "SegmentationClass: 1-px band of 255 on the object side of every visible "
                    "outline; SegmentationClassAug: no band",
        "classes": [dataclasses.asdict(c) for c in classes],
        "backgrounds": list(BACKGROUNDS),
        "knobs": knobs.to_dict(),
        **v.meta_extra(),
    }



def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def generate(root: str | Path, **options: Unpack[SynthOptions]) -> dict[str, Any]:
    """Generate the benchmark under ``root`` (replacing an older aakit-synth set there).

    Args:
        root: output directory. If it exists it must be empty or an aakit-synth set.
        options: :class:`SynthOptions`.

    Returns:
        The content of ``meta.json``.

    Raises:
        SynthError: bad arguments, or ``root`` holds something else.
    """
    spec = synth_spec(**options)
    n_train, n_val, num_classes, size, seed = spec.n_train, spec.n_val, spec.num_classes, spec.size, spec.seed
    knobs, version, progress = spec.knobs, spec.version, options.get("progress")
    root = Path(root)
    if root.exists() and not _is_replaceable(root):
        raise SynthError(f"{root}: exists and is not an {DATASET_NAME} set; refusing to overwrite it")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
        (tmp / sub).mkdir(parents=True)
    try:
        jobs: list[_Job] = [(str(tmp), sp, i, seed, num_classes, size, knobs, version)
                for sp, n in (("train", n_train), ("val", n_val)) for i in range(n)]
        cls_labels: dict[str, list[int]] = {}
        scenes: dict[str, Any] = {}
        for done, (iid, present, scene) in enumerate(_run(jobs, spec.workers), start=1):
            cls_labels[iid] = present
            scenes[iid] = scene
            if progress is not None:
                progress(done, len(jobs))
        train_ids = [image_id("train", i) for i in range(n_train)]
        val_ids = [image_id("val", i) for i in range(n_val)]
        sets = tmp / "ImageSets" / "Segmentation"
        for name, ids in (("train", train_ids), ("train_aug", train_ids), ("val", val_ids)):
            (sets / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
        _write_json(tmp / "cls_labels.json", {i: cls_labels[i] for i in train_ids + val_ids})
        _write_json(tmp / "scenes.json", {i: scenes[i] for i in train_ids + val_ids})
        meta = _meta(n_train, n_val, num_classes, size, seed, knobs, version)
        _write_json(tmp / "meta.json", meta)  # written last: its presence means complete
        _swap_into_place(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _run(jobs: list[_Job], workers: int) -> Iterator[tuple[str, list[int], dict[str, Any]]]:
    """Results in job order, from this process or a pool (the files do not depend on it)."""
    if workers == 1 or len(jobs) < 2 * workers:
        yield from map(_make_one, jobs)
        return
    # spawn, not fork: the caller may hold threads (torch, a TUI) that fork would copy half-way.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        yield from pool.map(_make_one, jobs, chunksize=max(1, len(jobs) // (8 * workers)))


def _is_replaceable(root: Path) -> bool:
    if not root.is_dir():
        return False
    if not any(root.iterdir()):
        return True
    meta = _read_meta(root)
    return meta is not None and meta.get("name") == DATASET_NAME


def _swap_into_place(tmp: Path, root: Path) -> None:
    """Rename the finished set onto ``root``; an older set is moved aside, then deleted."""
    old = None
    if root.exists():
        old = root.parent / f".{root.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(root, old)
    os.replace(tmp, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _read_meta(root: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((Path(root) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_generated(root: str | Path, **options: Unpack[SynthOptions]) -> bool:
    """True if ``root`` holds a complete set that ``generate`` with these arguments would write.

    Compares ``meta.json`` with the expected one (version and knobs included) and checks that
    the split files list the expected number of images, each with its image file. ``workers``
    and ``progress`` do not change the files: they are accepted (to take the same keyword
    arguments as :func:`generate`) and ignored.
    """
    root = Path(root)
    meta = _read_meta(root)
    spec = synth_spec(**options)
    n_train, n_val = spec.n_train, spec.n_val
    expected = _meta(n_train, n_val, spec.num_classes, spec.size, spec.seed, spec.knobs, spec.version)
    if meta != json.loads(json.dumps(expected)):
        return False
    sets = root / "ImageSets" / "Segmentation"
    try:
        train = (sets / "train.txt").read_text(encoding="utf-8").split()
        val = (sets / "val.txt").read_text(encoding="utf-8").split()
    except OSError:
        return False
    if len(train) != n_train or len(val) != n_val:
        return False
    return all((root / "JPEGImages" / f"{i}.jpg").is_file() for i in train + val)

