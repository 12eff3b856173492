"""Every bad input: one line naming the problem and where it is, exit code 2, nothing written.

Each case runs the real command-line entry point (``aakit.cli.main``) in process. Before and
after, the test fingerprints everything under the results root and the data set: a refused
command must leave both exactly as they were.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, tiny_overrides


@dataclass
class Case:
    id: str
    argv: Callable[[dict[str, Path]], list[str]]  # built from the fixture's paths
    expect: str  # a fragment the one-line message must contain (may use {placeholders})
    setup: Callable[[dict[str, Path]], None] | None = None


def _fingerprint(root: Path) -> dict[str, str]:
    out = {}
    if root.exists():
        for p in sorted(root.rglob("*")):
            if p.is_file():
                out[str(p.relative_to(root))] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_synth: Path) -> dict[str, Path]:
    """A results root with one trained run, a clean data copy and a directory of bad files."""
    from aakit.config import load_config
    from aakit.engine.train import train

    base = tmp_path_factory.mktemp("bad")
    results = base / "results"
    cfg = load_config(REPO / "experiments/synthetic/baseline.yaml",
                      tiny_overrides(tiny_synth) | {"train.epochs": 1, "train.cls_warmup_epochs": 0})
    run = train(cfg, results=results, progress=False)
    files = base / "files"
    files.mkdir()
    good_cfg = _write(files / "good.yaml", f"_base_: {REPO / 'experiments/synthetic/baseline.yaml'}\n")
    return {"base": base, "results": results, "run": run, "data": tiny_synth, "files": files, "good": good_cfg}


def _data_copy(w: dict[str, Path], name: str) -> Path:
    dst = w["base"] / "data" / name
    if not dst.exists():
        shutil.copytree(w["data"], dst)
    return dst


def _cfg(w: dict[str, Path], name: str, body: str) -> Path:
    return _write(w["files"] / name, body)


def _train_argv(w: dict[str, Path], root: Path | None = None, extra: list[str] | None = None) -> list[str]:
    argv = ["train", str(REPO / "experiments/synthetic/baseline.yaml"), "--results", str(w["results"]), "--no-progress"]
    for k, v in tiny_overrides(root or w["data"]).items():
        argv += ["--set", f"{k}={v if isinstance(v, str) else json.dumps(v)}"]
    return argv + (extra or [])


def _bad_layout(kind: str) -> Callable[[dict[str, Path]], list[str]]:
    """A data copy with one planted problem, trained on (train must refuse before writing)."""

    def argv(w: dict[str, Path]) -> list[str]:
        root = _data_copy(w, kind)
        ids = (root / "ImageSets/Segmentation/train_aug.txt").read_text().split()
        if kind == "missing-image":
            (root / "JPEGImages" / f"{ids[1]}.jpg").unlink(missing_ok=True)
        elif kind == "empty-list":
            (root / "ImageSets/Segmentation/train_aug.txt").write_text("")
        elif kind == "no-label":
            labels = json.loads((root / "cls_labels.json").read_text())
            labels[ids[2]] = []
            (root / "cls_labels.json").write_text(json.dumps(labels))
        elif kind == "no-cache":
            (root / "cls_labels.json").unlink(missing_ok=True)
        elif kind == "missing-val-mask":
            vid = (root / "ImageSets/Segmentation/val.txt").read_text().split()[0]
            for d in ("SegmentationClass", "SegmentationClassAug"):
                (root / d / f"{vid}.png").unlink(missing_ok=True)
        elif kind == "missing-split":
            (root / "ImageSets/Segmentation/val.txt").unlink(missing_ok=True)
        elif kind == "bad-meta":
            (root / "meta.json").write_text("{not json")
        return _train_argv(w, root)

    return argv


def _check_layout(kind: str) -> Callable[[dict[str, Path]], list[str]]:
    def argv(w: dict[str, Path]) -> list[str]:
        root = _data_copy(w, "check-" + kind)
        ids = (root / "ImageSets/Segmentation/train_aug.txt").read_text().split()
        if kind == "corrupt-jpeg":
            (root / "JPEGImages" / f"{ids[0]}.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
        elif kind == "mask-values":
            from PIL import Image
            import numpy as np

            p = root / "SegmentationClassAug" / f"{ids[0]}.png"
            m = np.array(Image.open(p))
            m[0, 0] = 77
            im = Image.fromarray(m, mode="P")
            im.putpalette(Image.open(p).getpalette())
            im.save(p)
        elif kind == "missing-mask":
            (root / "SegmentationClassAug" / f"{ids[0]}.png").unlink()
            (root / "SegmentationClass" / f"{ids[0]}.png").unlink(missing_ok=True)
        return ["data", "check", str(root)]

    return argv


def _ckpt(kind: str) -> Callable[[dict[str, Path]], list[str]]:
    def argv(w: dict[str, Path]) -> list[str]:
        dst = w["results"] / "runs" / f"copy-{kind}"
        if not dst.exists():
            shutil.copytree(w["run"], dst)
            ck = dst / "checkpoints" / "last.pt"
            data = ck.read_bytes()
            if kind == "truncated":
                ck.write_bytes(data[: len(data) // 2])
            elif kind == "tampered":
                ck.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
            elif kind == "foreign":
                import torch

                state = torch.load(ck, weights_only=True)
                state["config_hash"] = "deadbeef"
                torch.save(state, ck)
            elif kind == "missing":
                ck.unlink()
        return ["eval", str(dst), "--results", str(w["results"])]

    return argv


CASES: list[Case] = [
    # ---- configs
    Case("config-unknown-key", lambda w: ["train", str(_cfg(w, "a.yaml", "loss:\n  gama: 1\n"))], "loss.gama"),
    Case("config-wrong-type", lambda w: ["train", str(_cfg(w, "b.yaml", "loss:\n  gamma: high\n"))], "loss.gamma"),
    Case("config-negative-margin", lambda w: ["train", str(_cfg(w, "c.yaml", "loss:\n  margin_aa: -1\n"))], "loss.margin_aa"),
    Case("config-dilation-zero", lambda w: ["train", str(_cfg(w, "d.yaml", "loss:\n  dilations: [4, 0]\n"))], "loss.dilations"),
    Case("config-negative-lambda", lambda w: ["train", str(_cfg(w, "e.yaml", "loss:\n  lambda_lr: -0.1\n"))], "loss.lambda_lr"),
    Case("config-negative-gamma", lambda w: ["train", str(_cfg(w, "f.yaml", "loss:\n  gamma: -2\n"))], "loss.gamma"),
    Case("config-missing-file", lambda w: ["train", str(w["files"] / "nope.yaml")], "nope.yaml: config file not found"),
    Case("config-yaml-syntax", lambda w: ["train", str(_cfg(w, "g.yaml", "loss:\n  gamma: [1, 2\n"))], "YAML syntax error"),
    Case("config-base-cycle", lambda w: (_cfg(w, "h2.yaml", "_base_: h1.yaml\n"), ["train", str(_cfg(w, "h1.yaml", "_base_: h2.yaml\n"))])[1], "_base_ cycle"),
    Case("config-not-mapping", lambda w: ["train", str(_cfg(w, "i.yaml", "- 1\n- 2\n"))], "mapping"),
    Case("config-bad-weighting", lambda w: ["train", str(_cfg(w, "j.yaml", "loss:\n  weighting: median\n"))], "loss.weighting"),
    Case("config-bad-backbone", lambda w: ["train", str(_cfg(w, "k.yaml", "model:\n  backbone: vgg16\n"))], "model.backbone"),
    Case("config-warmup-too-long", lambda w: ["train", str(_cfg(w, "l.yaml", "train:\n  epochs: 2\n  cls_warmup_epochs: 2\n"))], "train.cls_warmup_epochs"),
    Case("set-no-equals", lambda w: ["train", str(w["good"]), "--set", "loss.gamma"], "KEY=VALUE"),
    Case("set-unknown-key", lambda w: ["train", str(w["good"]), "--set", "loss.nope=1"], "loss.nope"),
    Case("set-bad-value", lambda w: ["train", str(w["good"]), "--set", "train.batch_size=0"], "train.batch_size"),
    Case("set-bad-device", lambda w: ["train", str(w["good"]), "--set", "train.device=tpu"], "train.device"),
    Case("train-no-config", lambda w: ["train"], "CONFIG"),
    # ---- data layouts (train refuses before writing)
    Case("data-root-missing", lambda w: _train_argv(w, w["base"] / "no-such-data"), "no-such-data"),
    Case("data-missing-image", _bad_layout("missing-image"), "file not found"),
    Case("data-empty-list", _bad_layout("empty-list"), "train_aug"),
    Case("data-image-without-label", _bad_layout("no-label"), "label"),
    Case("data-no-label-cache", _bad_layout("no-cache"), "cls_labels"),
    Case("data-missing-val-mask", _bad_layout("missing-val-mask"), "mask"),
    Case("data-missing-split-file", _bad_layout("missing-split"), "val.txt"),
    Case("data-bad-meta", _bad_layout("bad-meta"), "meta.json"),
    Case("grid-data-root-missing", lambda w: ["grid", str(_cfg(w, "nodata-grid.yaml", f"name: nodata\nbase: {REPO / 'experiments/synthetic/baseline.yaml'}\nseeds: [0]\ntable: 1\nrows: [{{row: x, set: {{data.root: {w['base'] / 'no-data-here'}}}}}]\n")), "--results", str(w["results"])], "no-data-here"),
    Case("data-class-mismatch", lambda w: _train_argv(w, extra=["--set", "model.num_classes=21"]), "model.num_classes"),
    Case("check-corrupt-jpeg", _check_layout("corrupt-jpeg"), "problem"),
    Case("check-mask-values", _check_layout("mask-values"), "problem"),
    Case("check-missing-mask", _check_layout("missing-mask"), "problem"),
    Case("check-missing-root", lambda w: ["data", "check", str(w["base"] / "nothing")], "problem"),
    Case("synth-zero-images", lambda w: ["data", "synth", "--out", str(w["base"] / "s0"), "--n-train", "0"], "--n-train"),
    Case("sbd-missing", lambda w: ["data", "voc", "--voc", str(_data_copy(w, "voc-sbd")), "--sbd", str(w["base"] / "no-sbd")], "no-sbd"),
    # ---- weights
    Case("weights-missing", lambda w: ["weights", "convert", str(w["files"] / "none.params"), str(w["files"] / "o1.pth")], "none.params"),
    Case("weights-random-bytes", lambda w: ["weights", "convert", str(_write(w["files"] / "r.params", bytes(range(256)) * 4)), str(w["files"] / "o2.pth")], "r.params"),
    Case("weights-json", lambda w: ["weights", "convert", str(_write(w["files"] / "j.params", '{"a": 1}')), str(w["files"] / "o3.pth")], "j.params"),
    Case("weights-wrong-pretrained", lambda w: _train_argv(w, extra=["--set", f"model.pretrained={_write(w['files'] / 'p.pth', b'not a checkpoint')}"]), "p.pth"),
    # ---- checkpoints and runs
    Case("ckpt-truncated", _ckpt("truncated"), "checkpoint"),
    Case("ckpt-tampered", _ckpt("tampered"), "checkpoint"),
    Case("ckpt-foreign-config", _ckpt("foreign"), "deadbeef"),
    Case("ckpt-missing", _ckpt("missing"), "no checkpoint"),
    Case("eval-no-such-run", lambda w: ["eval", "nope-run", "--results", str(w["results"])], "nope-run"),
    Case("eval-bad-protocol", lambda w: ["eval", str(w["run"]), "--protocol", "xx", "--results", str(w["results"])], "--protocol"),
    Case("eval-bad-split", lambda w: ["eval", str(w["run"]), "--split", "test", "--results", str(w["results"])], "test.txt"),
    Case("eval-zero-images", lambda w: ["eval", str(w["run"]), "--max-images", "0", "--results", str(w["results"])], "--max-images 0"),
    Case("resume-not-a-run", lambda w: ["train", "--resume", str(w["files"]), "--results", str(w["results"])], "no run directory"),
    Case("predict-missing-image", lambda w: ["predict", str(w["run"]), str(w["files"] / "x.jpg"), "--out", str(w["base"] / "pred"), "--results", str(w["results"])], "x.jpg"),
    Case("predict-corrupt-image", lambda w: ["predict", str(w["run"]), str(_write(w["files"] / "c.jpg", b"garbage")), "--out", str(w["base"] / "pred2"), "--results", str(w["results"])], "c.jpg"),
    # ---- command line
    Case("cli-unknown-option", lambda w: ["train", "--bogus"], "--bogus"),
    Case("cli-unknown-command", lambda w: ["trian"], "trian"),
    Case("cli-bad-int", lambda w: ["search", "--trials", "many"], "--trials"),
    Case("tui-bad-refresh", lambda w: ["tui", "--results", str(w["results"]), "--refresh", "0"], "--refresh"),
    Case("bench-bad-preset", lambda w: ["bench", "--preset", "imagenet"], "imagenet"),
    # ---- run management and train's --set-file / --print-config (issue 16)
    Case("runs-show-no-such-run", lambda w: ["runs", "show", "nope-run", "--results", str(w["results"])], "nope-run"),
    Case("runs-diff-no-such-run", lambda w: ["runs", "diff", str(w["run"]), "nope-b", "--results", str(w["results"])], "nope-b"),
    Case("runs-ls-bad-status", lambda w: ["runs", "ls", "--status", "done", "--results", str(w["results"])], "--status"),
    Case("runs-ls-where-no-equals", lambda w: ["runs", "ls", "--where", "loss.gamma", "--results", str(w["results"])], "KEY=VALUE"),
    Case("runs-ls-where-unknown-key", lambda w: ["runs", "ls", "--where", "loss.nope=1", "--results", str(w["results"])], "loss.nope"),
    Case("runs-ls-bad-sort", lambda w: ["runs", "ls", "--sort", "accuracy", "--results", str(w["results"])], "--sort"),
    Case("runs-tag-bad-tag", lambda w: ["runs", "tag", str(w["run"]), "bad tag", "--results", str(w["results"])], "bad tag"),
    Case("runs-tag-nothing", lambda w: ["runs", "tag", str(w["run"]), "--results", str(w["results"])], "TAG"),
    Case("set-file-missing", lambda w: ["train", str(w["good"]), "--set-file", str(w["files"] / "nope-schedule.yaml")], "nope-schedule.yaml"),
    Case("set-file-not-mapping", lambda w: ["train", str(w["good"]), "--set-file", str(_cfg(w, "sched-list.yaml", "- 1\n- 2\n"))], "mapping"),
    Case("set-file-unknown-key", lambda w: ["train", str(w["good"]), "--set-file", str(_cfg(w, "sched-key.yaml", "train.epoch: 3\n"))], "train.epoch"),
    Case("print-config-bad-value", lambda w: ["train", str(w["good"]), "--set", "train.epochs=0", "--print-config"], "train.epochs"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_one_line_exit_2_nothing_written(case: Case, world: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from aakit import cli

    argv = case.argv(world)
    before = _fingerprint(world["results"]), _fingerprint(world["data"])
    monkeypatch.setattr(sys, "argv", ["aakit", *argv])
    cwd = world["base"] / "cwd"
    cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)
    with pytest.raises(SystemExit) as e:
        cli.main()
    out, err = capsys.readouterr()
    assert e.value.code == 2, (out, err)
    assert "Traceback" not in err + out
    lines = [line for line in err.splitlines() if line.strip()]
    if argv[:2] == ["data", "check"]:  # data check lists every problem on stdout, one per line
        assert any(case.expect in line for line in out.splitlines()), out
    else:
        assert len(lines) == 1, err
        assert case.expect in lines[0], lines[0]
    after = _fingerprint(world["results"]), _fingerprint(world["data"])
    assert after == before
    assert not any(cwd.iterdir())  # nothing written to the working directory either


def test_enough_cases() -> None:
    assert len(CASES) >= 40


def test_real_process_exit_code(tmp_path: Path) -> None:
    """The installed entry point, in a real process: one line on stderr, exit 2."""
    bad = _write(tmp_path / "bad.yaml", "loss:\n  gamma: -1\n")
    p = subprocess.run([sys.executable, "-m", "aakit.cli", "train", str(bad)], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "loss.gamma" in p.stderr and str(bad) in p.stderr
    p = subprocess.run([sys.executable, "-m", "aakit.cli", "--debug", "train", str(bad)], capture_output=True, text=True)
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_dash_h_is_help_everywhere() -> None:
    for argv in ([], ["eval"], ["data", "synth"], ["runs", "ls"]):
        p = subprocess.run([sys.executable, "-m", "aakit.cli", *argv, "-h"], capture_output=True, text=True)
        assert p.returncode == 0 and "Usage: aakit" in p.stdout, (argv, p.stderr)
