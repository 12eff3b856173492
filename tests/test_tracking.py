"""TensorBoard as a hook (issue 16 part 1): the event files hold the numbers of metrics.jsonl,
once each after a resume, readable by a real TensorBoard server."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from aakit.config import Config, load_config
from conftest import REPO, expected_scalars, tiny_overrides

pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install 'aakit[tensorboard]'")


def _train(cfg: Config, results: Path, **kw: Any) -> Path:
    from aakit.engine.train import train

    return train(cfg, results=results, progress=False, **kw)


def _cfg(root: Path, **extra: Any) -> Config:
    over = tiny_overrides(root) | {"eval.save_examples": 0} | extra
    return load_config(REPO / "experiments/synthetic/full.yaml", over)


def _events(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the run's event files as read by TensorBoard's own loader (purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _assert_same(got: dict[str, list[tuple[int, float]]], want: dict[str, list[tuple[int, float]]]) -> None:
    for tag, points in want.items():
        assert [s for s, _ in got[tag]] == [s for s, _ in points], tag
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in points], rel=1e-6, abs=1e-7), tag


def test_event_files_hold_the_numbers_of_metrics_jsonl(tiny_synth: Path, tmp_path: Path) -> None:
    run = _train(_cfg(tiny_synth, **{"train.log_every": 3}), tmp_path)
    got, want = _events(run), expected_scalars(run)
    assert {"loss/cls", "loss/aa", "loss/lr", "loss/total", "train/learning_rate", "val/miou", "pseudo/miou"} <= set(want)
    assert [s for s, _ in want["train/learning_rate"]] == [3, 6, 8]  # every 3 steps and the last
    _assert_same(got, want)
    summary = json.loads((run / "summary.json").read_text())
    assert got["final/val_miou"] == [(8, pytest.approx(summary["metrics"]["val"]["miou"], rel=1e-6))]
    assert "_hparams_/session_start_info" in _hparams_tags(run)


def test_example_predictions_are_images(tiny_synth: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _train(_cfg(tiny_synth, **{"eval.save_examples": 3, "train.epochs": 1, "train.cls_warmup_epochs": 0,
                                     "loss.ce": False, "loss.affinity": "none", "loss.label_reassign": False}), tmp_path)
    acc = EventAccumulator(str(run))
    acc.Reload()
    tags = acc.Tags()["images"]
    assert tags == [f"examples/{p.stem}" for p in sorted((run / "examples" / "pred").glob("*.png"))]
    (img,) = acc.Images(tags[0])
    assert img.width == 2 * img.height or img.width == 3 * img.height  # image | prediction (| pseudo label)


def _hparams_tags(run: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    return set(acc.PluginTagToContent("hparams"))


def test_a_resumed_run_has_each_point_once(tiny_synth: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_synth, **{"train.checkpoint_every": 2})
    with pytest.raises(KeyboardInterrupt):
        _train(cfg, tmp_path, stop_after_steps=5)
    (run,) = (tmp_path / "runs").iterdir()
    with pytest.raises(KeyboardInterrupt):  # a second stop, mid-epoch 2
        _train(cfg, tmp_path, resume=run, stop_after_steps=7)
    _train(cfg, tmp_path, resume=run)
    assert len(list(run.glob("events.out.tfevents.*"))) == 3
    got, want = _events(run), expected_scalars(run)
    assert [s for s, _ in want["loss/total"]] == list(range(1, 9))
    _assert_same(got, want)
    assert [s for s, _ in got["val/miou"]] == [4, 8]


@pytest.mark.parametrize("lost", ["stop-checkpoint", "every-epoch-checkpoint"])
def test_points_after_the_checkpoint_are_purged(tiny_synth: Path, tmp_path: Path, lost: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill after the last checkpoint: the event file holds points the checkpoint does not
    cover (and, with the epoch-end checkpoint lost, an evaluation the resumed run redoes)."""
    from aakit.engine.hooks import Checkpointer

    cfg = _cfg(tiny_synth, **{"train.checkpoint_every": 4})
    with monkeypatch.context() as m:
        m.setattr(Checkpointer, "after_train", lambda self: None)  # as if killed: no checkpoint on the stop
        if lost == "every-epoch-checkpoint":  # last.pt of step 4 taken before epoch 1's evaluation
            m.setattr(Checkpointer, "after_epoch", lambda self: None)
        with pytest.raises(KeyboardInterrupt):
            _train(cfg, tmp_path, stop_after_steps=6)
    (run,) = (tmp_path / "runs").iterdir()
    assert [s for s, _ in _events(run)["loss/total"]] == list(range(1, 7))
    _train(cfg, tmp_path, resume=run)
    got, want = _events(run), expected_scalars(run)
    assert [s for s, _ in want["loss/total"]] == list(range(1, 9))
    _assert_same(got, want)
    assert [s for s, _ in got["val/miou"]] == [4, 8]


def test_logging_backends_jsonl_only_writes_no_events_and_keeps_the_hash(tiny_synth: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_synth, **{"logging.backends": ["jsonl"], "train.epochs": 1, "train.cls_warmup_epochs": 0})
    assert cfg.hash() == _cfg(tiny_synth, **{"train.epochs": 1, "train.cls_warmup_epochs": 0}).hash()
    run = _train(cfg, tmp_path)
    assert not list(run.glob("events.out.tfevents.*")) and (run / "summary.json").exists()


def test_a_missing_tensorboard_is_one_warning_and_no_hook(tiny_synth: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from aakit.engine import tracking
    from aakit.engine.rundir import RunWriter

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # find_spec finds nothing (tests/test_trackers.py: each tracker)
    monkeypatch.setattr(tracking, "_WARNED", [])
    cfg = _cfg(tiny_synth)
    assert tracking.tracking_hooks(cfg, RunWriter(tmp_path, cfg)) == []
    assert tracking.tracking_hooks(cfg, RunWriter(tmp_path, cfg)) == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tensorboard" in err[0] and "warning" in err[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str, timeout: float) -> Any:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                data = json.loads(r.read())
            if data:
                return data
        except (OSError, ValueError):
            pass
        if time.time() > deadline:
            raise TimeoutError(url)
        time.sleep(0.5)


def test_a_running_tensorboard_serves_the_scalars_of_metrics_jsonl(tiny_synth: Path, tmp_path: Path) -> None:
    """`tensorboard --logdir results/runs` on localhost, read through its HTTP API."""
    run = _train(_cfg(tiny_synth), tmp_path)
    port = _free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path / "runs"), "--host", "127.0.0.1",
           "--port", str(port), "--load_fast", "false", "--reload_interval", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        runs = _get_json(f"{base}/data/runs", timeout=60)
        assert run.name in runs
        want = expected_scalars(run)
        for tag in ("loss/total", "val/miou", "train/learning_rate"):
            q = urllib.parse.urlencode({"run": run.name, "tag": tag})
            points = _get_json(f"{base}/data/plugin/scalars/scalars?{q}", timeout=30)  # [[wall, step, value]]
            _assert_same({tag: [(int(s), float(v)) for _, s, v in points]}, {tag: want[tag]})
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
