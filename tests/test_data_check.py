"""``check_layout`` finds every planted problem (one case per kind), nothing on a clean layout."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from _voc_layout import (
    H,
    W,
    Layout,
    add_annotations,
    make_layout,
    small_meta,
    write_palette_png,
)
from aakit.data.check import EXAMPLES, KINDS, NOTE_KINDS, Problem, check_layout, summarize
from aakit.data.voc import build_label_cache

SEG = "ImageSets/Segmentation"
VOC = "SegmentationClass"
AUG = "SegmentationClassAug"


def edit_cache(root: Path, change: Callable[[dict], None]) -> None:
    cache = json.loads((root / "cls_labels.json").read_text())
    change(cache)
    (root / "cls_labels.json").write_text(json.dumps(cache))


def annotate(root: Path, extra: dict | None = None) -> Path:
    """Add Annotations/ to the layout at ``root`` (XMLs following its masks, plus ``extra``)."""
    classes = json.loads((root / "cls_labels.json").read_text())
    add_annotations(Layout(root=root, splits={}, classes=classes), extra)
    return root / "Annotations"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# Each case: plant one problem; expected kind; a piece of its `where`; other kinds it may cause.
CASES: dict[str, tuple[Callable[[Path], None], str, set[str]]] = {
    "missing_folder": (
        lambda r: shutil.rmtree(r / "SegmentationClassAug"),
        "SegmentationClassAug",
        {"missing_mask"},
    ),
    "missing_split": (lambda r: (r / SEG / "train.txt").unlink(), "train.txt", set()),
    "empty_split": (lambda r: (r / SEG / "train.txt").write_text("\n"), "train.txt", set()),
    "duplicate_id": (lambda r: (r / SEG / "val.txt").write_text("v0\nv1\nv0\n"), "val.txt", set()),
    "missing_image": (lambda r: (r / "JPEGImages" / "s1.jpg").unlink(), "JPEGImages/s1.jpg", set()),
    "corrupt_image": (lambda r: truncate(r / "JPEGImages" / "t2.jpg"), "JPEGImages/t2.jpg", set()),
    "missing_mask": (lambda r: (r / "SegmentationClassAug" / "s0.png").unlink(), "s0.png", set()),
    "bad_mask": (lambda r: (r / AUG / "s1.png").write_bytes(b"junk"), "s1.png", set()),
    "bad_mask_values": (
        lambda r: write_palette_png(r / VOC / "v1.png", np.full((H, W), 33, np.uint8)),
        "SegmentationClass/v1.png",
        set(),
    ),
    "size_mismatch": (
        lambda r: write_palette_png(r / VOC / "v0.png", np.zeros((H + 2, W), np.uint8)),
        "SegmentationClass/v0.png",
        set(),
    ),
    "missing_cache": (lambda r: (r / "cls_labels.json").unlink(), "cls_labels.json", set()),
    "bad_cache": (lambda r: edit_cache(r, lambda c: c.update(t0=[0, 99])), "t0", set()),
    "no_labels": (lambda r: edit_cache(r, lambda c: c.pop("s0")), "s0", set()),
    "label_mismatch": (lambda r: edit_cache(r, lambda c: c.update(t1=[19])), "t1", set()),
    "overlap": (lambda r: (r / SEG / "train_aug.txt").write_text("s0\nt0\nv1\n"), "v1", set()),
    "bad_meta": (
        lambda r: (r / "meta.json").write_text(json.dumps({**small_meta(21), "class_names": ["x"]})),
        "meta.json",
        set(),
    ),
    "missing_xml": (lambda r: (annotate(r) / "s1.xml").unlink(), "Annotations/s1.xml", set()),
    "bad_xml": (lambda r: (annotate(r) / "t1.xml").write_text("<annotation>"), "t1.xml", set()),
    "xml_mask_disagreement": (lambda r: annotate(r, {"v0": [("cow", 1)]}), "Annotations", set()),
    "xml_unknown_class": (lambda r: annotate(r, {"v1": [("unicorn", 0)]}), "Annotations", set()),
}


def test_every_kind_has_a_case() -> None:
    assert set(CASES) == set(KINDS)


def test_clean_layout_has_no_problem(tmp_path: Path) -> None:
    make_layout(tmp_path)
    calls: list[tuple[int, int]] = []
    assert check_layout(tmp_path, progress=lambda *a: calls.append(a)) == []
    assert calls == [(n, 7) for n in range(1, 8)]
    assert check_layout(tmp_path, quick=True, workers=1) == []


def test_clean_benchmark_layout_with_meta(tmp_path: Path) -> None:
    make_layout(tmp_path, num_classes=5, meta=small_meta(5))
    assert check_layout(tmp_path) == []


@pytest.mark.parametrize("kind", sorted(CASES))
def test_finds_planted_problem(tmp_path: Path, kind: str) -> None:
    make_layout(tmp_path)
    plant, where, allowed = CASES[kind]
    plant(tmp_path)
    problems = check_layout(tmp_path)
    hits = [p for p in problems if p.kind == kind]
    assert hits, f"{kind} not found in {problems}"
    assert any(where in p.where for p in hits)
    assert all(p.message and not p.message.startswith(p.where) for p in problems)
    assert all(str(p) == f"{p.where}: {p.message}" for p in problems)
    assert {p.kind for p in problems} <= {kind} | allowed, problems


def test_bad_meta_names_the_key(tmp_path: Path) -> None:
    make_layout(tmp_path)
    CASES["bad_meta"][0](tmp_path)
    (problem,) = check_layout(tmp_path)
    assert problem.where == "meta.json" and "class_names" in problem.message


def test_bad_meta_values_checked_against_meta_classes(tmp_path: Path) -> None:
    make_layout(tmp_path, num_classes=5, meta=small_meta(5))
    write_palette_png(tmp_path / "SegmentationClassAug" / "s0.png", np.full((H, W), 7, np.uint8))
    problems = check_layout(tmp_path)
    assert any(p.kind == "bad_mask_values" and "s0.png" in p.where for p in problems)


def test_lists_every_problem_not_just_the_first(tmp_path: Path) -> None:
    make_layout(tmp_path)
    (tmp_path / "JPEGImages" / "t0.jpg").unlink()
    (tmp_path / "JPEGImages" / "v1.jpg").unlink()
    truncate(tmp_path / "JPEGImages" / "s1.jpg")
    (tmp_path / "SegmentationClass" / "v0.png").unlink()
    edit_cache(tmp_path, lambda c: c.update(s0=[]))
    problems = check_layout(tmp_path)
    assert summarize(problems) == {
        "missing_image": 2,
        "corrupt_image": 1,
        "missing_mask": 1,
        "no_labels": 1,
    }
    assert all(isinstance(p, Problem) for p in problems)


def test_quick_mode_reads_headers_only(tmp_path: Path) -> None:
    make_layout(tmp_path)
    write_palette_png(tmp_path / "SegmentationClass" / "v1.png", np.full((H, W), 33, np.uint8))
    write_palette_png(tmp_path / "SegmentationClass" / "v0.png", np.zeros((H, W + 1), np.uint8))
    rgb = tmp_path / "SegmentationClassAug" / "s0.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(rgb)
    kinds = {p.kind for p in check_layout(tmp_path, quick=True)}
    assert kinds == {"size_mismatch", "bad_mask"}  # value check skipped, header checks kept
    assert "bad_mask_values" in {p.kind for p in check_layout(tmp_path)}


def test_missing_root(tmp_path: Path) -> None:
    problems = check_layout(tmp_path / "nope")
    assert [p.kind for p in problems] == ["missing_folder"]


# ----------------------------------------------------------------------------- XML vs mask
def test_disagreements_are_counted_and_a_few_named(tmp_path: Path) -> None:
    lay = make_layout(tmp_path)
    ids = lay.splits["train_aug"] + lay.splits["val"]  # 7 images, each with an extra object
    annotate(tmp_path, {i: [("pottedplant", 1)] for i in ids})
    build_label_cache(tmp_path, ["train_aug", "val"])  # labels from the XML: no mismatch
    problems = check_layout(tmp_path)
    assert [p.kind for p in problems] == ["xml_mask_disagreement"]
    note = problems[0]
    assert note.is_note and note.where == "Annotations"
    assert note.message.startswith("7 image(s)")
    assert "7 with an XML class absent from the mask, 0 with a mask class" in note.message
    named = [i for i in ids if f"{i} XML" in note.message]
    assert len(named) == EXAMPLES < len(ids)
    assert "\n" not in note.message
    assert "xml_mask_disagreement" not in {p.kind for p in check_layout(tmp_path, quick=True)}


def test_cache_from_masks_is_stale_when_annotations_exist(tmp_path: Path) -> None:
    make_layout(tmp_path)  # cache from the masks
    annotate(tmp_path, {"t0": [("person", 1)]})
    problems = [p for p in check_layout(tmp_path) if not p.is_note]
    assert [(p.kind, p.where) for p in problems] == [("label_mismatch", "t0")]
    assert "Annotations/t0.xml names" in problems[0].message
    assert "aakit data voc" in problems[0].message


def test_mask_class_missing_from_xml_is_counted_the_other_way(tmp_path: Path) -> None:
    make_layout(tmp_path)
    xml = annotate(tmp_path) / "v1.xml"
    xml.write_text("<annotation><object><name>bird</name></object></annotation>")
    (note,) = check_layout(tmp_path)
    assert "1 image(s)" in note.message and "1 with a mask class absent from the XML" in note.message
    assert "v1 XML [3] mask" in note.message


def run_check(root: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    from aakit import cli

    monkeypatch.setattr("sys.argv", ["aakit", "data", "check", str(root)])
    try:
        cli.main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_cli_notes_alone_pass_malformed_xml_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_layout(tmp_path)
    xmls = annotate(tmp_path, {"v0": [("cow", 1)]})
    assert run_check(tmp_path, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "note: xml_mask_disagreement: Annotations: 1 image(s)" in out
    assert "no problems found" in out
    (xmls / "t1.xml").write_bytes(b"<annotation><object><name>cat</nam")
    assert run_check(tmp_path, monkeypatch) == 2
    out, err = capsys.readouterr()
    lines = [x for x in out.splitlines() if "bad_xml" in x]
    assert len(lines) == 1 and "Annotations/t1.xml: malformed XML" in lines[0]
    assert "Traceback" not in out + err and "1 problem(s)" in out


def test_note_kinds_are_kinds() -> None:
    assert NOTE_KINDS <= set(KINDS)
