"""The embedded benchmark: layout, labels, determinism, and the WSSS phenomena it must show."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aakit.data import synth
from aakit.data.synth import BACKGROUNDS, CLASSES, Knobs, SynthError, describe, generate, is_generated


def _ids(root: Path, split: str) -> list[str]:
    return (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()


def _mask(root: Path, sub: str, iid: str) -> np.ndarray:
    im = Image.open(root / sub / f"{iid}.png")
    assert im.mode == "P"
    return np.asarray(im)


def _rgb(root: Path, iid: str) -> np.ndarray:
    return np.asarray(Image.open(root / "JPEGImages" / f"{iid}.jpg").convert("RGB")).astype(np.float64)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "small"
    generate(root, n_train=12, n_val=6, size=64, seed=3)
    return root


@pytest.fixture(scope="module")
def hundred(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~100 images, large enough to measure context and badges from the pixels."""
    root = tmp_path_factory.mktemp("synth") / "hundred"
    generate(root, n_train=100, n_val=0, size=96, seed=1)
    return root


def test_layout_every_id_has_image_and_both_masks(small: Path) -> None:
    train, val = _ids(small, "train"), _ids(small, "val")
    assert len(train) == 12 and len(val) == 6 and not set(train) & set(val)
    assert _ids(small, "train_aug") == train
    for iid in train + val:
        img = Image.open(small / "JPEGImages" / f"{iid}.jpg")
        assert img.format == "JPEG" and img.mode == "RGB" and img.size == (64, 64)
        for sub in ("SegmentationClass", "SegmentationClassAug"):
            assert _mask(small, sub, iid).shape == (64, 64)
    assert not list(small.parent.glob(".small.*")), "temporary directory left behind"


def test_mask_values_and_boundary_band(small: Path) -> None:
    k = 10
    band_pixels = 0
    for iid in _ids(small, "train") + _ids(small, "val"):
        cls_mask = _mask(small, "SegmentationClass", iid)
        aug = _mask(small, "SegmentationClassAug", iid)
        assert set(np.unique(cls_mask)) <= set(range(k + 1)) | {255}
        assert set(np.unique(aug)) <= set(range(k + 1)), "the Aug masks have no band"
        differ = cls_mask != aug
        assert (cls_mask[differ] == 255).all(), "the two masks differ only by the band"
        assert (aug[cls_mask == 255] > 0).all(), "the band lies on the object side"
        band_pixels += int(differ.sum())
        # A 1-px band: no band pixel has band pixels on both sides along a row and a column.
        b = cls_mask == 255
        assert not (b[1:-1, 1:-1] & b[1:-1, :-2] & b[1:-1, 2:] & b[:-2, 1:-1] & b[2:, 1:-1]).any()
    assert band_pixels > 0


def test_cls_labels_match_masks(small: Path) -> None:
    labels = json.loads((small / "cls_labels.json").read_text())
    ids = _ids(small, "train") + _ids(small, "val")
    assert sorted(labels) == sorted(ids)
    for iid in ids:
        present = labels[iid]
        assert present == sorted(present) and all(isinstance(c, int) for c in present)
        assert 1 <= len(present) <= 3
        for sub in ("SegmentationClass", "SegmentationClassAug"):
            m = _mask(small, sub, iid)
            assert sorted(int(c) for c in np.unique(m) if c not in (0, 255)) == present, (iid, sub)


def test_meta_content_and_is_generated(small: Path) -> None:
    meta = json.loads((small / "meta.json").read_text())
    assert meta["name"] == "aakit-synth" and meta["version"] == synth.SYNTH_VERSION == "1.0"
    assert meta["seed"] == 3 and meta["image_size"] == 64
    assert meta["n_train"] == 12 and meta["n_val"] == 6
    assert meta["num_classes"] == 11
    assert meta["class_names"] == ["background"] + [c.name for c in CLASSES]
    assert len(meta["palette"]) == 11 and meta["palette"][0] == [0, 0, 0]
    assert all(len(c) == 3 for c in meta["palette"]) and len({tuple(c) for c in meta["palette"]}) == 11
    assert meta["knobs"] == Knobs().to_dict()

    assert is_generated(small, n_train=12, n_val=6, size=64, seed=3, workers=4)
    assert not is_generated(small, n_train=12, n_val=6, size=64, seed=4)
    assert not is_generated(small, n_train=13, n_val=6, size=64, seed=3)
    assert not is_generated(small, n_train=12, n_val=6, size=64, seed=3, knobs=Knobs(context_prob=0.5))
    assert not is_generated(small.parent / "nothing-here")


def test_is_generated_notices_a_missing_image(tmp_path: Path) -> None:
    generate(tmp_path / "s", n_train=2, n_val=1, size=48, seed=0)
    assert is_generated(tmp_path / "s", n_train=2, n_val=1, size=48, seed=0)
    (tmp_path / "s" / "JPEGImages" / "val_00000.jpg").unlink()
    assert not is_generated(tmp_path / "s", n_train=2, n_val=1, size=48, seed=0)


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    kw = dict(n_train=6, n_val=2, size=64)
    generate(tmp_path / "a", seed=5, **kw)
    generate(tmp_path / "b", seed=5, workers=2, **kw)
    generate(tmp_path / "c", seed=6, **kw)
    a, b, c = _all_bytes(tmp_path / "a"), _all_bytes(tmp_path / "b"), _all_bytes(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert all(a[k] != c[k] for k in jpgs), "another seed must give other images"


def test_fewer_classes(tmp_path: Path) -> None:
    meta = generate(tmp_path / "s", n_train=10, n_val=2, size=48, num_classes=3, seed=0)
    assert meta["num_classes"] == 4 and len(meta["class_names"]) == 4
    labels = json.loads((tmp_path / "s" / "cls_labels.json").read_text())
    assert set().union(*map(set, labels.values())) <= {1, 2, 3}


def test_regenerating_replaces_an_old_set_but_not_foreign_data(tmp_path: Path) -> None:
    generate(tmp_path / "s", n_train=3, n_val=1, size=48, seed=0)
    generate(tmp_path / "s", n_train=2, n_val=1, size=48, seed=1)
    assert len(_ids(tmp_path / "s", "train")) == 2
    assert is_generated(tmp_path / "s", n_train=2, n_val=1, size=48, seed=1)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(SynthError, match="not an aakit-synth set"):
        generate(foreign, n_train=2, n_val=1, size=48)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_interrupted_run_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    def crash(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "s", n_train=5, n_val=1, size=48, progress=crash)
    assert not (tmp_path / "s").exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments() -> None:
    bad: list[dict[str, object]] = [
        dict(num_classes=11), dict(num_classes=1), dict(n_train=0), dict(size=16), dict(workers=0),
        dict(knobs=Knobs(context_prob=1.5)), dict(knobs=Knobs(radius_range=(0.3, 0.1))),
    ]
    for kw in bad:
        with pytest.raises(SynthError):
            generate("unused", **kw)  # type: ignore[arg-type]
    with pytest.raises(SynthError, match="meta.json"):
        describe("no-such-dir")


def _background_of(img: np.ndarray, mask: np.ndarray) -> str:
    """The scheme whose mean colour is closest to the mean of the background pixels."""
    names = list(BACKGROUNDS)
    means = np.array([BACKGROUNDS[n] for n in names], dtype=np.float64)
    mean = img[mask == 0].mean(axis=0)
    return names[int(np.argmin(((means - mean) ** 2).sum(axis=1)))]


def test_class_correlated_context_is_measurable_in_the_pixels(hundred: Path) -> None:
    scenes = json.loads((hundred / "scenes.json").read_text())
    labels = json.loads((hundred / "cls_labels.json").read_text())
    seen: Counter[int] = Counter()
    on_own: Counter[int] = Counter()
    agree = 0
    for iid in _ids(hundred, "train"):
        measured = _background_of(_rgb(hundred, iid), _mask(hundred, "SegmentationClassAug", iid))
        agree += measured == scenes[iid]["background"]
        for c in labels[iid]:
            seen[c] += 1
            on_own[c] += measured == CLASSES[c - 1].context
    assert agree >= 90, "the background scheme must be recognisable from its pixels"
    chance = 1 / len(BACKGROUNDS)  # 0.2 if the background ignored the classes
    for c in range(1, 11):
        assert seen[c] >= 4, f"class {c} too rare in 100 images"
        assert on_own[c] / seen[c] >= 2 * chance, (CLASSES[c - 1].name, on_own[c], seen[c])
    assert sum(on_own.values()) / sum(seen.values()) >= 2.5 * chance


def _mark_like(img: np.ndarray) -> np.ndarray:
    """Badge pixels: near black, or bright and grey (nothing else in the images is)."""
    hi, lo = img.max(axis=2), img.min(axis=2)
    return (hi < 60) | ((lo > 150) & (hi - lo < 0.12 * hi))


def test_the_badge_sits_inside_objects(hundred: Path) -> None:
    labels = json.loads((hundred / "cls_labels.json").read_text())
    inside = outside = hits = occurrences = 0
    n_in = n_out = 0
    for iid in _ids(hundred, "train"):
        mask = _mask(hundred, "SegmentationClassAug", iid)
        mark = _mark_like(_rgb(hundred, iid))
        inside += int(mark[mask > 0].sum())
        n_in += int((mask > 0).sum())
        outside += int(mark[mask == 0].sum())
        n_out += int((mask == 0).sum())
        for c in labels[iid]:
            occurrences += 1
            hits += bool(mark[mask == c].any())
    assert hits >= 0.9 * occurrences, "almost every visible object shows badge pixels"
    assert inside / n_in > 20 * outside / n_out, "badge pixels are (nearly) only inside objects"
    assert inside / n_in < 0.25, "the badge is a small part of the object"


def _badge_pixels_inside_objects(root: Path) -> int:
    return sum(
        int(_mark_like(_rgb(root, i))[_mask(root, "SegmentationClassAug", i) > 0].sum())
        for i in _ids(root, "train")
    )


def test_no_badge_when_switched_off(tmp_path: Path) -> None:
    generate(tmp_path / "off", n_train=20, n_val=0, size=96, seed=1, knobs=Knobs(mark_prob=0.0))
    generate(tmp_path / "on", n_train=20, n_val=0, size=96, seed=1)
    meta = json.loads((tmp_path / "off" / "meta.json").read_text())
    assert meta["knobs"]["mark_prob"] == 0.0
    off, on = _badge_pixels_inside_objects(tmp_path / "off"), _badge_pixels_inside_objects(tmp_path / "on")
    assert off < 0.1 * on


def test_objects_occlude_each_other_and_masks_show_what_is_visible(hundred: Path) -> None:
    scenes = json.loads((hundred / "scenes.json").read_text())
    counts = Counter(len(s["objects"]) for s in scenes.values())
    assert set(counts) <= {1, 2, 3} and counts[1] > 0 and counts[2] > 0 and counts[3] > 0
    occluded = 0
    for iid, scene in scenes.items():
        objs = scene["objects"]
        assert objs[-1]["visible_frac"] == 1.0, "nothing is drawn over the last object"
        occluded += sum(o["visible_frac"] < 0.97 for o in objs[:-1])
        mask = _mask(hundred, "SegmentationClassAug", iid)
        for c in {o["class"] for o in objs}:
            assert int((mask == c).sum()) <= sum(o["visible_px"] for o in objs if o["class"] == c)
        if len(objs) == 1:
            assert int((mask == objs[0]["class"]).sum()) == objs[0]["visible_px"]
    assert occluded >= 5, "occlusion must happen"


def test_describe_summarises(small: Path) -> None:
    text = describe(small)
    assert "aakit-synth v1.0" in text and "classes/image" in text
    for c in CLASSES:
        assert c.name in text
