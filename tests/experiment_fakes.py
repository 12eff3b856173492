"""A fake ``train`` for the experiment-manager tests: writes a plausible finished run at once.

It has the engine's signature (``aakit.engine.train.train``) and writes the run-directory
format of ``aakit.runs``, so grids, searches and the report see what they would after real
training. Module level (picklable) so spawned worker processes can run it.

Environment knobs (inherited by spawned workers):
    AAKIT_FAKE_SLEEP   seconds to sleep per epoch (makes workers overlap)
    AAKIT_FAKE_FAIL    a substring: runs whose name contains it raise RuntimeError
Every call appends ``<hash> <name> <pid>`` to ``<results>/fake_calls.log``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from aakit.config import Config
from aakit.runs import append_jsonl, atomic_write_json, atomic_write_text, read_json, run_dir_name


def fake_val_miou(cfg: Config) -> float:
    """A smooth, deterministic "val mIoU" of a config (0..1)."""
    loss = cfg.loss
    v = 0.40
    v += {"none": 0.0, "sa": 0.05, "aa": 0.08}[loss.affinity]
    v += 0.02 if loss.label_reassign else 0.0
    v += {"max": 0.01, "mean": 0.005, "min": 0.0}[loss.weighting]
    v -= 0.002 * abs(loss.gamma - 2.0)
    v -= 0.003 * abs(len(loss.dilations) - 4)
    v -= 0.02 * abs(loss.lambda_aa - 0.1)
    v += 0.01 * cfg.train.seed
    return round(v, 6)


def fake_metrics(cfg: Config, val: float | None = None, train: float | None = None) -> dict[str, Any]:
    """The ``metrics`` block of summary.json for a config (or for given val/train mIoU)."""
    val = fake_val_miou(cfg) if val is None else val
    train = val + 0.03 if train is None else train
    k = cfg.model.num_classes

    def block(miou: float, rfpc: bool) -> dict[str, Any]:
        iou = [miou + (c - (k - 1) / 2) * 0.001 for c in range(k)]  # mean == miou
        return {"miou": miou, "iou": iou, "protocol": "ss", "crf": False, "rfpc": rfpc}

    return {
        "val": block(val, False),
        "val_rfpc": block(val + 0.02, True),
        "train": block(train, False),
        "train_rfpc": block(train + 0.02, True),
    }


def write_run(
    results: Path,
    cfg: Config,
    name: str,
    *,
    val: float | None = None,
    train: float | None = None,
    status: str = "finished",
    epoch_callback: Callable[[int, dict[str, Any]], None] | None = None,
) -> Path:
    """Write a run directory like the engine's; returns it."""
    run = Path(results) / "runs" / run_dir_name(name, cfg.hash())
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    atomic_write_json(run / "status.json", {"status": "running", "pid": os.getpid(), "updated": time.time()})
    metrics = fake_metrics(cfg, val, train)
    final = metrics["val"]["miou"]
    epochs = cfg.train.epochs
    (run / "metrics.jsonl").unlink(missing_ok=True)
    sleep = float(os.environ.get("AAKIT_FAKE_SLEEP", "0") or 0)
    for e in range(epochs):
        for s in range(3):
            append_jsonl(run / "metrics.jsonl", {
                "kind": "step", "epoch": e, "step": e * 3 + s, "steps_total": epochs * 3,
                "losses": {"cls": 1.0 / (1 + e * 3 + s), "ce": 0.5 / (1 + e), "aa": 0.2, "lr": 0.1},
                "learning_rate": 1e-4, "images_per_s": 10.0, "time": time.time(),
            })
        record = {
            "kind": "epoch", "epoch": e, "epochs": epochs,
            "miou": final - 0.05 * (epochs - 1 - e), "pseudo_miou": 0.30 + 0.02 * e, "time": time.time(),
        }
        append_jsonl(run / "metrics.jsonl", record)
        if sleep:
            time.sleep(sleep)
        if epoch_callback is not None:
            try:
                epoch_callback(e, record)
            except BaseException:
                atomic_write_json(run / "status.json", {"status": "interrupted", "pid": os.getpid()})
                raise
    if status == "finished":
        atomic_write_json(run / "summary.json", {
            "name": name, "hash": cfg.hash(), "status": "finished", "preset": cfg.preset,
            "metrics": metrics, "pseudo_miou": 0.30 + 0.02 * (epochs - 1), "epochs": epochs,
            "wall_time_s": 0.01, "seed": cfg.train.seed,
        })
    atomic_write_json(run / "status.json", {"status": status, "pid": os.getpid(), "updated": time.time()})
    return run


def fake_train(
    cfg: Config,
    *,
    results: Path,
    name: str | None = None,
    overrides: Any = (),
    resume: Path | None = None,
    epoch_callback: Callable[[int, dict[str, Any]], None] | None = None,
    progress: bool = True,
) -> Path:
    """Drop-in for ``aakit.engine.train.train`` that trains nothing."""
    name = name or cfg.name
    run = Path(results) / "runs" / run_dir_name(name, cfg.hash())
    summary = read_json(run / "summary.json")
    if isinstance(summary, dict) and summary.get("status") == "finished":
        return run
    Path(results).mkdir(parents=True, exist_ok=True)
    with open(Path(results) / "fake_calls.log", "a", encoding="utf-8") as f:
        f.write(f"{cfg.hash()} {name} {os.getpid()} {'resume' if resume else 'new'}\n")
        f.flush()
    fail = os.environ.get("AAKIT_FAKE_FAIL")
    if fail and fail in name:
        raise RuntimeError(f"injected failure for {name}")
    return write_run(results, cfg, name, epoch_callback=epoch_callback)


def calls(results: Path) -> list[list[str]]:
    """The fake_calls.log lines, split."""
    path = Path(results) / "fake_calls.log"
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def seed_noise(cfg: Config) -> float:
    """A deterministic "seed effect" of a config's run, shared by configs on one seed (what
    pairing cancels) plus a small per-config part (what it does not): -0.03..0.03 and +-0.004."""
    import hashlib

    def unit(text: str) -> float:
        return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF - 0.5

    return 0.06 * unit(f"seed {cfg.train.seed}") + 0.008 * unit(cfg.hash())


def noisy_train(
    cfg: Config,
    *,
    results: Path,
    name: str | None = None,
    overrides: Any = (),
    resume: Path | None = None,
    epoch_callback: Callable[[int, dict[str, Any]], None] | None = None,
    progress: bool = True,
) -> Path:
    """:func:`fake_train` whose val mIoU has a seed effect (:func:`seed_noise`): paired
    differences then have a spread, as real runs'."""
    name = name or cfg.name
    Path(results).mkdir(parents=True, exist_ok=True)
    with open(Path(results) / "fake_calls.log", "a", encoding="utf-8") as f:
        f.write(f"{cfg.hash()} {name} {os.getpid()} {'resume' if resume else 'new'}\n")
    sleep = float(os.environ.get("AAKIT_FAKE_SLEEP", "0") or 0)
    if sleep:
        time.sleep(sleep)
    return write_run(results, cfg, name, val=round(fake_val_miou(cfg) + seed_noise(cfg), 6),
                     epoch_callback=epoch_callback)
