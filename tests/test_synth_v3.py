"""Benchmark version 3 (aakit.data.synth.v3): wide ambiguous bands and version 2's decoys."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from aakit.data import synth, synth_v2
import aakit.data.synth.v3 as synth_v3
from aakit.data.synth import SynthError, describe, generate, is_generated, render_scene
from aakit.data.synth_v2 import KnobsV2
from aakit.data.synth.v3 import KnobsV3

SIZE = 128


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _render(knobs: KnobsV3, index: int, size: int = SIZE) -> tuple[Any, ...]:
    """Image ``index`` of a version-3 train split, as generate draws it (before JPEG)."""
    rng = synth._image_rng(0, "train", index)
    steps = synth_v3.make_steps(knobs, 0, 0, index)
    return render_scene(rng, size, synth_v3.CLASSES, knobs, steps)


@pytest.fixture(scope="module")
def v3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("v3") / "set"
    generate(root, n_train=12, n_val=4, size=SIZE, seed=3, version=3)
    return root


# ----------------------------------------------------------------------------- files
def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(n_train=6, n_val=2, size=64, seed=5, version=3)
    generate(tmp_path / "a", workers=1, **kw)
    generate(tmp_path / "b", workers=2, **kw)
    a, b = _all_bytes(tmp_path / "a"), _all_bytes(tmp_path / "b")
    assert a == b and len(a) > 20
    generate(tmp_path / "c", **{**kw, "seed": 6})
    assert _all_bytes(tmp_path / "c")["JPEGImages/train_00000.jpg"] != a["JPEGImages/train_00000.jpg"]


def test_meta_defaults_cache_and_other_versions(v3: Path) -> None:
    meta = json.loads((v3 / "meta.json").read_text())
    assert meta["version"] == "3.0" and meta["num_classes"] == 11
    assert meta["knobs"]["band_px"] == 24.0 and meta["knobs"]["band_mix"] == 0.55
    assert meta["knobs"]["decoy_prob"] == 0.5 and "bands" in meta and "decoys" in meta
    assert synth.synth_spec(version=3).n_val == 1000
    kw: dict[str, Any] = dict(n_train=12, n_val=4, size=SIZE, seed=3)
    assert is_generated(v3, version=3, **kw)
    assert not is_generated(v3, version=2, **kw), "a version-3 set is not version 2's"
    assert not is_generated(v3, version=3, knobs=KnobsV3(band_px=20.0), **kw)
    text = describe(v3)
    assert "v3.0" in text and "bands:" in text and "decoys:" in text


def test_each_version_refuses_the_others_knobs_and_bad_values() -> None:
    with pytest.raises(SynthError, match="version 3 takes"):
        generate("unused", version=3, knobs=KnobsV2())
    with pytest.raises(SynthError, match="version 2 takes"):
        generate("unused", version=2, knobs=KnobsV3())
    for bad, name in ((KnobsV3(band_px=-1.0), "band_px"), (KnobsV3(band_px=60.0), "band_px"),
                      (KnobsV3(band_mix=1.5), "band_mix"), (KnobsV3(decoy_prob=-0.1), "decoy_prob"),
                      (KnobsV3(context_prob=2.0), "context_prob")):
        with pytest.raises(SynthError, match=name):
            generate("unused", version=3, knobs=bad)


# ----------------------------------------------------------------------------- the bands
def _distance_outside(label: np.ndarray) -> np.ndarray:
    """Distance (px) of every background pixel to the nearest object pixel of the mask."""
    return distance_transform_edt(label == 0)


def test_bands_are_wider_than_the_shortest_affinity_pair_on_the_masks() -> None:
    """Measured on the generated masks: the background that the band changes reaches at least
    16 px (dilation 4 at output stride 4) from the objects' mask, all round, and the masks are
    those of the scene without bands."""
    base = KnobsV3(decoy_prob=0.0)
    checked = 0
    for i in range(8):
        on, off = _render(base, i), _render(dataclasses.replace(base, band_px=0.0), i)
        assert np.array_equal(on[1], off[1]) and np.array_equal(on[2], off[2]), "the masks keep the outline"
        changed = np.abs(on[0].astype(int) - off[0].astype(int)).max(axis=2) > 8
        dist = _distance_outside(on[1])
        # background within 16 px of an object, away from the frame (the band may leave it)
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        inner_frame = (np.minimum(np.minimum(yy, xx), np.minimum(SIZE - 1 - yy, SIZE - 1 - xx)) >= 2)
        ring = (on[1] == 0) & (dist > 0) & (dist <= 16) & inner_frame
        if ring.sum() < 50:
            continue
        assert changed[ring].mean() >= 0.9, (i, changed[ring].mean())
        # and the band ends: nothing changes beyond its widest reach (+ blur)
        widest = max(o["band"]["width_px"] for o in on[3]["objects"]) * (1 + synth_v3.BAND_WOBBLE)
        assert not (changed & (dist > widest + synth_v3.BAND_EDGE_PX + 3)).any()
        checked += 1
    assert checked >= 5


def test_band_error_regions_hold_pairs_with_both_ends_in_the_band() -> None:
    """At stride 4, a pair of offset 4 (16 px) with both ends in the band (background that
    looks half like the object) exists beside most objects: the case eq. 7's max acts on."""
    base = KnobsV3(decoy_prob=0.0)
    both = 0
    for i in range(6):
        on, off = _render(base, i), _render(dataclasses.replace(base, band_px=0.0), i)
        changed = np.abs(on[0].astype(int) - off[0].astype(int)).max(axis=2) > 8
        band = changed & (on[1] == 0)
        small = band[2::4, 2::4]  # the feature grid's pixels (centres)
        d = 4
        both += int((small[:, d:] & small[:, :-d]).sum() + (small[d:, :] & small[:-d, :]).sum())
    assert both >= 30, both


def test_knobs_at_zero_switch_the_phenomena_off() -> None:
    for i in range(4):
        off = _render(KnobsV3(band_px=0.0, decoy_prob=0.0), i)
        off_mix = _render(KnobsV3(band_mix=0.0, decoy_prob=0.0), i)
        assert np.array_equal(off[0], off_mix[0])
        assert off[3]["decoys"] == [] and all(o["band"] is None for o in off[3]["objects"])
        # the same scene as version 2 with both of its phenomena off: version 3 adds nothing else
        rng = synth._image_rng(0, "train", i)
        k2 = KnobsV2(boundary_blend=0.0, decoy_prob=0.0)
        v2 = render_scene(rng, SIZE, synth_v2.CLASSES, k2, synth_v2.make_steps(k2, 0, 0, i))
        assert np.array_equal(off[0], v2[0]) and np.array_equal(off[1], v2[1])


def test_decoys_present_background_and_independent_of_the_bands() -> None:
    n = 0
    for i in range(8):
        on = _render(KnobsV3(decoy_prob=1.0), i)
        no_band = _render(KnobsV3(decoy_prob=1.0, band_px=0.0), i)
        assert on[3]["decoys"] == no_band[3]["decoys"], "the bands do not move the decoys"
        for d in on[3]["decoys"]:
            assert d["px"] > 0 and on[1][int(d["center"][1]), int(d["center"][0])] == 0
            n += 1
    assert n >= 8


def test_decoys_in_the_files(v3: Path) -> None:
    scenes = json.loads((v3 / "scenes.json").read_text())
    assert sum(len(s["decoys"]) for s in scenes.values()) >= 3
    assert all(o["band"]["min_px"] >= 16 for s in scenes.values() for o in s["objects"])


# ----------------------------------------------------------------------------- command line
def test_knobs_from_args() -> None:
    k = synth.knobs_from_args(3, ["band_px=20", "radius_range=0.1,0.2"])
    assert isinstance(k, KnobsV3) and k.band_px == 20.0 and k.radius_range == (0.1, 0.2)
    for bad, msg in (("boundary_blend=1", "no such knob"), ("band_px", "NAME=VALUE"), ("band_px=x", "a number")):
        with pytest.raises(SynthError, match=msg):
            synth.knobs_from_args(3, [bad])


@pytest.mark.parametrize("knob", ["band_px=99", "band_mix=-1", "halo=1"])
def test_cli_refuses_a_bad_knob_in_one_line(tmp_path: Path, knob: str) -> None:
    p = subprocess.run([sys.executable, "-m", "aakit.cli", "data", "synth", "--version", "3", "--out",
                        str(tmp_path / "s"), "--n-train", "2", "--n-val", "1", "--knob", knob],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and knob.split("=")[0] in p.stderr
    assert not (tmp_path / "s").exists()


def test_cli_version_3_is_cached(tmp_path: Path) -> None:
    from aakit import cli

    argv = ["data", "synth", "--version", "3", "--out", str(tmp_path / "s"), "--n-train", "2", "--n-val", "1",
            "--knob", "band_px=20"]
    cli.app(argv, standalone_mode=False)
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["version"] == "3.0" and meta["knobs"]["band_px"] == 20.0
    before = (tmp_path / "s" / "meta.json").stat().st_mtime_ns
    cli.app(argv, standalone_mode=False)  # already generated: nothing rewritten
    assert (tmp_path / "s" / "meta.json").stat().st_mtime_ns == before


def test_the_core_imports_no_cli() -> None:
    code = "import sys, aakit.data.synth.v3; print(any(m.split('.')[0] in ('typer', 'textual', 'click') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
