"""SBD -> SegmentationClassAug conversion, train_aug list and label cache."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from _voc_layout import H, W, make_layout
from aakit.data.sbd import convert_sbd, read_sbd_mat, train_aug_ids
from aakit.data.voc import DataError, read_mask

SBD_TRAIN = ["s0", "s1", "s2"]
SBD_VAL = ["s3", "v0", "t1"]  # v0 is VOC val (must be dropped); t1 is VOC train (VOC mask wins)


def sbd_mask(index: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[2 + index : 12 + index, 3:25] = 1 + (4 * index) % 20
    mask[20:, 30:] = 15
    return mask


def write_sbd_mat(path: Path, seg: np.ndarray) -> None:
    """An SBD cls file: struct GTcls with Segmentation, Boundaries (cell) and CategoriesPresent."""
    boundaries = np.empty((20, 1), dtype=object)
    for i in range(20):
        boundaries[i, 0] = np.zeros(seg.shape, np.uint8)
    present = np.array([c for c in np.unique(seg) if c], dtype=np.uint8)
    scipy.io.savemat(
        str(path),
        {"GTcls": {"Segmentation": seg, "Boundaries": boundaries, "CategoriesPresent": present}},
    )


def make_voc_and_sbd(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    make_layout(voc, train=("t0", "t1", "t2"), extra_aug=(), val=("v0", "v1"))
    shutil.rmtree(voc / "SegmentationClassAug")
    (voc / "ImageSets" / "Segmentation" / "train_aug.txt").unlink()
    (voc / "cls_labels.json").unlink()
    sbd = tmp_path / "benchmark_RELEASE"
    (sbd / "dataset" / "cls").mkdir(parents=True)
    (sbd / "dataset" / "train.txt").write_text("".join(f"{i}\n" for i in SBD_TRAIN))
    (sbd / "dataset" / "val.txt").write_text("".join(f"{i}\n" for i in SBD_VAL))
    masks = {}
    for n, image_id in enumerate(SBD_TRAIN + SBD_VAL):
        masks[image_id] = sbd_mask(n)
        write_sbd_mat(sbd / "dataset" / "cls" / f"{image_id}.mat", masks[image_id])
    return voc, sbd, masks


def test_savemat_file_reads_like_real_sbd(tmp_path: Path) -> None:
    seg = sbd_mask(2)
    path = tmp_path / "x.mat"
    write_sbd_mat(path, seg)
    mat = scipy.io.loadmat(str(path))
    np.testing.assert_array_equal(mat["GTcls"][0, 0]["Segmentation"], seg)
    obj = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)["GTcls"]
    np.testing.assert_array_equal(obj.Segmentation, seg)
    out = read_sbd_mat(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, seg)


def test_read_sbd_mat_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing.mat"):
        read_sbd_mat(tmp_path / "missing.mat")
    other = tmp_path / "other.mat"
    scipy.io.savemat(str(other), {"something": np.zeros((2, 2))})
    with pytest.raises(DataError, match="other.mat.*GTcls"):
        read_sbd_mat(other)
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not matlab at all")
    with pytest.raises(DataError, match="junk.mat"):
        read_sbd_mat(junk)


def test_train_aug_ids_rule() -> None:
    assert train_aug_ids(["b", "a"], ["c", "v"], ["a", "d"], ["v"]) == ["a", "b", "c", "d"]


def test_convert_sbd(tmp_path: Path) -> None:
    voc, sbd, masks = make_voc_and_sbd(tmp_path)
    calls: list[tuple[int, int]] = []
    report = convert_sbd(sbd, voc, progress=lambda *a: calls.append(a))

    expected = ["s0", "s1", "s2", "s3", "t0", "t1", "t2"]
    lines = (voc / "ImageSets" / "Segmentation" / "train_aug.txt").read_text().splitlines()
    assert lines == expected and "v0" not in lines
    assert report.train_aug == 7 and report.val_excluded == 1
    assert report.sbd_converted == 4 and report.voc_copied == 5  # t0-t2 and v0-v1
    aug = voc / "SegmentationClassAug"
    for image_id in ["s0", "s1", "s2", "s3"]:
        with Image.open(aug / f"{image_id}.png") as img:
            assert img.mode == "P"
        np.testing.assert_array_equal(read_mask(aug / f"{image_id}.png"), masks[image_id])
    for image_id in ["t0", "t1", "t2", "v0", "v1"]:  # VOC's own masks, byte for byte
        original = (voc / "SegmentationClass" / f"{image_id}.png").read_bytes()
        assert (aug / f"{image_id}.png").read_bytes() == original
    assert not np.array_equal(read_mask(aug / "t1.png"), masks["t1"])

    cache = json.loads((voc / "cls_labels.json").read_text())
    for image_id in expected + ["v0", "v1"]:
        truth = read_mask(aug / f"{image_id}.png")
        assert cache[image_id] == sorted(int(v) for v in np.unique(truth) if v not in (0, 255))
    # 9 masks (7 train_aug + 2 val), then the label cache over train_aug | train | val (9 ids)
    assert calls == [(n, 9) for n in range(1, 10)] * 2
    assert not [p for p in aug.iterdir() if p.suffix != ".png"]  # no temp files left


def test_convert_sbd_accepts_dataset_folder_and_is_idempotent(tmp_path: Path) -> None:
    voc, sbd, _ = make_voc_and_sbd(tmp_path)
    convert_sbd(sbd, voc)
    before = {p.name: p.read_bytes() for p in (voc / "SegmentationClassAug").iterdir()}
    report = convert_sbd(sbd / "dataset", voc)
    after = {p.name: p.read_bytes() for p in (voc / "SegmentationClassAug").iterdir()}
    assert before == after and report.unchanged == 9 and report.train_aug == 7


def test_convert_sbd_missing_paths(tmp_path: Path) -> None:
    voc, sbd, _ = make_voc_and_sbd(tmp_path)
    with pytest.raises(DataError, match="nowhere"):
        convert_sbd(tmp_path / "nowhere", voc)
    with pytest.raises(DataError, match="not an SBD folder"):
        convert_sbd(voc, voc)
    (sbd / "dataset" / "val.txt").unlink()
    with pytest.raises(DataError, match="val.txt"):
        convert_sbd(sbd, voc)


def test_convert_sbd_missing_voc_folder_and_mat(tmp_path: Path) -> None:
    voc, sbd, _ = make_voc_and_sbd(tmp_path)
    (sbd / "dataset" / "cls" / "s2.mat").unlink()
    with pytest.raises(DataError, match=r"s2\.mat"):
        convert_sbd(sbd, voc)
    shutil.rmtree(voc / "SegmentationClass")
    with pytest.raises(DataError, match="SegmentationClass"):
        convert_sbd(sbd, voc)


def test_convert_sbd_rejects_out_of_range_classes(tmp_path: Path) -> None:
    voc, sbd, _ = make_voc_and_sbd(tmp_path)
    write_sbd_mat(sbd / "dataset" / "cls" / "s1.mat", np.full((H, W), 30, np.uint8))
    with pytest.raises(DataError, match=r"s1\.mat.*30"):
        convert_sbd(sbd, voc)
