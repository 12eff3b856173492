"""The trainer and its hooks (aakit.engine.trainer, aakit.engine.hooks): the moments hooks are
called at, and a new hook (keep the best checkpoint) added to a run's list."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from aakit.config import Config
from aakit.engine.distributed import DistInfo
from aakit.engine.hooks import BestCheckpoint, EvalHook
from aakit.engine.rundir import RunWriter, provenance
from aakit.engine.train import _build_data, build_trainer, default_hooks
from aakit.engine.trainer import HookBase
from aakit.runs import read_metrics


class Recorder(HookBase):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def before_train(self) -> None:
        self.calls.append("before_train")

    def before_epoch(self) -> None:
        self.calls.append(f"before_epoch {self.trainer.epoch}")

    def after_step(self) -> None:
        self.calls.append(f"step {self.trainer.step} {sorted(self.trainer.losses)}")

    def after_epoch(self) -> None:
        self.calls.append(f"after_epoch {self.trainer.epochs_done}")

    def after_train(self) -> None:
        self.calls.append(f"after_train {self.trainer.outcome}")


def test_hooks_run_around_the_loop_and_a_best_checkpoint_is_one_more_hook(tiny_config: Config, tmp_path: Path) -> None:
    cfg = tiny_config
    cfg.eval.save_examples = 0
    writer = RunWriter(tmp_path, cfg)
    data = _build_data(cfg)
    trainer, _ = build_trainer(cfg, data, writer, torch.device("cpu"), DistInfo(), resuming=False,
                               results=tmp_path, progress=False)
    writer.begin(provenance(cfg, command=["test"], overrides=[], device="cpu"))
    hooks = default_hooks(trainer, writer, data, epoch_callback=None, progress=False, stop_after_steps=None)
    assert isinstance(hooks[0], EvalHook)
    recorder = Recorder()
    trainer.register_hooks([*hooks[:1], BestCheckpoint(writer), *hooks[1:], recorder])
    trainer.train()

    cls_only, every = "['cls', 'total']", "['aa', 'ce', 'cls', 'lr', 'total']"  # warm-up, then every term
    assert recorder.calls == [
        "before_train", "before_epoch 0", *(f"step {s} {cls_only}" for s in (1, 2, 3, 4)), "after_epoch 1",
        "before_epoch 1", *(f"step {s} {every}" for s in (5, 6, 7, 8)), "after_epoch 2", "after_train finished",
    ]
    epochs = [r for r in read_metrics(writer.metrics_path)[0] if r["kind"] == "epoch"]
    best = torch.load(writer.path / "checkpoints" / "best.pt", weights_only=True)
    assert best["miou"] == max(r["miou"] for r in epochs)
    assert best["epoch"] == max(epochs, key=lambda r: r["miou"])["epoch"]
    assert json.loads((writer.path / "status.json").read_text())["status"] == "finished"
    summary = json.loads((writer.path / "summary.json").read_text())
    assert summary["status"] == "finished" and trainer.labeler is None and trainer.net is trainer.model
    assert [(t["name"], t["from_epoch"]) for t in summary["loss_terms"]] == [("cls", 1), ("ce", 2), ("aa", 2), ("lr", 2)]
