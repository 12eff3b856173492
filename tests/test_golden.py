"""Golden run: a fixed-seed two-epoch training gives the same numbers, bit for bit (issue 13).

Written before the trainer was reshaped (hooks, loss table); any change to what a step
computes shows here. One thread and CRFs in the training process, so the numbers do not depend
on the machine's core count. If a change is *meant* to alter training, update the constants
below in the same commit and say why in its message.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from conftest import REPO, tiny_overrides

GOLDEN = {  # measured on the trainer before issue 13 (commit after a03e171)
    "weights_sha256": "b18858ec7e06b07d8c7e6cf55477ad7044c0669389ba506a045feb6efe5fc68d",
    "val": 0.192901575919801,
    "val_rfpc": 0.2787028674942991,
    "pseudo_miou": 0.3168815516071169,
    "last_losses": {"aa": 1.203174948692, "ce": 2.671630382538, "cls": 0.601948618889, "lr": 0.127962499857,
                    "total": 4.604716777802},
}


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def golden_run(root: Path, results: Path) -> dict[str, object]:
    from aakit.config import load_config
    from aakit.engine.train import train
    from aakit.runs import read_metrics

    over = tiny_overrides(root) | {"pseudo.workers": 0, "eval.save_examples": 0, "train.seed": 11}
    cfg = load_config(REPO / "experiments/synthetic/full.yaml", over)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = train(cfg, results=results, progress=False)
    finally:
        torch.set_num_threads(threads)
    summary = json.loads((run / "summary.json").read_text())
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    steps = [r for r in read_metrics(run / "metrics.jsonl")[0] if r.get("kind") == "step"]
    return {
        "weights_sha256": weights_digest(state),
        "val": summary["metrics"]["val"]["miou"],
        "val_rfpc": summary["metrics"]["val_rfpc"]["miou"],
        "pseudo_miou": summary["pseudo_miou"],
        "last_losses": {k: round(v, 12) for k, v in sorted(steps[-1]["losses"].items())},
    }


def test_golden_two_epoch_training_is_bit_identical(tiny_synth: Path, tmp_path: Path) -> None:
    got = golden_run(tiny_synth, tmp_path)
    assert got == GOLDEN, json.dumps(got)
