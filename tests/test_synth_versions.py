"""The benchmark's version registry (aakit.data.synth.versions, issue 29): every entry gives what
a version must, writes a set that describes itself, and a new version plugs in as one module
plus one entry."""
from __future__ import annotations

import hashlib
import types
from pathlib import Path

import pytest

from aakit.data import synth
from aakit.data.scene import ClassSpec, Knobs, SynthError, class_table
from aakit.data.synth import v1, versions
from aakit.data.synth.versions import REGISTRY

NAMES = ("VERSION", "CLASSES", "DEFAULT_KNOBS", "DEFAULT_N_VAL", "check_knobs", "make_steps", "meta_extra",
         "describe_lines")


def _tree(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("number", sorted(REGISTRY))
def test_every_version_gives_what_the_registry_reads(number: int) -> None:
    v = REGISTRY[number]
    assert [n for n in NAMES if not hasattr(v, n)] == []
    assert v.VERSION.split(".")[0] == str(number) and versions.version_of_label(v.VERSION) is v
    assert all(isinstance(c, ClassSpec) for c in v.CLASSES) and len({c.name for c in v.CLASSES}) == len(v.CLASSES)
    assert {c.context for c in v.CLASSES} <= set(synth.BACKGROUNDS)
    assert v.check_knobs(None) is v.DEFAULT_KNOBS
    others = [REGISTRY[n].DEFAULT_KNOBS for n in REGISTRY if type(REGISTRY[n].DEFAULT_KNOBS) is not type(v.DEFAULT_KNOBS)]
    for knobs in others:  # another version's knob record is refused
        with pytest.raises(SynthError, match=f"version {number} takes"):
            v.check_knobs(knobs)
    assert synth.synth_spec(version=number).n_val == v.DEFAULT_N_VAL


@pytest.mark.parametrize("number", sorted(REGISTRY))
def test_every_version_writes_a_set_that_describes_itself(number: int, tmp_path: Path) -> None:
    opts = dict(n_train=3, n_val=2, num_classes=3, size=48, seed=5, version=number)
    meta = synth.generate(tmp_path / "a", **opts)  # type: ignore[arg-type]
    synth.generate(tmp_path / "b", **opts)  # type: ignore[arg-type]
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert meta["version"] == REGISTRY[number].VERSION
    assert meta["class_names"] == ["background"] + [c.name for c in REGISTRY[number].CLASSES[:3]]
    assert synth.is_generated(tmp_path / "a", **opts)  # type: ignore[arg-type]
    text = synth.describe(tmp_path / "a")
    assert text.startswith(f"aakit-synth v{REGISTRY[number].VERSION}")


def test_a_new_version_is_one_module_and_one_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Version 9: version 1's drawing with three classes of its own and a line in describe."""
    nine = types.ModuleType("v9")
    nine.VERSION, nine.DEFAULT_KNOBS, nine.DEFAULT_N_VAL = "9.0", Knobs(), 3
    nine.CLASSES = class_table("""
        a_ring   ring     red     dots     plus      sky
        b_cross  cross    blue    plain    bands     sand
        c_star   star     green   checker  split_h   water
    """)
    nine.check_knobs = lambda knobs: knobs or nine.DEFAULT_KNOBS
    nine.make_steps = v1.make_steps
    nine.meta_extra = lambda: {"nine": True}
    nine.describe_lines = lambda scenes, ids: [f"  nine: {len(ids)} images"]
    monkeypatch.setitem(REGISTRY, 9, nine)
    meta = synth.generate(tmp_path / "s", n_train=2, num_classes=3, size=48, version=9)
    assert meta["version"] == "9.0" and meta["nine"] is True and meta["n_val"] == 3
    assert meta["class_names"][1:] == ["a_ring", "b_cross", "c_star"]
    assert synth.is_generated(tmp_path / "s", n_train=2, num_classes=3, size=48, version=9)
    assert synth.describe(tmp_path / "s").splitlines()[-1] == "  nine: 3 images"
    with pytest.raises(SynthError, match=r"num_classes = 4 must be in 2\.\.3"):
        synth.synth_spec(version=9, num_classes=4)


def test_an_unknown_version_and_a_bad_class_table_are_one_line_errors() -> None:
    with pytest.raises(SynthError, match=r"version = 7 must be one of \[1, 2, 3\]"):
        synth.generate("unused", version=7)
    with pytest.raises(SynthError, match="a line with 5 cells, not 6: x ring red dots plus"):
        class_table("ok ring red dots plus sky\nx ring red dots plus  # no context\n")


def test_the_old_module_paths_still_import() -> None:
    from aakit.data import synth_v2
    from aakit.data.synth import v2

    assert synth_v2.CLASSES is v2.CLASSES and synth_v2.KnobsV2 is v2.KnobsV2
    assert synth_v2.knobs_from_args is synth.knobs_from_args and synth.SYNTH_VERSION == v1.VERSION
