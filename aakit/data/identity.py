"""What identifies a data set: its content, never its path.

A run is identified by what it computes (:meth:`aakit.config.Config.hash`), so the data set
enters that identity through a digest of the files that define it:

* the embedded benchmark: its ``meta.json`` (name, version, seed, sizes and every knob; the
  generator is deterministic, so the same ``meta.json`` means the same images);
* VOC (or any data set without ``meta.json``): the split files the run reads
  (``ImageSets/Segmentation/<split>.txt``) and the image-level label cache ``cls_labels.json``.

Moving or renaming the data set keeps the digest; regenerating it with other knobs, editing a
split or rebuilding the labels from another source changes it. Standard library only: the
config layer imports this module.
(:func:`require_data_root` also lives here, so grids can check their data before importing
the engine.)
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from aakit.errors import AakitError

SPLIT_DIR = "ImageSets/Segmentation"
LABEL_CACHE = "cls_labels.json"
META = "meta.json"


def identity_files(root: str | Path, splits: tuple[str, ...]) -> list[Path]:
    """The files whose bytes identify the data set under ``root`` (existing ones only)."""
    root = Path(root)
    if (root / META).is_file():
        return [root / META]
    names = [f"{SPLIT_DIR}/{s}.txt" for s in sorted(set(splits))] + [LABEL_CACHE]
    return [root / n for n in names if (root / n).is_file()]


def data_digest(root: str | Path, splits: tuple[str, ...] = ()) -> str | None:
    """A 16-hex-digit digest of the data set's defining files; None when there are none
    (the data set is not there yet)."""
    files = identity_files(root, splits)
    if not files:
        return None
    stamp = tuple((str(f), *_stat(f)) for f in files)
    return _digest(stamp)


def _stat(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=64)
def _digest(stamp: tuple[tuple[str, int, int], ...]) -> str:
    """Digest of the files in ``stamp``; cached while their size and mtime stay the same."""
    h = hashlib.sha256()
    for name, _size, _mtime in stamp:
        h.update(Path(name).name.encode() + b"\0")
        h.update(Path(name).read_bytes())
    return h.hexdigest()[:16]


def require_data_root(root: str | Path, preset: str = "voc", where: str = "data.root") -> None:
    """Refuse a data set that is not there, naming its path, before anything is trained."""
    root = Path(root)
    if not root.is_dir():
        hint = (f"aakit data synth --out {root}" if preset == "synthetic"
                else f"aakit data voc --voc {root} --sbd <benchmark_RELEASE>")
        raise AakitError(f"{where} {root}: directory not found (make it with: {hint})")
