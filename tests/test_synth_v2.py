"""Benchmark version 2 (aakit.data.synth_v2), and version 1 left byte for byte as it was."""
from __future__ import annotations

import colorsys
import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_erosion, distance_transform_edt

from aakit.data import synth, synth_v2
from aakit.data.synth import Knobs, SynthError, describe, generate, is_generated, render_scene
from aakit.data.synth_v2 import CLASSES, COLOUR_FAMILIES, HUE_JITTER, KnobsV2

# tree_sha256 of generate(root, n_train=4, n_val=2, size=48, seed=11), recorded before version 2
# existed (commit 504c39d). JPEG and PNG bytes depend on the libjpeg/zlib behind Pillow: if this
# fails after a Pillow upgrade and not after a change of the generator, record the new value.
V1_TINY_SHA256 = "8720c924a52296ef3ffcaf7bd6af79dbda2b32614c3d28e1014a0b44d4aa8b06"


def tree_sha256(root: Path) -> str:
    """One digest of every file under ``root``: relative path, NUL, bytes, in sorted order."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _ids(root: Path) -> list[str]:
    sets = root / "ImageSets" / "Segmentation"
    return (sets / "train.txt").read_text().split() + (sets / "val.txt").read_text().split()


def _mask(root: Path, iid: str) -> np.ndarray:
    return np.asarray(Image.open(root / "SegmentationClassAug" / f"{iid}.png"))


def _rgb(root: Path, iid: str) -> np.ndarray:
    return np.asarray(Image.open(root / "JPEGImages" / f"{iid}.jpg").convert("RGB")).astype(np.float64)


def _hue(px: np.ndarray) -> float:
    """Circular mean hue (degrees) of RGB pixels (N, 3), 0-255, weighted by saturation."""
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in px / 255.0])
    vec = (hsv[:, 1] * np.exp(2j * np.pi * hsv[:, 0])).sum()
    return float(np.degrees(np.angle(vec)) % 360)


def _hue_gap(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


def _body_pixels(img: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Coloured pixels of ``region`` (the badge's black, white and grey dropped)."""
    px = img[region]
    hi, lo = px.max(axis=1), px.min(axis=1)
    return px[(hi > 60) & (hi - lo > 0.15 * hi)]


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 default version-2 images of 128 px."""
    root = tmp_path_factory.mktemp("v2") / "set"
    generate(root, n_train=50, n_val=10, size=128, seed=2, version=2)
    return root


# ----------------------------------------------------------------------------- version 1
def test_version_1_is_byte_for_byte_what_it_was(tmp_path: Path) -> None:
    generate(tmp_path / "v1", n_train=4, n_val=2, size=48, seed=11)
    assert tree_sha256(tmp_path / "v1") == V1_TINY_SHA256
    generate(tmp_path / "v1b", n_train=4, n_val=2, size=48, seed=11, version=1, knobs=Knobs())
    assert _all_bytes(tmp_path / "v1b") == _all_bytes(tmp_path / "v1")


def test_each_version_refuses_the_others_knobs() -> None:
    with pytest.raises(SynthError, match="version 1 takes"):
        generate("unused", version=1, knobs=KnobsV2())
    with pytest.raises(SynthError, match="version 2 takes"):
        generate("unused", version=2, knobs=Knobs())
    for bad in (dict(version=4), dict(version=2, knobs=KnobsV2(boundary_blend=-0.1)),
                dict(version=2, knobs=KnobsV2(decoy_prob=1.5)), dict(version=2, knobs=KnobsV2(context_prob=2.0))):
        with pytest.raises(SynthError):
            generate("unused", **bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- version 2 files
def test_v2_meta_defaults_and_is_generated(v2: Path) -> None:
    meta = json.loads((v2 / "meta.json").read_text())
    assert meta["version"] == "2.0" and meta["num_classes"] == 11
    assert meta["class_names"] == ["background"] + [c.name for c in CLASSES]
    assert meta["knobs"] == KnobsV2().to_dict()
    k = meta["knobs"]
    assert k["context_prob"] == 0.5 and k["boundary_blend"] > 0 and 0 < k["decoy_prob"] < 1
    assert meta["colour_families"] == COLOUR_FAMILIES
    assert synth.synth_spec(version=2).n_val == 1000 and synth.synth_spec(version=1).n_val == 200
    kw: dict[str, Any] = dict(n_train=50, n_val=10, size=128, seed=2)
    assert is_generated(v2, version=2, **kw)
    assert not is_generated(v2, **kw), "a version-2 set is not version 1's"
    assert not is_generated(v2, version=2, knobs=KnobsV2(decoy_prob=0.0), **kw)


def test_v2_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(n_train=6, n_val=2, size=64, version=2)
    generate(tmp_path / "a", seed=5, **kw)
    generate(tmp_path / "b", seed=5, workers=2, **kw)
    generate(tmp_path / "c", seed=6, **kw)
    a, b, c = _all_bytes(tmp_path / "a"), _all_bytes(tmp_path / "b"), _all_bytes(tmp_path / "c")
    assert a == b
    assert all(a[f] != c[f] for f in a if f.endswith(".jpg"))


def test_v2_describe_and_contact_sheet(v2: Path) -> None:
    text = describe(v2)
    assert "aakit-synth v2.0" in text and "decoys:" in text and "halos:" in text
    assert all(c.name in text for c in CLASSES)
    sheet = synth.contact_sheet(v2, n=4, cols=2)
    assert sheet.size == (2 * (2 * 128 + 4 + 8), 2 * (128 + 8))


# ----------------------------------------------------------------------------- classes
def test_v2_every_class_has_its_own_material() -> None:
    assert len(CLASSES) == 10 and len({c.name for c in CLASSES}) == 10
    assert len({c.colour for c in CLASSES}) == 10, "one colour family per class"
    assert len({(c.colour, c.texture) for c in CLASSES}) == 10
    assert len({c.mark for c in CLASSES}) == 10
    assert set(c.context for c in CLASSES) <= set(synth.BACKGROUNDS)
    hues = sorted(COLOUR_FAMILIES.values())
    gaps = [b - a for a, b in zip(hues, hues[1:] + [hues[0] + 360])]
    assert min(gaps) >= 2 * HUE_JITTER + 20, "hue families overlap"
    by_hue = sorted(CLASSES, key=lambda c: COLOUR_FAMILIES[c.colour])
    for a, b in zip(by_hue, by_hue[1:] + by_hue[:1]):  # neighbours in hue differ in texture and shape
        assert a.texture != b.texture and a.shape != b.shape, (a.name, b.name)


def test_v2_class_is_read_from_the_body_colour_alone(v2: Path) -> None:
    """The mean hue of an object's body names its class family (no badge, no shape)."""
    fams = list(COLOUR_FAMILIES)
    right = total = 0
    for iid in _ids(v2):
        img, mask = _rgb(v2, iid), _mask(v2, iid)
        for c in np.unique(mask[mask > 0]):
            px = _body_pixels(img, binary_erosion(mask == c, iterations=3))
            if len(px) < 30:
                continue
            gaps = [_hue_gap(_hue(px), COLOUR_FAMILIES[f]) for f in fams]
            total += 1
            right += fams[int(np.argmin(gaps))] == CLASSES[c - 1].colour
    assert total >= 60 and right >= 0.95 * total, (right, total)


# ----------------------------------------------------------------------------- the phenomena
def _render(knobs: KnobsV2, index: int, steps: synth.SceneSteps | None = None) -> tuple[np.ndarray, ...]:
    """Image ``index`` of a 96-px version-2 train split, as generate draws it (before JPEG)."""
    rng = synth._image_rng(0, "train", index)
    steps = steps or synth_v2.make_steps(knobs, 0, 0, index)
    image, label, banded, scene = render_scene(rng, 96, CLASSES, knobs, steps)
    return image, label, banded, scene


class _Plain(synth_v2.Steps):
    """Version 2's colours, nothing else: no halo, no wider edge, no decoy."""

    def on_object(self, img: np.ndarray, o: Any, *args: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        self.materials.append(None)  # type: ignore[arg-type]
        return img, o.coverage, {}

    def after_objects(self, img: np.ndarray, *args: Any) -> tuple[np.ndarray, dict[str, Any]]:
        return img, {}


def test_knobs_at_zero_draw_the_plain_scene() -> None:
    off = KnobsV2(boundary_blend=0.0, decoy_prob=0.0)
    for i in range(6):
        image, label, _, scene = _render(off, i)
        plain = _render(off, i, _Plain(off, np.random.default_rng(0), np.random.default_rng(0)))
        assert np.array_equal(image, plain[0]) and np.array_equal(label, plain[1])
        assert scene["decoys"] == [] and all(o["halo"] is None for o in scene["objects"])


def test_no_decoy_and_no_halo_in_the_files_when_off(tmp_path: Path) -> None:
    generate(tmp_path / "s", n_train=20, n_val=0, size=64, seed=1, version=2,
             knobs=KnobsV2(boundary_blend=0.0, decoy_prob=0.0))
    scenes = json.loads((tmp_path / "s" / "scenes.json").read_text())
    assert all(s["decoys"] == [] for s in scenes.values())
    assert all(o["halo"] is None for s in scenes.values() for o in s["objects"])
    assert "decoys: 0 beside 0" in describe(tmp_path / "s")


def _distance_to_outlines(label: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel to the nearest pixel of another label."""
    edge = np.zeros(label.shape, dtype=bool)
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    return distance_transform_edt(~edge)


def _outline_distance(scene: dict[str, Any], size: int) -> np.ndarray:
    """Distance (px) of every pixel to the nearest object outline, hidden or out-of-frame parts
    included (from the shapes in the scene description)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    out = np.full((size, size), np.inf)
    for o in scene["objects"]:
        spec, a = CLASSES[o["class"] - 1], np.radians(o["angle_deg"])
        dx, dy = xx - o["center"][0], yy - o["center"][1]
        u, v = np.cos(a) * dx + np.sin(a) * dy, -np.sin(a) * dx + np.cos(a) * dy
        out = np.minimum(out, np.abs(synth._shape_sdf(spec.shape, u, v, o["radius"], o["aspect"])))
    return out


def test_boundary_blend_changes_only_a_band_around_the_outlines_and_keeps_the_masks() -> None:
    base = KnobsV2(decoy_prob=0.0)
    near_hue = far_hue = 0
    for i in range(8):
        off = _render(dataclasses.replace(base, boundary_blend=0.0), i)
        on = _render(base, i)
        assert np.array_equal(off[1], on[1]) and np.array_equal(off[2], on[2]), "the masks keep the outline"
        changed = np.abs(on[0].astype(int) - off[0].astype(int)).max(axis=2) > 0
        widest = max(o["halo"]["width_px"] for o in on[3]["objects"])
        reach = (1 + synth_v2.HALO_WOBBLE) * widest + 3  # + blur
        assert changed.any() and not (changed & (_outline_distance(on[3], 96) > reach)).any()
        # the halo: background next to an object takes the object's hue
        for o in on[3]["objects"]:
            ring = (on[1] == 0) & (_distance_to_outlines(on[1]) <= 0.5 * o["halo"]["width_px"])
            ring &= np.hypot(*(np.mgrid[0:96, 0:96] + 0.5 - np.array(o["center"])[::-1, None, None])) < 1.6 * o["radius"]
            if ring.sum() < 20:
                continue
            fam = COLOUR_FAMILIES[CLASSES[o["class"] - 1].colour]
            gap_on = _hue_gap(_hue(on[0][ring].astype(float)), fam)
            gap_off = _hue_gap(_hue(off[0][ring].astype(float)), fam)
            near_hue += gap_on < gap_off
            far_hue += gap_on >= gap_off
    assert near_hue >= 4 * max(far_hue, 1), (near_hue, far_hue)


def test_decoys_change_only_their_blobs_and_are_background() -> None:
    base = KnobsV2(boundary_blend=0.0)
    n = 0
    for i in range(10):
        off = _render(dataclasses.replace(base, decoy_prob=0.0), i)
        on = _render(dataclasses.replace(base, decoy_prob=1.0), i)
        assert np.array_equal(off[1], on[1]) and np.array_equal(off[2], on[2]), "decoys are background"
        assert on[3]["objects"] == off[3]["objects"]
        changed = np.abs(on[0].astype(int) - off[0].astype(int)).max(axis=2) > 0
        yy, xx = np.mgrid[0:96, 0:96] + 0.5
        near = np.zeros(changed.shape, dtype=bool)
        for d in on[3]["decoys"]:
            near |= np.hypot(xx - d["center"][0], yy - d["center"][1]) <= 1.3 * d["radius"] + 3
            assert d["px"] > 0 and on[1][int(d["center"][1]), int(d["center"][0])] == 0
            n += 1
        assert not (changed & ~near).any()
    assert n >= 10


def test_a_smaller_decoy_prob_keeps_a_subset_of_the_decoys() -> None:
    for i in range(8):
        few = _render(KnobsV2(decoy_prob=0.3), i)[3]["decoys"]
        many = _render(KnobsV2(decoy_prob=0.9), i)[3]["decoys"]
        assert {d["of"] for d in few} <= {d["of"] for d in many}


def test_decoys_wear_their_objects_material_and_no_badge(v2: Path) -> None:
    scenes = json.loads((v2 / "scenes.json").read_text())
    checked = 0
    for iid in _ids(v2):
        img, mask = _rgb(v2, iid), _mask(v2, iid)
        yy, xx = np.mgrid[0:128, 0:128] + 0.5
        for d in scenes[iid]["decoys"]:
            core = np.hypot(xx - d["center"][0], yy - d["center"][1]) <= 0.5 * d["radius"] * d["aspect"]
            assert (mask[core] == 0).all(), "a decoy is background in the ground truth"
            if core.sum() < 8 or (mask == d["class"]).sum() < 50:
                continue
            px = _body_pixels(img, core)
            assert len(px) >= 0.9 * core.sum(), "no badge on a decoy"
            body = _body_pixels(img, binary_erosion(mask == d["class"], iterations=3))
            assert _hue_gap(_hue(px), _hue(body)) < 2 * HUE_JITTER + 6, iid
            checked += 1
    assert checked >= 10


def test_decoys_are_a_minority_of_their_classes_pixels(v2: Path) -> None:
    scenes = json.loads((v2 / "scenes.json").read_text())
    obj = sum(o["visible_px"] for s in scenes.values() for o in s["objects"])
    dec = sum(d["px"] for s in scenes.values() for d in s["decoys"])
    assert 0.04 <= dec / (obj + dec) <= 0.16, dec / (obj + dec)


# ----------------------------------------------------------------------------- command line
def test_knobs_from_args() -> None:
    k = synth_v2.knobs_from_args(2, ["decoy_prob=0", "radius_range=0.1,0.2"])
    assert isinstance(k, KnobsV2) and k.decoy_prob == 0.0 and k.radius_range == (0.1, 0.2)
    assert type(synth_v2.knobs_from_args(1, ["context_prob=0.8"])) is Knobs
    assert synth_v2.knobs_from_args(1, ["context_prob=0.8"]) == Knobs()
    for version, bad, msg in ((2, "nope=1", "no such knob"), (1, "decoy_prob=0", "no such knob"),
                              (2, "decoy_prob", "NAME=VALUE"), (2, "decoy_prob=x", "a number"),
                              (2, "radius_range=0.1", "2 comma-separated")):
        with pytest.raises(SynthError, match=msg):
            synth_v2.knobs_from_args(version, [bad])


def test_cli_refuses_an_unknown_knob_in_one_line(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "aakit.cli", "data", "synth", "--out", str(tmp_path / "s"),
                        "--n-train", "2", "--n-val", "1", "--knob", "halo=1"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "halo" in p.stderr
    assert not (tmp_path / "s").exists()


def test_cli_version_and_knobs(tmp_path: Path) -> None:
    from aakit import cli

    argv = ["data", "synth", "--out", str(tmp_path / "s"), "--n-train", "2", "--n-val", "1",
            "--knob", "decoy_prob=0", "--knob", "boundary_blend=0.5"]
    cli.app(argv, standalone_mode=False)
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["version"] == "2.0" and meta["knobs"]["decoy_prob"] == 0.0
    assert meta["knobs"]["boundary_blend"] == 0.5
    cli.app(["data", "synth", "--out", str(tmp_path / "s1"), "--n-train", "2", "--n-val", "1",
             "--version", "1"], standalone_mode=False)
    assert is_generated(tmp_path / "s1", n_train=2, n_val=1)


def test_the_core_imports_no_cli() -> None:
    code = "import sys, aakit.data.synth_v2; print(any(m.split('.')[0] in ('typer', 'textual', 'click') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
