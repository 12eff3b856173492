"""VOC layout readers, palette PNGs, label cache, augmentation and the two datasets."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _voc_layout import (
    H,
    W,
    add_annotations,
    make_image,
    make_layout,
    small_meta,
    write_annotation,
    write_palette_png,
)
from aakit.data import transforms as T
from aakit.data.voc import (
    VOC_CLASSES,
    DataError,
    EvalDataset,
    TrainDataset,
    build_image_labels,
    build_label_cache,
    load_image_labels,
    parse_annotation,
    read_label_cache,
    read_label_source,
    load_info,
    read_mask,
    read_split,
    save_mask_png,
    voc_palette,
)
from aakit.errors import AakitError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def train_ds(root: Path, **kw) -> TrainDataset:
    split = kw.pop("split", "train_aug")
    args = dict(crop=48, scale_range=(0.7, 1.3), flip=True, mean=MEAN, std=STD, seed=0)
    args.update(kw)
    return TrainDataset(root, split, **args)


def present(labels: torch.Tensor) -> list[int]:
    """Class indices (1..K) set in an image-level label vector."""
    return sorted((torch.nonzero(labels).flatten() + 1).tolist())


# ----------------------------------------------------------------------------- palette / PNG
def test_voc_palette_known_colours() -> None:
    pal = voc_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert tuple(pal[0]) == (0, 0, 0)
    assert tuple(pal[1]) == (128, 0, 0)  # aeroplane
    assert tuple(pal[15]) == (192, 128, 128)  # person
    assert tuple(pal[255]) == (224, 224, 192)  # boundary


def test_save_and_read_mask_roundtrip(tmp_path: Path) -> None:
    mask = np.array([[0, 1, 2], [255, 20, 0]], np.uint8)
    path = tmp_path / "sub" / "m.png"
    save_mask_png(path, mask, voc_palette(21))
    with Image.open(path) as img:
        assert img.mode == "P"
        pal = np.array(img.getpalette()[: 3 * 256]).reshape(-1, 3)
    assert tuple(pal[1]) == (128, 0, 0) and tuple(pal[255]) == (224, 224, 192)
    np.testing.assert_array_equal(read_mask(path), mask)
    assert [p.name for p in path.parent.iterdir()] == ["m.png"]  # no temp file left behind


def test_read_mask_rejects_rgb_and_garbage(tmp_path: Path) -> None:
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(rgb)
    with pytest.raises(DataError, match="rgb.png.*mode RGB"):
        read_mask(rgb)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(DataError, match="junk.png"):
        read_mask(junk)
    assert issubclass(DataError, AakitError)


# ----------------------------------------------------------------------------- info / splits
def test_load_info_voc_default_and_meta(tmp_path: Path) -> None:
    info = load_info(tmp_path)
    assert info.num_classes == 21 and info.class_names == VOC_CLASSES
    assert info.palette[1] == (128, 0, 0) and info.num_object_classes == 20
    (tmp_path / "meta.json").write_text(json.dumps(small_meta(5)))
    info = load_info(tmp_path)
    assert info.num_classes == 5 and info.class_names[1] == "shape1"
    assert info.palette[2] == (20, 40, 60) and info.image_size == W and info.name == "tiny"


@pytest.mark.parametrize(
    "change, key",
    [
        ({"class_names": ["a", "b"]}, "class_names"),
        ({"num_classes": "five"}, "num_classes"),
        ({"palette": [[0, 0, 0]]}, "palette"),
        ({"palette": [[0, 0, 300]] * 5}, "palette"),
    ],
)
def test_load_info_bad_meta_names_key(tmp_path: Path, change: dict, key: str) -> None:
    (tmp_path / "meta.json").write_text(json.dumps({**small_meta(5), **change}))
    with pytest.raises(DataError, match=f"meta.json.*{key}"):
        load_info(tmp_path)


def test_read_split(tmp_path: Path) -> None:
    d = tmp_path / "ImageSets" / "Segmentation"
    d.mkdir(parents=True)
    (d / "train.txt").write_text("a\n\n b \n/JPEGImages/c.jpg /SegmentationClassAug/c.png\n")
    assert read_split(tmp_path, "train") == ["a", "b", "c"]
    with pytest.raises(DataError, match="val.txt"):
        read_split(tmp_path, "val")
    (d / "empty.txt").write_text("\n \n")
    with pytest.raises(DataError, match="empty.txt.*empty"):
        read_split(tmp_path, "empty")


# ----------------------------------------------------------------------------- label cache
def test_load_image_labels_from_cache(tmp_path: Path) -> None:
    lay = make_layout(tmp_path)
    ids = lay.splits["train_aug"]
    labels = load_image_labels(tmp_path, ids)
    assert labels.shape == (len(ids), 20) and labels.dtype == np.float32
    for row, image_id in zip(labels, ids):
        assert sorted(np.flatnonzero(row) + 1) == lay.classes[image_id]


def test_load_image_labels_errors_name_the_id(tmp_path: Path) -> None:
    make_layout(tmp_path)
    cache = json.loads((tmp_path / "cls_labels.json").read_text())
    cache["t1"] = []
    del cache["t2"]
    (tmp_path / "cls_labels.json").write_text(json.dumps(cache))
    with pytest.raises(DataError, match="t1.*no object label"):
        load_image_labels(tmp_path, ["t0", "t1"])
    with pytest.raises(DataError, match="no entry for image t2"):
        load_image_labels(tmp_path, ["t0", "t2"])
    (tmp_path / "cls_labels.json").unlink()
    with pytest.raises(DataError, match="aakit data voc"):
        load_image_labels(tmp_path, ["t0"])


def test_build_label_cache_from_masks_prefers_aug(tmp_path: Path) -> None:
    lay = make_layout(tmp_path)
    (tmp_path / "cls_labels.json").write_text(json.dumps({"other": [3]}))
    # t0's augmented mask differs from its VOC mask: the augmented one must be used.
    aug = np.zeros((H, W), np.uint8)
    aug[0:3, 0:3] = 7
    write_palette_png(tmp_path / "SegmentationClassAug" / "t0.png", aug)
    calls: list[tuple[int, int]] = []
    cache = build_label_cache(tmp_path, ["train_aug", "val"], progress=lambda *a: calls.append(a))
    on_disk = json.loads((tmp_path / "cls_labels.json").read_text())
    assert cache == on_disk
    assert on_disk["t0"] == [7]
    for image_id in lay.splits["train_aug"][1:] + lay.splits["val"]:
        if image_id != "t0":
            assert on_disk[image_id] == lay.classes[image_id]
    assert on_disk["other"] == [3]  # entries of other ids are kept
    assert calls == [(n, 7) for n in range(1, 8)]


def test_build_label_cache_rejects_bad_values(tmp_path: Path) -> None:
    make_layout(tmp_path)
    bad = np.full((H, W), 40, np.uint8)
    write_palette_png(tmp_path / "SegmentationClassAug" / "s1.png", bad)
    with pytest.raises(DataError, match=r"s1\.png.*40"):
        build_label_cache(tmp_path, ["train_aug"])


# ----------------------------------------------------------------------------- labels from XML
def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run ``aakit.cli.main`` in process; its exit code (0 when it returns)."""
    from aakit import cli

    monkeypatch.setattr("sys.argv", ["aakit", *argv])
    try:
        cli.main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_labels_follow_the_xml_difficult_included(tmp_path: Path) -> None:
    lay = make_layout(tmp_path)
    # t0: a difficult person with no pixel in the mask; t1: a second, difficult dog, and an
    # unknown name; s0: its mask's classes are replaced by an XML naming only a cat.
    extra = {"t0": [("person", 1)], "t1": [("dog", 1), ("unicorn", 0)]}
    expected = add_annotations(lay, extra)
    write_annotation(tmp_path / "Annotations" / "s0.xml", "s0", [("cat", 0)])
    expected["s0"] = [8]
    assert 15 not in lay.classes["t0"] and expected["t0"] == sorted(lay.classes["t0"] + [15])
    assert 12 in expected["t1"]
    built = build_image_labels(tmp_path, ["train_aug", "val"])
    assert built.source == "xml" and built.warning is None
    for image_id in lay.splits["train_aug"] + lay.splits["val"]:
        assert built.cache[image_id] == expected[image_id], image_id
    assert read_label_cache(tmp_path) == built.cache  # the cache keeps its {id: [classes]} form
    assert read_label_source(tmp_path) == "xml"
    vec = load_image_labels(tmp_path, ["t0"])[0]
    assert vec[15 - 1] == 1.0 and vec.sum() == len(expected["t0"])


def test_parse_annotation_reads_objects_not_parts(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    write_annotation(path, "a", [("person", 0), ("person", 1), ("background", 0), ("bus", 1)])
    assert parse_annotation(path, VOC_CLASSES) == ([6, 15], ["background"])  # "head" ignored


def test_without_annotations_labels_come_from_masks_with_warning(tmp_path: Path) -> None:
    lay = make_layout(tmp_path)
    built = build_image_labels(tmp_path, ["train_aug", "val"])
    assert built.source == "masks" and read_label_source(tmp_path) == "masks"
    assert built.warning is not None and "\n" not in built.warning
    assert "Annotations" in built.warning and "masks" in built.warning
    assert all(built.cache[i] == lay.classes[i] for i in lay.classes)


def test_cli_data_voc_warns_on_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_layout(tmp_path)
    (tmp_path / "cls_labels.json").unlink()
    assert run_cli(["data", "voc", "--voc", str(tmp_path)], monkeypatch) == 0
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if x.strip()]
    assert line.startswith("warning:") and "masks" in line
    assert (tmp_path / "cls_labels.json").is_file()
    lay = make_layout(tmp_path / "x")
    add_annotations(lay, {"t2": [("sheep", 1)]})
    assert run_cli(["data", "voc", "--voc", str(lay.root)], monkeypatch) == 0
    out, err = capsys.readouterr()
    assert "Annotations" in out and not err.strip()
    assert read_label_cache(lay.root)["t2"] == sorted(lay.classes["t2"] + [17])


def test_kept_entries_of_another_source_make_the_cache_mixed(tmp_path: Path) -> None:
    lay = make_layout(tmp_path)  # its cache (from masks, no source file) covers every id
    add_annotations(lay)
    assert build_image_labels(tmp_path, ["train"]).source == "xml"
    assert read_label_source(tmp_path) == "mixed"  # s0, s1, v0, v1 kept from before
    build_image_labels(tmp_path, ["train_aug", "val"])
    assert read_label_source(tmp_path) == "xml"


def test_malformed_or_missing_xml_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lay = make_layout(tmp_path)
    add_annotations(lay)
    bad = tmp_path / "Annotations" / "t1.xml"
    bad.write_text("<annotation><object><name>cat</name></annotation>")
    with pytest.raises(DataError, match=r"t1\.xml: malformed XML"):
        parse_annotation(bad, VOC_CLASSES)
    before = (tmp_path / "cls_labels.json").read_bytes()
    assert run_cli(["data", "voc", "--voc", str(tmp_path)], monkeypatch) == 2
    out, err = capsys.readouterr()
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in out + err
    assert (tmp_path / "cls_labels.json").read_bytes() == before  # nothing written
    bad.write_text("<annotation><object><pose>Left</pose></object></annotation>")
    with pytest.raises(DataError, match=r"t1\.xml: object 1 has no <name>"):
        build_label_cache(tmp_path, ["train"])
    bad.unlink()
    with pytest.raises(DataError, match=r"t1\.xml: annotation file not found"):
        build_label_cache(tmp_path, ["train"])


# ----------------------------------------------------------------------------- transforms
def test_random_rescale_scales_the_area() -> None:
    img = np.zeros((100, 200, 3), np.uint8)
    rng = np.random.default_rng(0)
    out, _ = T.random_rescale(img, None, rng=rng, scale_range=(0.5, 0.5))
    assert out.shape == (71, 141, 3)  # each side * sqrt(0.5)
    ratios = []
    for _ in range(200):
        out, _ = T.random_rescale(img, None, rng=rng, scale_range=(0.7, 1.3))
        ratios.append(out.shape[0] * out.shape[1] / (100 * 200))
    assert 0.69 <= min(ratios) < 0.75 and 1.25 < max(ratios) <= 1.31


def test_rescale_mask_nearest_keeps_label_values() -> None:
    mask = np.zeros((30, 40), np.uint8)
    mask[:, 20:] = 7
    mask[10] = 255
    img = np.zeros((30, 40, 3), np.uint8)
    out, m = T.rescale(img, mask, 1.37)
    assert out.shape[:2] == m.shape == (41, 55)
    assert set(np.unique(m)) == {0, 7, 255}


def test_random_flip_flips_image_and_mask_together() -> None:
    img = make_image(0)
    mask = np.tile(np.arange(W, dtype=np.uint8), (H, 1))
    f_img, f_mask = T.random_flip(img, mask, rng=np.random.default_rng(0), p=1.0)
    np.testing.assert_array_equal(f_img, img[:, ::-1])
    np.testing.assert_array_equal(f_mask, mask[:, ::-1])
    same, _ = T.random_flip(img, None, rng=np.random.default_rng(0), p=0.0)
    np.testing.assert_array_equal(same, img)


def test_normalize() -> None:
    img = np.array([[[255, 0, 128]]], np.uint8)
    out = T.normalize(img, MEAN, STD)
    assert out.dtype == np.float32
    expected = [(1 - 0.485) / 0.229, -0.456 / 0.224, (128 / 255 - 0.406) / 0.225]
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-6)


def test_random_crop_larger_and_smaller_than_crop() -> None:
    rng = np.random.default_rng(1)
    big = np.arange(50 * 60, dtype=np.float32).reshape(50, 60, 1).repeat(3, axis=2)
    raw = np.arange(50 * 60).reshape(50, 60, 1).repeat(3, axis=2).astype(np.uint8)
    mask = np.ones((50, 60), np.uint8)
    img, r, valid, m = T.random_crop(big, raw, mask, crop=20, rng=rng)
    assert img.shape == (20, 20, 3) and valid.all() and (m == 1).all()
    top, left = divmod(int(img[0, 0, 0]), 60)  # the window is a contiguous block of the image
    np.testing.assert_array_equal(img[..., 0], big[top : top + 20, left : left + 20, 0])
    np.testing.assert_array_equal(r, raw[top : top + 20, left : left + 20])
    small = np.full((10, 30, 3), 2.0, np.float32)
    small_raw, small_mask = np.full((10, 30, 3), 9, np.uint8), np.ones((10, 30), np.uint8)
    img, r, valid, m = T.random_crop(small, small_raw, small_mask, crop=20, rng=rng)
    assert valid.sum() == 10 * 20  # 10 rows fit; the 30 columns are cut to 20
    assert (img[~valid] == 0).all() and (img[valid] == 2).all()
    assert (r[~valid] == 0).all() and (r[valid] == 9).all()
    assert (m[~valid] == 255).all() and (m[valid] == 1).all()


def test_train_transform_reproducible_with_seed() -> None:
    t = T.TrainTransform(crop=24)
    img = make_image(3)
    a = t(img, rng=np.random.default_rng(5))
    b = t(img, rng=np.random.default_rng(5))
    c = t(img, rng=np.random.default_rng(6))
    for k in ("image", "raw", "valid"):
        np.testing.assert_array_equal(a[k], b[k])
    assert "mask" not in a
    assert not all(np.array_equal(a[k], c[k]) for k in ("image", "raw", "valid"))


# ----------------------------------------------------------------------------- TrainDataset
def test_train_dataset_item_shapes_and_types(tmp_path: Path) -> None:
    lay = make_layout(tmp_path)
    ds = train_ds(tmp_path, pad_mode="ignore")  # black padding (rrm's: tests/test_fidelity.py)
    assert len(ds) == 5 and ds.ids == lay.splits["train_aug"]
    item = ds[1]
    assert item["image"].shape == (3, 48, 48) and item["image"].dtype == torch.float32
    assert item["raw"].shape == (48, 48, 3) and item["raw"].dtype == torch.uint8
    assert item["valid"].shape == (48, 48) and item["valid"].dtype == torch.bool
    assert item["labels"].shape == (20,) and item["labels"].dtype == torch.float32
    assert present(item["labels"]) == lay.classes[ds.ids[1]]
    assert item["id"] == ds.ids[1] and "mask" not in item
    # 40x30 scaled by at most sqrt(1.3) < 48: there is always padding, zero in both images.
    assert 0 < item["valid"].sum() < 48 * 48
    pad = ~item["valid"]
    assert (item["image"][:, pad] == 0).all() and (item["raw"][pad] == 0).all()
    assert len(train_ds(tmp_path, max_images=2)) == 2


def test_train_dataset_crop_is_the_image_when_scale_is_one(tmp_path: Path) -> None:
    lay = make_layout(tmp_path)
    ds = train_ds(tmp_path, scale_range=(1.0, 1.0), flip=False, supervision="full")
    item = ds[0]
    valid = item["valid"].numpy()
    rows, cols = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
    assert (len(rows), len(cols)) == (H, W) and valid.sum() == H * W
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    original = np.array(Image.open(tmp_path / "JPEGImages" / f"{ds.ids[0]}.jpg").convert("RGB"))
    np.testing.assert_array_equal(item["raw"].numpy()[window], original)
    expected = (original / 255.0 - np.array(MEAN)) / np.array(STD)
    image = item["image"].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(image[window], expected, atol=1e-5)
    mask = item["mask"].numpy()
    assert item["mask"].dtype == torch.int64
    np.testing.assert_array_equal(mask[window], lay.masks[ds.ids[0]])
    assert (mask[~valid] == 255).all()


def test_train_dataset_full_mask_follows_flip(tmp_path: Path) -> None:
    lay = make_layout(tmp_path)
    ds = train_ds(tmp_path, scale_range=(1.0, 1.0), flip=True, supervision="full")
    image_id = ds.ids[1]
    original = np.array(Image.open(tmp_path / "JPEGImages" / f"{image_id}.jpg").convert("RGB"))
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(12):
        item = ds.sample(1, rng)
        valid = item["valid"].numpy()
        rows, cols = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
        window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        raw, mask = item["raw"].numpy()[window], item["mask"].numpy()[window]
        flipped = np.array_equal(raw, original[:, ::-1])
        assert flipped or np.array_equal(raw, original)
        expected = lay.masks[image_id][:, ::-1] if flipped else lay.masks[image_id]
        np.testing.assert_array_equal(mask, expected)
        seen.add(flipped)
    assert seen == {True, False}


def test_train_dataset_reproducible_with_seed(tmp_path: Path) -> None:
    make_layout(tmp_path)

    def items(seed: int) -> list[dict]:
        ds = train_ds(tmp_path, seed=seed, crop=24)
        return [ds[i] for i in range(len(ds))]

    a, b, c = items(3), items(3), items(4)
    for x, y in zip(a, b):
        assert all(torch.equal(x[k], y[k]) for k in ("image", "raw", "valid"))
    assert any(not torch.equal(x["raw"], z["raw"]) for x, z in zip(a, c))


def test_train_dataset_reproducible_in_workers(tmp_path: Path) -> None:
    make_layout(tmp_path)
    ds = train_ds(tmp_path, crop=24)

    def run() -> list[torch.Tensor]:
        loader = torch.utils.data.DataLoader(
            ds, batch_size=2, num_workers=1, generator=torch.Generator().manual_seed(11)
        )
        return [b["raw"] for b in loader]

    first, second = run(), run()
    assert all(torch.equal(x, y) for x, y in zip(first, second))


def test_train_dataset_never_opens_masks_in_image_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_layout(tmp_path)
    ds = train_ds(tmp_path)
    # Masks gone AND every file opened by PIL recorded: image mode must need neither.
    os.rename(tmp_path / "SegmentationClass", tmp_path / "hidden_a")
    os.rename(tmp_path / "SegmentationClassAug", tmp_path / "hidden_b")
    opened: list[str] = []
    real_open = Image.open

    def spy(fp, *args, **kwargs):
        opened.append(str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", spy)
    for i in range(len(ds)):
        ds[i]
    assert len(opened) == len(ds)
    assert all("JPEGImages" in p and p.endswith(".jpg") for p in opened)
    # A new dataset in image mode needs no mask folder either.
    assert len(train_ds(tmp_path)) == len(ds)


def test_train_dataset_errors(tmp_path: Path) -> None:
    make_layout(tmp_path)
    (tmp_path / "JPEGImages" / "s0.jpg").write_bytes(b"\xff\xd8garbage")
    ds = train_ds(tmp_path)
    with pytest.raises(DataError, match="image s0"):
        ds[ds.ids.index("s0")]
    (tmp_path / "cls_labels.json").unlink()
    with pytest.raises(DataError, match="cls_labels.json"):
        train_ds(tmp_path)


def test_train_dataset_uses_meta_classes(tmp_path: Path) -> None:
    lay = make_layout(tmp_path, num_classes=5, meta=small_meta(5))
    ds = train_ds(tmp_path)
    item = ds[0]
    assert item["labels"].shape == (4,)
    assert present(item["labels"]) == lay.classes[ds.ids[0]]


# ----------------------------------------------------------------------------- EvalDataset
def test_eval_dataset_full_size_items(tmp_path: Path) -> None:
    lay = make_layout(tmp_path)
    ds = EvalDataset(tmp_path, "val", mean=MEAN, std=STD)
    assert ds.ids == ["v0", "v1"]
    for i, image_id in enumerate(ds.ids):
        item = ds[i]
        assert item["image"].shape == (3, H, W) and item["raw"].shape == (H, W, 3)
        assert item["mask"].dtype == torch.int64 and item["mask"].shape == (H, W)
        np.testing.assert_array_equal(item["mask"].numpy(), lay.masks[image_id])
        assert present(item["labels"]) == lay.classes[image_id]
        assert item["id"] == image_id
    assert len(EvalDataset(tmp_path, "val", mean=MEAN, std=STD, max_images=1)) == 1


def test_eval_dataset_mask_source_per_split(tmp_path: Path) -> None:
    make_layout(tmp_path)
    aug = np.full((H, W), 9, np.uint8)
    write_palette_png(tmp_path / "SegmentationClassAug" / "t0.png", aug)
    write_palette_png(tmp_path / "SegmentationClassAug" / "v0.png", aug)
    train = EvalDataset(tmp_path, "train", mean=MEAN, std=STD)
    assert (train[0]["mask"] == 9).all()  # train ids: SegmentationClassAug first
    val = EvalDataset(tmp_path, "val", mean=MEAN, std=STD)
    assert not (val[0]["mask"] == 9).all()  # val ids: SegmentationClass first


def test_eval_dataset_errors_name_file_and_id(tmp_path: Path) -> None:
    make_layout(tmp_path)
    write_palette_png(tmp_path / "SegmentationClass" / "v1.png", np.full((H, W), 21, np.uint8))
    ds = EvalDataset(tmp_path, "val", mean=MEAN, std=STD)
    with pytest.raises(DataError, match=r"v1\.png.*21"):
        ds[1]
    (tmp_path / "SegmentationClass" / "v0.png").unlink()
    with pytest.raises(DataError, match="image v0"):
        EvalDataset(tmp_path, "val", mean=MEAN, std=STD)
