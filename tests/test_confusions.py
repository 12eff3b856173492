"""Per-image confusion matrices are stored with an evaluation (issue 14: image-level bootstrap)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aakit.metrics import ConfusionMeter, mean_iou
from aakit.runs import read_confusions, write_confusions
from conftest import REPO, tiny_overrides


def test_meter_keeps_each_image_and_their_sum_is_the_matrix() -> None:
    rng = np.random.default_rng(0)
    meter = ConfusionMeter(3, keep_per_image=True)
    for _ in range(4):
        meter.update(rng.integers(0, 3, (5, 6)), rng.integers(0, 3, (5, 6)))
    assert meter.per_image.shape == (4, 3, 3) and (meter.per_image.sum(0) == meter.matrix).all()
    with pytest.raises(ValueError):
        _ = ConfusionMeter(3).per_image


def test_write_read_roundtrip(tmp_path: Path) -> None:
    arrays = {"plain": np.arange(2 * 3 * 3).reshape(2, 3, 3), "rfpc": np.ones((2, 3, 3), int)}
    write_confusions(tmp_path / "c.npz", arrays)
    back = read_confusions(tmp_path / "c.npz")
    assert back is not None and all((back[k] == arrays[k]).all() for k in arrays)
    assert read_confusions(tmp_path / "none.npz") is None


def test_aakit_eval_stores_per_image_confusions_that_give_its_miou(tiny_synth: Path, tmp_path: Path) -> None:
    import json

    from aakit.config import load_config
    from aakit.engine.evaluate import eval_protocol
    from aakit.engine.inference import evaluate_run
    from aakit.engine.train import train

    cfg = load_config(REPO / "experiments/synthetic/baseline.yaml",
                      tiny_overrides(tiny_synth) | {"train.epochs": 1, "train.cls_warmup_epochs": 0})
    run = train(cfg, results=tmp_path, progress=False)
    evaluate_run(run, eval_protocol(cfg, max_images=5))
    conf = read_confusions(run / "eval" / "val-ss-confusions.npz")
    assert conf is not None and conf["plain"].shape == (5, 5, 5)
    for key, slot in (("plain", "val-ss"), ("rfpc", "val-ss-rfpc")):
        stored = json.loads((run / "eval" / f"{slot}.json").read_text())
        assert mean_iou(conf[key].sum(0)) == pytest.approx(stored["miou"], abs=1e-12)


def test_a_training_stores_the_per_image_confusions_of_its_final_val(tiny_synth: Path, tmp_path: Path) -> None:
    import json

    from aakit.config import load_config
    from aakit.engine.train import train

    over = tiny_overrides(tiny_synth) | {"train.epochs": 1, "train.cls_warmup_epochs": 0}
    run = train(load_config(REPO / "experiments/synthetic/baseline.yaml", over), results=tmp_path / "a", progress=False)
    conf = read_confusions(run / "eval" / "val-ss-confusions.npz")
    summary = json.loads((run / "summary.json").read_text())
    assert conf is not None and len(conf["plain"]) == summary["metrics"]["val"]["images"] == 4
    assert mean_iou(conf["plain"].sum(0)) == pytest.approx(summary["metrics"]["val"]["miou"], abs=1e-12)
    assert mean_iou(conf["rfpc"].sum(0)) == pytest.approx(summary["metrics"]["val_rfpc"]["miou"], abs=1e-12)
    # a final protocol other than the per-epoch one (msf) is measured again, and stored under its name
    run = train(load_config(REPO / "experiments/synthetic/baseline.yaml", over | {"eval.protocol": "msf", "eval.scales": [1.0, 0.5]}),
                results=tmp_path / "b", progress=False)
    conf = read_confusions(run / "eval" / "val-msf-confusions.npz")
    summary = json.loads((run / "summary.json").read_text())
    assert conf is not None and mean_iou(conf["plain"].sum(0)) == pytest.approx(summary["metrics"]["val"]["miou"], abs=1e-12)
