"""Evaluation of averaged weights (aakit.engine.averaging; issue 30): the EMA and SWA updates by
hand, and a resumed run that averages exactly as an uninterrupted one."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import REPO, tiny_overrides

from aakit.config import load_config
from aakit.engine.averaging import WeightAverage, ema_debiased, ema_update, swa_update


def test_ema_update_by_hand() -> None:
    s = torch.tensor([0.0])
    ema_update(s, torch.tensor([2.0]), 0.9)  # 0.9 * 0 + 0.1 * 2
    assert s.item() == pytest.approx(0.2)
    ema_update(s, torch.tensor([4.0]), 0.9)  # 0.9 * 0.2 + 0.1 * 4
    assert s.item() == pytest.approx(0.58)
    # bias-corrected: (0.9 * 0.1 * 2 + 0.1 * 4) / (1 - 0.81) = 0.58 / 0.19, weights 0.9 : 1 on 2 and 4
    assert ema_debiased(s, 0.9, 2).item() == pytest.approx((0.9 * 2 + 1 * 4) / 1.9)
    one = torch.tensor([0.0])
    ema_update(one, torch.tensor([3.0]), 0.99)
    assert ema_debiased(one, 0.99, 1).item() == pytest.approx(3.0)  # one update: the weights themselves


def test_swa_update_is_the_running_mean() -> None:
    m = torch.tensor([0.0])
    for n, w in enumerate((1.0, 2.0, 6.0)):
        swa_update(m, torch.tensor([w]), n)
    assert m.item() == pytest.approx(3.0)


def test_weight_average_on_a_network() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.BatchNorm1d(1))
    ema = WeightAverage(net, "ema", decay=0.5)
    assert torch.equal(ema.averaged(net)["0.weight"], net.state_dict()["0.weight"])  # no update yet: live
    for w in (1.0, 3.0):
        net[0].weight.data.fill_(w)
        ema.after_step(net)
    # (0.5 * 1 + 1 * 3) / 1.5
    assert ema.averaged(net)["0.weight"].item() == pytest.approx(3.5 / 1.5)
    net[1].running_mean.fill_(7.0)
    assert ema.averaged(net)["1.running_mean"].item() == 7.0  # buffers: the live network's
    swa = WeightAverage(net, "swa", epochs_kept=2)
    for epoch, w in ((1, 10.0), (2, 2.0), (3, 4.0)):
        net[0].weight.data.fill_(w)
        swa.after_epoch(net, epoch, 3)
        swa.after_step(net)  # swa ignores steps
    assert swa.n == 2 and swa.averaged(net)["0.weight"].item() == pytest.approx(3.0)  # epochs 2 and 3
    copy = WeightAverage(net, "ema", decay=0.5)
    copy.load_state_dict(ema.state_dict())
    assert torch.equal(copy.averaged(net)["0.weight"], ema.averaged(net)["0.weight"])


def _cfg(root: Path, **extra: object):
    over = tiny_overrides(root) | {"eval.save_examples": 0, "eval.mechanism": False, "train.epochs": 3,
                                   "logging.backends": ["jsonl"], "eval.weights": "ema", "eval.ema_decay": 0.8} | extra
    return load_config(REPO / "experiments/synthetic/full.yaml", over)


def test_ema_run_resumed_averages_as_an_uninterrupted_one(tmp_path: Path, tiny_synth: Path) -> None:
    from aakit.engine.rundir import load_checkpoint_file
    from aakit.engine.train import train

    whole = train(_cfg(tiny_synth), results=tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):  # stopped mid-epoch 2, after epoch 1's evaluation
        train(_cfg(tiny_synth), results=tmp_path / "b", progress=False, stop_after_steps=6)
    cut = next((tmp_path / "b" / "runs").iterdir())
    mid = load_checkpoint_file(cut / "checkpoints" / "last.pt")
    assert mid["averaging"]["n"] == 6 and mid["step"] == 6
    resumed = train(_cfg(tiny_synth), results=tmp_path / "b", progress=False, resume=cut)
    a = load_checkpoint_file(whole / "checkpoints" / "last.pt")
    b = load_checkpoint_file(resumed / "checkpoints" / "last.pt")
    assert a["averaging"]["n"] == b["averaging"]["n"] == 12
    for k in a["model"]:  # after the last epoch the network holds the average
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["averaging"]["avg"]:
        assert torch.equal(a["averaging"]["avg"][k], b["averaging"]["avg"][k]), k
    sa, sb = (json.loads((r / "summary.json").read_text()) for r in (whole, resumed))
    assert sa["metrics"]["val"]["miou"] == sb["metrics"]["val"]["miou"]
    assert sa["weights"] == {"kind": "ema", "updates": 12}
    assert "val_last" in sa["metrics"] and "val_last_rfpc" in sa["metrics"]


def test_ema_leaves_the_training_alone(tmp_path: Path, tiny_synth: Path) -> None:
    """The live weights of an ema run are those of a last run: its val_last is the last run's val."""
    from aakit.engine.train import train

    ema = train(_cfg(tiny_synth), results=tmp_path / "a", progress=False)
    last = train(_cfg(tiny_synth, **{"eval.weights": "last"}), results=tmp_path / "b", progress=False)
    se, sl = (json.loads((r / "summary.json").read_text()) for r in (ema, last))
    assert se["metrics"]["val_last"]["miou"] == sl["metrics"]["val"]["miou"]
    assert se["metrics"]["val_last"]["iou"] == sl["metrics"]["val"]["iou"]
    assert "weights" not in sl and "val_last" not in sl["metrics"]


def test_swa_run_evaluates_the_mean_of_the_last_epoch_ends(tmp_path: Path, tiny_synth: Path) -> None:
    """swa with swa_epochs 2 of 3: the run's final weights are the mean of the live weights at the
    ends of epochs 2 and 3 (those of a last run stopped after epoch 2, and of a whole last run)."""
    from aakit.engine.rundir import load_checkpoint_file
    from aakit.engine.train import train

    swa = train(_cfg(tiny_synth, **{"eval.weights": "swa"}), results=tmp_path / "a", progress=False)
    whole = train(_cfg(tiny_synth, **{"eval.weights": "last"}), results=tmp_path / "b", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_synth, **{"eval.weights": "last"}), results=tmp_path / "c", progress=False,
              stop_after_steps=8)  # 16 images / batch 4: the end of epoch 2
    cut = next((tmp_path / "c" / "runs").iterdir())
    w2 = load_checkpoint_file(cut / "checkpoints" / "last.pt")["model"]
    w3 = load_checkpoint_file(whole / "checkpoints" / "last.pt")["model"]
    got = load_checkpoint_file(swa / "checkpoints" / "last.pt")
    assert got["averaging"]["n"] == 2 and got["step"] == 12
    for k, v in got["model"].items():
        assert torch.allclose(v, (w2[k] + w3[k]) / 2, rtol=1e-6, atol=1e-7), k
    assert json.loads((swa / "summary.json").read_text())["weights"] == {"kind": "swa", "updates": 2}
