"""Failure paths found by probing (issue 27): each bad case says one line, exits 2, changes nothing.

1. two ``aakit train`` of the same run at once: the second is refused (the run directory is locked
   for the life of the training process; ``kill -9`` leaves no stale lock);
2. a run that crashes (a corrupt JPEG) under a grid's epoch callback ends ``failed``, not ``interrupted``;
3. names in any script are kept, and a name never hands back another run;
4. a ``status.json`` with wrong field types is corrupt; ``pseudo.workers`` above the cores warns;
5. error reasons are cut between words and keep their cause; a full disk names the file.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aakit.config import load_config
from aakit.engine.train import train
from aakit.runs import atomic_write_json, load_run, read_json, run_dir_name, safe_name

from conftest import REPO, run_cli, tiny_overrides

CONFIG = REPO / "experiments" / "synthetic" / "full.yaml"
BASELINE = REPO / "experiments" / "synthetic" / "baseline.yaml"


def _set_args(over: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for k, v in over.items():
        args += ["--set", f"{k}={v if isinstance(v, str) else json.dumps(v)}"]
    return args


def _short(root: Path) -> dict[str, Any]:
    """One epoch of four steps, no warm-up."""
    return tiny_overrides(root) | {"train.epochs": 1, "train.cls_warmup_epochs": 0}


def _fingerprint(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: its sha1 (files) or "dir"."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _wait_running(proc: subprocess.Popen[bytes], run: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        info = read_json(run / "status.json")
        if isinstance(info, dict) and info.get("status") == "running" and info.get("pid") == proc.pid:
            return
        assert proc.poll() is None, "the first training ended before it started the run"
        assert time.monotonic() < deadline, "the first training did not start"
        time.sleep(0.02)


# ----------------------------------------------------------------------------- 1. one trainer per run
def test_second_train_of_a_running_run_is_refused_and_changes_nothing(
        tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    over = tiny_overrides(tiny_synth)
    cfg = load_config(CONFIG, over)
    run = results / "runs" / run_dir_name(cfg.name, cfg.hash())
    argv = ["train", str(CONFIG), *_set_args(over), "--results", str(results), "--no-progress"]
    first = subprocess.Popen([sys.executable, "-m", "aakit.cli", *argv], cwd=tmp_path, env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_running(first, run)
        first.send_signal(signal.SIGSTOP)  # frozen while it holds the run: nothing changes under us
        time.sleep(0.2)
        before = _fingerprint(results)
        code, out, err = run_cli(argv, monkeypatch, capsys)
        assert code == 2, (out, err)
        line = err.strip()
        assert "\n" not in line and run.name in line
        assert f"pid {first.pid}" in line and os.uname().nodename in line and "since" in line
        assert _fingerprint(results) == before  # not a file added, removed or changed
    finally:
        first.kill()  # kill -9 (a stopped process dies of it too)
        first.wait()
    # the lock died with its process: the run resumes, and each step is logged once
    code, out, err = run_cli(["train", "--resume", str(run), "--results", str(results), "--no-progress"],
                             monkeypatch, capsys)
    assert code == 0, (out, err)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["kind"] == "step"]
    assert steps == list(range(1, 9))
    assert load_run(run).status == "finished"
    assert not [p.name for p in run.iterdir() if p.name.endswith(".lock")]  # released and removed


def test_lock_is_released_when_an_in_process_training_returns(
        tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A grid worker trains in its own process: after train() returns (here: stopped), the run is
    free for another process."""
    results = tmp_path / "results"
    cfg = load_config(BASELINE, _short(tiny_synth))
    with pytest.raises(KeyboardInterrupt):
        train(cfg, results=results, progress=False, stop_after_steps=2)
    run = results / "runs" / run_dir_name(cfg.name, cfg.hash())
    p = subprocess.run([sys.executable, "-m", "aakit.cli", "train", "--resume", str(run), "--results", str(results),
                        "--no-progress"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert load_run(run).status == "finished"


def test_refused_fresh_run_leaves_no_directory(tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The lock is taken before anything is written; a run refused after it (a pretrained file that
    is not there) leaves no empty run directory behind."""
    results = tmp_path / "results"
    over = _short(tiny_synth) | {"model.pretrained": str(tmp_path / "missing.pth")}
    code, out, err = run_cli(["train", str(BASELINE), *_set_args(over), "--results", str(results), "--no-progress"],
                             monkeypatch, capsys)
    assert code == 2 and "missing.pth" in err
    assert not (results / "runs").exists() or not any((results / "runs").iterdir())


# ----------------------------------------------------------------------------- 2. a crash is a failure
def _corrupt_copy(tiny_synth: Path, dest: Path) -> Path:
    root = dest / "set"
    shutil.copytree(tiny_synth, root)
    ids = (root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    jpeg = root / "JPEGImages" / f"{ids[0]}.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG any more")
    return root


def test_a_crash_in_a_grid_point_leaves_the_run_failed_with_its_error(
        tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from aakit.tui.data import RunTracker

    root = _corrupt_copy(tiny_synth, tmp_path)
    cfg = load_config(BASELINE, _short(root))
    results = tmp_path / "results"
    epochs: list[int] = []
    with pytest.raises(Exception) as raised:  # a grid worker passes its epoch callback
        train(cfg, results=results, progress=False, epoch_callback=lambda e, r: epochs.append(e))
    assert not isinstance(raised.value, KeyboardInterrupt)
    run = results / "runs" / run_dir_name(cfg.name, cfg.hash())
    info = json.loads((run / "status.json").read_text())
    assert info["status"] == "failed"
    assert isinstance(info.get("error"), str) and "\n" not in info["error"] and info["error"]
    assert load_run(run).status == "failed"
    tracker = RunTracker(run)
    tracker.update()
    assert tracker.row().status == "failed"
    code, out, _ = run_cli(["runs", "ls", "--results", str(results)], monkeypatch, capsys)
    assert code == 0 and "failed" in out and "interrupted" not in out
    code, out, _ = run_cli(["runs", "show", run.name, "--results", str(results)], monkeypatch, capsys)
    assert code == 0 and f"error     {info['error']}" in out


def test_a_stop_raised_by_the_epoch_callback_is_still_interrupted(tiny_synth: Path, tmp_path: Path) -> None:
    """An Optuna trial pruned by its callback stops the run: interrupted (resumable), not failed."""
    class Pruned(Exception):
        pass

    def prune(epoch: int, record: dict[str, Any]) -> None:
        raise Pruned(f"pruned after epoch {epoch}")

    cfg = load_config(BASELINE, tiny_overrides(tiny_synth) | {"train.cls_warmup_epochs": 0})
    with pytest.raises(Pruned):
        train(cfg, results=tmp_path, progress=False, epoch_callback=prune)
    run = tmp_path / "runs" / run_dir_name(cfg.name, cfg.hash())
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"


# ----------------------------------------------------------------------------- 3. names
@pytest.mark.parametrize("name,expected", [
    ("データ", "データ"),
    ("テスト-1_v.2", "テスト-1_v.2"),
    ("café", "café"),
    ("cafe\u0301", "café"),  # one spelling of é, whichever the keyboard sent
    ("हिन्दी", "हिन्दी"),  # combining vowel signs are part of the letters
    ("Ελληνικά/../x", "Ελληνικά-..-x"),
    ("名前\x00\n/\\x", "名前-x"),
    ("a\u2215b\uff0fc", "a-b-c"),  # division slash, fullwidth solidus: not letters
    ("😀", "run"),
])
def test_names_keep_letters_of_any_script(name: str, expected: str, tmp_path: Path) -> None:
    out = safe_name(name)
    assert out == expected
    p = (tmp_path / "runs" / run_dir_name(name, "abcd1234")).resolve()
    assert p.parent == (tmp_path / "runs").resolve()


def test_long_names_fit_a_file_name() -> None:
    for ch in ("é", "名", "\U00020000"):  # 2, 3 and 4 bytes in UTF-8
        out = safe_name(ch * 300)
        assert len(run_dir_name(ch * 300, "abcd1234").encode()) <= 255 and out and set(out) == {ch}


def test_two_unicode_names_are_two_runs(tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    argv = ["train", str(BASELINE), *_set_args(_short(tiny_synth)), "--results", str(results), "--no-progress"]
    for name in ("データ", "テスト"):
        code, out, err = run_cli([*argv, "--name", name], monkeypatch, capsys)
        assert code == 0, err
        assert name in out
    assert sorted(p.name.rsplit("-", 1)[0] for p in (results / "runs").iterdir() if not p.name.startswith(".")) \
        == ["テスト", "データ"]


def test_a_name_never_hands_back_another_run(tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    argv = ["train", str(BASELINE), *_set_args(_short(tiny_synth)), "--results", str(results), "--no-progress"]
    code, _, err = run_cli([*argv, "--name", "my run"], monkeypatch, capsys)
    assert code == 0, err
    (run,) = (results / "runs").iterdir()
    before = _fingerprint(results)
    # another name that makes the same directory name: refused, not the first run handed back
    code, out, err = run_cli([*argv, "--name", "my/run"], monkeypatch, capsys)
    assert code == 2 and "\n" not in err.strip() and run.name in err and "'my run'" in err, (out, err)
    assert _fingerprint(results) == before
    # the same name again: the finished run, as before, untouched
    code, out, err = run_cli([*argv, "--name", "my run"], monkeypatch, capsys)
    assert code == 0 and out.startswith(f"{run}: "), err
    assert _fingerprint(results) == before
    # a directory of this name that holds another configuration: refused
    prov = json.loads((run / "provenance.json").read_text())
    atomic_write_json(run / "provenance.json", prov | {"config_hash": "00000000"})
    before = _fingerprint(results)
    code, out, err = run_cli([*argv, "--name", "my run"], monkeypatch, capsys)
    assert code == 2 and "\n" not in err.strip() and "00000000" in err and run.name in err, (out, err)
    assert _fingerprint(results) == before


# ----------------------------------------------------------------------------- 4. status types, workers
@pytest.mark.parametrize("status,why", [
    ({"status": 42}, "status"),
    ({"status": "done"}, "status"),
    ({"status": "running", "pid": "12"}, "pid"),
    ({"status": "running", "pid": True}, "pid"),
    ({"status": "finished", "updated": "yesterday"}, "updated"),
    ({"status": "failed", "host": 3}, "host"),
    ({"status": "failed", "error": ["x"]}, "error"),
])
def test_status_json_with_wrong_field_types_is_corrupt(status: dict[str, Any], why: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from aakit.tui.data import RunTracker

    run = tmp_path / "runs" / "x-abcd1234"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: x\n")
    (run / "status.json").write_text(json.dumps(status))
    info = load_run(run)
    assert info.status == "corrupt" and "status.json" in info.problem and why in info.problem
    tracker = RunTracker(run)
    tracker.update()
    assert tracker.row().status == "corrupt"
    code, out, _ = run_cli(["runs", "ls", "--results", str(tmp_path)], monkeypatch, capsys)
    assert code == 0 and "corrupt" in out and " 42 " not in out


def test_pseudo_workers_above_the_cores_warn_at_training_start(
        tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import aakit.engine.train as train_mod

    monkeypatch.setattr(train_mod, "available_cores", lambda: 2)
    cfg = load_config(BASELINE, _short(tiny_synth) | {"pseudo.workers": 64})
    monkeypatch.setattr(train_mod, "_build_data", lambda cfg: (_ for _ in ()).throw(RuntimeError("stop here")))
    with pytest.raises(RuntimeError, match="stop here"):
        train(cfg, results=tmp_path, progress=False)
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "pseudo.workers" in x]
    assert "warning" in line and "64" in line and "2" in line
    cfg = load_config(BASELINE, _short(tiny_synth) | {"pseudo.workers": 2})
    with pytest.raises(RuntimeError, match="stop here"):
        train(cfg, results=tmp_path, progress=False)
    assert "pseudo.workers" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- 5. error reasons
def test_reasons_are_cut_between_words_and_keep_the_cause() -> None:
    from aakit.errors import reason

    long = ("Weights only load failed. This file can still be loaded, to do so you have two options, do those "
            "steps only if you trust the source of the checkpoint.\n\t(1) In PyTorch 2.6, we changed the default "
            "value of the `weights_only` argument in `torch.load` from `False` to `True`.\n\tWeightsUnpickler "
            "error: Unsupported global: GLOBAL builtins.set was not an allowed global by default.")
    out = reason(RuntimeError(long), 160)
    assert len(out) <= 160 and "\n" not in out and out.startswith("RuntimeError: ")
    assert "WeightsUnpickler error: Unsupported global" in out
    def bare(w: str) -> str:
        return w.rstrip("…").strip(",.;:`")

    words = {bare(w) for w in long.split()} | {"RuntimeError", "", "…"}
    assert all(bare(w) in words for w in out.split()), out  # no word cut in two
    assert reason(RuntimeError("x" * 400), 50) == "RuntimeError: " + "x" * 35 + "…"  # one word: cut where it must
    assert reason(ValueError("short")) == "ValueError: short"
    assert reason(ValueError()) == "ValueError"


def test_a_checkpoint_refused_by_weights_only_says_why(tmp_path: Path) -> None:
    import argparse

    import torch

    from aakit.engine.rundir import CheckpointError, load_checkpoint_file

    path = tmp_path / "last.pt"
    torch.save({"model": {}, "step": 1, "args": argparse.Namespace(lr=0.1)}, path)  # not an allowed global
    with pytest.raises(CheckpointError) as e:
        load_checkpoint_file(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert "Unsupported global" in msg and msg.endswith(")")


def test_a_full_disk_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    import aakit.runs as runs_mod

    run = tmp_path / "runs" / "x-abcd1234"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: x\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runs_mod.os, "fsync", full)
    with pytest.raises(OSError) as e:
        atomic_write_json(tmp_path / "a.json", {"a": 1})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "a.json")
    with pytest.raises(OSError) as e:
        runs_mod.append_jsonl(tmp_path / "m.jsonl", {"a": 1})
    assert e.value.filename == str(tmp_path / "m.jsonl")
    code, out, err = run_cli(["runs", "tag", str(run), "best", "--results", str(tmp_path)],
                             monkeypatch, capsys)
    assert code == 2, (out, err)
    assert err.strip() == f"aakit: error: No space left on device ({run / 'tags.json'})"
    assert not [p for p in tmp_path.rglob("*.tmp")]
