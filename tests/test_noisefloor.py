"""The noise floor of a grid's pairs (aakit report --variance --compare NAME; issue 30), on fake
run directories with numbers worked out by hand."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_cli  # noqa: E402
from experiment_fakes import write_run  # noqa: E402

from aakit.experiment import grid as G  # noqa: E402
from aakit.experiment.noisefloor import class_shares, noise_pairs, paired_sd  # noqa: E402
from aakit.runs import atomic_write_json, read_json  # noqa: E402

NOISE = """\
name: noise
base: base.yaml
preset: synthetic
seeds: [0, 1, 2]
order: seeds
rows:
  - {table: 0, row: ref, set: {}}
  - {table: 0, row: data, set: {train.data_seed: "{seed} + 1000"}}
  - {table: 0, row: aug, set: {train.aug_seed: "{seed} + 1000"}}
compare:
  - {winner: data, other: ref, text: "data order"}
  - {winner: aug, other: ref}
"""
# val IoU per class (points); ref is 50 everywhere
IOU = {
    "ref": [[50.0] * 5] * 3,
    "data": [[50, 50, 50, 50, 55], [50, 50, 50, 50, 45], [50, 52.5, 50, 50, 50]],  # mIoU diffs +1, -1, +0.5
    "aug": [[50.0] * 5] * 3,  # identical to ref: sd 0
}


def make(tmp_path: Path) -> Path:
    (tmp_path / "base.yaml").write_text(
        f"preset: synthetic\nmodel: {{backbone: small, num_classes: 5}}\ntrain: {{epochs: 1}}\n"
        f"data: {{root: {tmp_path / 'synth'}}}\n")
    (tmp_path / "noise.yaml").write_text(NOISE)
    grid = G.load_grid(tmp_path / "noise.yaml")
    results = tmp_path / "results"
    points = []
    for p in grid.points:
        run = write_run(results, p.config, p.run_name)
        summary = read_json(run / "summary.json")
        iou = [x / 100 for x in IOU[p.row][p.seed]]
        summary["metrics"]["val"] = {**summary["metrics"]["val"], "iou": iou, "miou": float(np.mean(iou))}
        atomic_write_json(run / "summary.json", summary)
        points.append({"id": p.id, "table": 0, "row": p.row, "params": p.params, "seed": p.seed, "hash": p.hash,
                       "metric": "val", "run": run.name, "state": "done"})
    G.write_state(grid, results, points, "journal", "grid-noise")
    return results


def test_the_rows_differ_by_their_own_seed_only(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("preset: synthetic\nmodel: {backbone: small, num_classes: 5}\n")
    (tmp_path / "noise.yaml").write_text(NOISE)
    pts = {(p.row, p.seed): p.config for p in G.load_grid(tmp_path / "noise.yaml").points}
    assert pts[("data", 2)].train.data_seed == 1002 and pts[("data", 2)].train.seed == 2
    assert pts[("data", 2)].train.aug_seed is None and pts[("aug", 1)].train.aug_seed == 1001


def test_paired_sd_and_class_shares_by_hand() -> None:
    d = np.array([[0, 0, 0, 0, 5], [0, 0, 0, 0, -5], [0, 2.5, 0, 0, 0]])
    assert paired_sd(d.mean(axis=1)) == pytest.approx((13 / 12) ** 0.5)  # D = 1, -1, 0.5
    shares = class_shares(d)
    assert shares is not None
    assert shares[4] == pytest.approx(360 / 390) and shares[1] == pytest.approx(30 / 390)
    assert shares.sum() == pytest.approx(1.0) and shares[0] == 0.0
    assert paired_sd(np.array([1.0])) is None and class_shares(np.zeros((3, 5))) is None


def test_noise_pairs_of_a_grid(tmp_path: Path) -> None:
    df = noise_pairs(make(tmp_path), "noise").set_index("winner")
    data = df.loc["data"]
    assert data.source == "data order" and data.pairs == 3 and data.seeds == [0, 1, 2]
    assert data.mean_diff == pytest.approx(1 / 6) and data.paired_sd == pytest.approx((13 / 12) ** 0.5)
    assert data.class_shares[4] == pytest.approx(360 / 390)
    assert data.class_rms[4] == pytest.approx((50 / 3) ** 0.5)
    aug = df.loc["aug"]
    assert aug.paired_sd == 0.0 and aug.class_shares is None and aug.source == "aug beats ref"


def test_cli_variance_compare_md_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    results = make(tmp_path)
    code, out, _ = run_cli(["report", "--variance", "--compare", "noise", "--format", "md", "--results",
                            str(results)], monkeypatch, capsys)
    assert code == 0 and "| data order | 3 | +0.17 | 1.04 | c4 92 %, c1 8 %" in out, out
    code, out, _ = run_cli(["report", "--variance", "--compare", "noise", "--format", "json", "--results",
                            str(results)], monkeypatch, capsys)
    assert code == 0 and json.loads(out)[0]["paired_sd"] == pytest.approx((13 / 12) ** 0.5)
    code, out, err = run_cli(["report", "--variance", "--compare", "nope", "--results", str(results)],
                             monkeypatch, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and not out
