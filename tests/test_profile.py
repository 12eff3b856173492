"""The pseudo-label error profile (issue 14): its counts on a hand-made case, and the command."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aakit.engine.profile import _Tally, boundary_distance
from conftest import REPO, tiny_overrides


def test_boundary_distance_and_tally_by_hand() -> None:
    gt = np.zeros((60, 60), np.uint8)
    gt[10:30, 10:20] = 1
    d = boundary_distance(gt)
    assert d[20, 9] == 0.0 and d[20, 8] == pytest.approx(1.0) and d[20, 15] >= 4 and d[59, 59] > 20
    label = np.full_like(gt, 255)
    label[12:28, 12:18] = 1          # object interior: correct
    label[12:28, 20:22] = 1          # a band just outside the object: wrong, near the boundary
    label[56:60, 56:60] = 1          # far leakage: wrong, 24+ px from the object
    label[34:40, 0:6] = 0            # background, correct
    t = _Tally(2)
    ones = np.ones(gt.shape, np.float32)
    t.add(label, gt, {"crf": ones, "cam": ones * 0.5, "net": ones * 0.25})
    r = t.result()
    wrong = 16 * 2 + 16
    assert r["precision"] == pytest.approx((16 * 6 + 36) / (16 * 6 + 36 + wrong))
    assert r["wrong_within_px"]["2"] == pytest.approx(32 / wrong)  # the band only
    far = np.hypot(np.arange(56, 60)[:, None] - 29, np.arange(56, 60)[None] - 19).min()
    assert far >= 24 and r["leak_far_share"] == pytest.approx(16 / wrong)
    assert r["v"]["cam"]["correct"]["mean"] == pytest.approx(0.5) and r["v"]["net"]["wrong"]["n"] == wrong
    assert r["miou_dense"] != pytest.approx(r["miou_labelled"])  # ignored pixels count as background there


def test_profile_command_on_a_trained_run(tiny_synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import sys

    from aakit import cli
    from aakit.config import load_config
    from aakit.engine.train import train

    over = tiny_overrides(tiny_synth) | {"train.epochs": 1, "train.cls_warmup_epochs": 0}
    run = train(load_config(REPO / "experiments/synthetic/baseline.yaml", over), results=tmp_path, progress=False)
    monkeypatch.setattr(sys, "argv", ["aakit", "data", "profile", str(run), "--images", "3", "--json", str(tmp_path / "p.json")])
    try:
        cli.main()
    except SystemExit as e:
        assert e.code in (0, None), capsys.readouterr().err
    prof = json.loads((tmp_path / "p.json").read_text())
    assert prof["images"] == 3 and 0 <= (prof["coverage"] or 0) <= 1
    assert set(prof["v"]) == {"crf", "cam", "net"} and set(prof["wrong_within_px"]) == {"1", "2", "4", "8", "24"}


def test_decoys_are_counted_from_the_scene() -> None:
    from aakit.engine.profile import decoy_map

    scene = {"decoys": [{"class": 3, "center": [20.0, 10.0], "radius": 5.0, "aspect": 0.6, "angle_deg": 0.0}]}
    m = decoy_map(scene, (30, 40))
    assert m[10, 20] == 3 and m[10, 23] == 3 and m[10, 26] == 0 and m[13, 20] == 0  # 4.25 x 2.55 px semi-axes
    label = np.full((30, 40), 255, np.uint8)
    label[m == 3] = 3           # every decoy pixel taken into its class
    label[0:5, 0:5] = 3         # plus 25 pixels of the class elsewhere
    t = _Tally(4)
    ones = np.ones(label.shape, np.float32)
    t.add_decoys(label, m, {"crf": ones, "cam": ones * 0.7, "net": ones})
    d = t.result()["decoys"]
    n = int((m == 3).sum())
    assert d["taken_share"] == 1.0 and d["share_of_class_labels"] == pytest.approx(n / (n + 25))
    assert t.result()["v"]["cam"]["decoy"]["mean"] == pytest.approx(0.7)
