"""Build the augmented training set ``train_aug`` from SBD (Hariharan et al., 2011).

SBD (``benchmark_RELEASE``) stores one MATLAB file per image, ``dataset/cls/<id>.mat``, holding
a struct ``GTcls`` whose field ``Segmentation`` is the (H, W) uint8 class-index mask (0 =
background, 1..20 = VOC classes). The converter writes those masks as VOC palette PNGs into
``SegmentationClassAug/``, where VOC's own masks win for the ids they cover (they are more
precise and mark object boundaries with 255), and writes the usual split::

    train_aug = (SBD train + SBD val + VOC train) - VOC val      # 10,582 images for VOC 2012

VOC val is removed so that no validation image is ever trained on. Finally the image-level label
cache is built from the masks. Every file is written atomically; a file whose bytes would not
change is left alone, so an interrupted conversion can simply be run again.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aakit.data.voc import (
    AUG_MASK_DIR,
    LABEL_CACHE,
    MASK_DIR,
    SPLIT_DIR,
    DataError,
    ProgressFn,
    bad_mask_values,
    build_label_cache,
    load_info,
    mask_to_png_bytes,
    read_checked_mask,
    read_split,
    split_path,
)
from aakit.files import atomic_write_bytes, atomic_write_text


@dataclass
class ConvertReport:
    """What :func:`convert_sbd` did."""

    sbd_converted: int  # masks written from SBD .mat files
    voc_copied: int  # VOC SegmentationClass masks copied into SegmentationClassAug
    unchanged: int  # of the above, files already present with identical bytes
    train_aug: int  # images in train_aug.txt
    val_excluded: int  # SBD images dropped because they belong to VOC val
    train_aug_path: Path
    label_cache_path: Path


def find_sbd_dataset(sbd_root: str | Path) -> Path:
    """The folder holding ``cls/``, ``train.txt`` and ``val.txt``.

    ``sbd_root`` may be ``benchmark_RELEASE`` or its ``dataset/`` folder.

    Raises:
        DataError: no ``cls`` folder or a missing list file (names the path).
    """
    root = Path(sbd_root)
    if not root.is_dir():
        raise DataError(f"{root}: SBD folder not found")
    dataset = root / "dataset" if (root / "dataset" / "cls").is_dir() else root
    if not (dataset / "cls").is_dir():
        raise DataError(
            f"{root}: not an SBD folder (expected {root / 'dataset' / 'cls'} or {root / 'cls'})"
        )
    for name in ("train.txt", "val.txt"):
        if not (dataset / name).is_file():
            raise DataError(f"{dataset / name}: SBD list file not found")
    return dataset


def read_id_list(path: Path) -> list[str]:
    """Non-empty lines of an id list (SBD's train.txt / val.txt)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read id list ({e})") from None


def read_sbd_mat(path: str | Path) -> np.ndarray:
    """The ``GTcls.Segmentation`` mask of one SBD ``.mat`` file as (H, W) uint8.

    Raises:
        DataError: missing, unreadable, or without the expected struct (names the file).
    """
    import scipy.io  # local: only the converter needs scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: SBD annotation not found")
    try:
        mat = scipy.io.loadmat(str(path), variable_names=["GTcls"])
    except Exception as e:  # scipy raises several types (ValueError, MatReadError, OSError)
        raise DataError(f"{path}: cannot read MATLAB file ({e})") from None
    try:
        # A MATLAB 1x1 struct loads as a (1, 1) record array; each field is an object cell.
        seg = np.asarray(mat["GTcls"][0, 0]["Segmentation"])
    except (KeyError, IndexError, ValueError, TypeError):
        raise DataError(f"{path}: no GTcls.Segmentation field (not an SBD cls file?)") from None
    if seg.ndim != 2 or seg.size == 0:
        raise DataError(f"{path}: GTcls.Segmentation must be a 2-D array, got shape {seg.shape}")
    if not np.issubdtype(seg.dtype, np.integer) or seg.min() < 0 or seg.max() > 255:
        raise DataError(f"{path}: GTcls.Segmentation must hold class indices 0..255")
    return seg.astype(np.uint8)


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` atomically unless the file already has exactly these bytes."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write_bytes(path, data)
    return True


def train_aug_ids(
    sbd_train: list[str], sbd_val: list[str], voc_train: list[str], voc_val: list[str]
) -> list[str]:
    """``(SBD train + SBD val + VOC train) - VOC val``, sorted and unique."""
    return sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) - set(voc_val))


def convert_sbd(
    sbd_root: str | Path,
    voc_root: str | Path,
    *,
    progress: ProgressFn | None = None,
) -> ConvertReport:
    """Convert SBD to ``SegmentationClassAug`` PNGs, write ``train_aug.txt``, build the label cache.

    Args:
        sbd_root: ``benchmark_RELEASE`` or its ``dataset/`` folder.
        voc_root: ``VOCdevkit/VOC2012`` (needs ``SegmentationClass`` and the train/val lists).
        progress: ``progress(done, total)``; called over the masks, then again (from 1) over
            the label cache.

    Raises:
        DataError: a missing folder or list, an unreadable .mat file, a mask with bad values.
    """
    dataset = find_sbd_dataset(sbd_root)
    voc = Path(voc_root)
    for sub in (MASK_DIR, SPLIT_DIR):
        if not (voc / sub).is_dir():
            raise DataError(f"{voc / sub}: folder not found (is {voc} a VOC2012 folder?)")
    info = load_info(voc)
    voc_train, voc_val = read_split(voc, "train"), read_split(voc, "val")
    sbd_train = read_id_list(dataset / "train.txt")
    sbd_val = read_id_list(dataset / "val.txt")
    sbd_ids = set(sbd_train) | set(sbd_val)

    aug_ids = train_aug_ids(sbd_train, sbd_val, voc_train, voc_val)
    # VOC val masks go to SegmentationClassAug too, so the folder is complete like the usual
    # distribution of SegmentationClassAug; they are never listed in train_aug.
    targets = sorted(set(aug_ids) | set(voc_val))
    out_dir = voc / AUG_MASK_DIR
    converted = copied = unchanged = 0
    for n, image_id in enumerate(targets, start=1):
        voc_mask = voc / MASK_DIR / f"{image_id}.png"
        if voc_mask.is_file():
            read_checked_mask(voc_mask, info.num_classes)  # refuse to spread a bad mask
            changed = _write_if_changed(out_dir / f"{image_id}.png", voc_mask.read_bytes())
            copied += 1
        elif image_id in sbd_ids:
            mat_path = dataset / "cls" / f"{image_id}.mat"
            seg = read_sbd_mat(mat_path)
            bad = bad_mask_values(seg, info.num_classes)
            if bad:
                msg = f"{mat_path}: class values {bad[:8]} outside 0..{info.num_classes - 1}"
                raise DataError(msg)
            png = mask_to_png_bytes(seg, info.palette)
            changed = _write_if_changed(out_dir / f"{image_id}.png", png)
            converted += 1
        else:
            raise DataError(f"image {image_id}: no mask in {voc / MASK_DIR} and no SBD annotation")
        unchanged += not changed
        if progress is not None:
            progress(n, len(targets))

    aug_path = split_path(voc, "train_aug")
    atomic_write_text(aug_path, "".join(f"{i}\n" for i in aug_ids))
    build_label_cache(voc, ["train_aug", "train", "val"], progress=progress)
    return ConvertReport(
        sbd_converted=converted,
        voc_copied=copied,
        unchanged=unchanged,
        train_aug=len(aug_ids),
        val_excluded=len(sbd_ids & set(voc_val)),
        train_aug_path=aug_path,
        label_cache_path=voc / LABEL_CACHE,
    )
