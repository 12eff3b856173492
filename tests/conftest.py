"""Shared fixtures: a tiny embedded benchmark and a tiny training config built on it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 train + 8 val images of 64 px, 4 object classes (generated once per session)."""
    from aakit.data import synth

    root = tmp_path_factory.mktemp("synth") / "set"
    synth.generate(root, n_train=16, n_val=8, num_classes=4, size=64, seed=3)
    return root


def tiny_overrides(root: Path) -> dict[str, object]:
    """A 2-epoch schedule on the tiny benchmark: 1 warm-up epoch, then every loss."""
    return {
        "data.root": str(root),
        "model.pretrained": None,
        "model.num_classes": 5,
        "model.embed_dim": 16,
        "model.small_width": 8,
        "model.cam_scales": [1.0, 0.5],
        "data.crop": 64,
        "loss.dilations": [2, 4],
        "train.epochs": 2,
        "train.cls_warmup_epochs": 1,
        "train.batch_size": 4,
        "pseudo.workers": 0,
        "eval.pseudo_images": 4,
        "eval.max_images": 4,
        "optim.lr": 0.01,
    }


@pytest.fixture()
def tiny_config(tiny_synth: Path):
    from aakit.config import load_config

    return load_config(REPO / "experiments" / "synthetic" / "full.yaml", tiny_overrides(tiny_synth))
