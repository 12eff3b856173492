"""Weights & Biases as a tracking hook (issue 16 part 6): a missing package is refused before
training; in offline mode a tiny run writes a W&B run, in its run directory, whose history,
config and summary (read back from the .wandb file W&B wrote) are the numbers of metrics.jsonl."""
from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from aakit.config import load_config
from conftest import REPO, expected_scalars, run_cli, tiny_overrides


@pytest.fixture(autouse=True)
def _fresh_wandb() -> Any:
    """W&B keeps its settings (the mode among them) in a process-wide singleton: each test starts anew."""
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()


def _set_items(root: Path, **extra: Any) -> list[str]:
    """The tiny schedule as --set items."""
    over = tiny_overrides(root) | {"eval.save_examples": 0} | extra
    return [a for k, v in over.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def test_wandb_without_the_package_is_refused_before_training(tiny_synth: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb fails, find_spec finds nothing
    results = tmp_path / "results"
    argv = ["train", "synthetic/full", *_set_items(tiny_synth, **{"logging.backends": ["jsonl", "wandb"]}),
            "--results", str(results), "--no-progress"]
    code, out, err = run_cli(argv, monkeypatch, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "wandb package is not installed" in err and "pip install 'aakit[wandb]'" in err
    assert not results.exists()  # nothing written: no run directory


# ----------------------------------------------------------------------------- offline, for real
def _records(path: Path) -> list[Any]:
    """The records of a .wandb file: W&B's header (':W&B', 2-byte magic, version), then a LevelDB
    log (32 KiB blocks; chunks of crc32, length, type 1 full / 2 first / 3 middle / 4 last), each
    record a wandb_internal_pb2.Record."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf, out = 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
    return out


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def _read_wandb(run: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, Any], dict[str, Any], Any]:
    """(history by key as (step, value), config, final summary, run record) of the run's W&B files
    (each sitting of a resumed run is an offline-run folder of its own, named by its start time)."""
    files = [f for d in sorted((run / "wandb").glob("offline-run-*")) for f in d.glob("run-*.wandb")]
    history: dict[str, list[tuple[int, float]]] = {}
    summary: dict[str, Any] = {}
    config: dict[str, Any] = {}
    run_record = None
    for rec in (r for f in files for r in _records(f)):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            row = {_key(i): json.loads(i.value_json) for i in rec.history.item}
            for k, v in row.items():
                if not k.startswith("_"):
                    history.setdefault(k, []).append((row["_step"], v))
        elif kind == "summary":
            summary |= {_key(i): json.loads(i.value_json) for i in rec.summary.update}
        elif kind == "run":
            run_record = rec.run
            config |= {i.key: json.loads(i.value_json) for i in rec.run.config.update}
        elif kind == "config":
            config |= {i.key: json.loads(i.value_json) for i in rec.config.update}
    return history, config, summary, run_record


@pytest.fixture()
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="wandb is not installed: pip install 'aakit[wandb]'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))  # nothing written outside the test's folder
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def _cfg(root: Path, **extra: Any) -> Any:
    over = tiny_overrides(root) | {"eval.save_examples": 0, "logging.backends": ["jsonl", "wandb"]} | extra
    return load_config(REPO / "experiments/synthetic/full.yaml", over)


def test_an_offline_run_holds_the_numbers_of_metrics_jsonl(tiny_synth: Path, tmp_path: Path, offline: None) -> None:
    from aakit.engine.train import train

    cfg = _cfg(tiny_synth, **{"train.log_every": 3})
    run = train(cfg, results=tmp_path / "results", progress=False)

    history, config, summary, record = _read_wandb(run)
    want = expected_scalars(run)
    assert {"loss/cls", "loss/aa", "loss/lr", "loss/total", "train/learning_rate", "val/miou", "pseudo/miou"} <= set(want)
    assert [s for s, _ in want["train/learning_rate"]] == [3, 6, 8]  # every 3 steps and the last
    assert set(history) == set(want)
    for tag, points in want.items():
        assert [s for s, _ in history[tag]] == [s for s, _ in points], tag
        assert [v for _, v in history[tag]] == pytest.approx([v for _, v in points], rel=1e-9), tag
    # the resolved config (every section) and the hash the run directory carries
    resolved = cfg.to_dict()
    assert {k: config[k] for k in resolved} == resolved
    assert config["config_hash"] == run.name.rsplit("-", 1)[1]
    # the final metrics of summary.json as the W&B summary; the W&B run named after the directory
    final = json.loads((run / "summary.json").read_text())
    assert summary["final/val_miou"] == pytest.approx(final["metrics"]["val"]["miou"])
    assert summary["final/pseudo_miou"] == pytest.approx(final["pseudo_miou"])
    assert record.display_name == run.name and record.project == "aakit"


def test_online_without_credentials_is_one_line(tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("wandb", reason="wandb is not installed: pip install 'aakit[wandb]'")
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-home"))
    argv = ["train", "synthetic/full", *_set_items(tiny_synth, **{"logging.backends": ["jsonl", "wandb"]}),
            "--results", str(tmp_path / "results"), "--no-progress"]
    code, _, err = run_cli(argv, monkeypatch, capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("aakit")]
    assert len(lines) == 1 and "wandb cannot start" in lines[0] and "WANDB_MODE=offline" in lines[0], err


def test_a_resumed_run_continues_the_same_wandb_run(tiny_synth: Path, tmp_path: Path, offline: None) -> None:
    """Stopped at step 5 (checkpoint kept) and resumed: two offline folders of one W&B run id,
    which together hold each point of metrics.jsonl once."""
    from aakit.engine.train import train

    cfg = _cfg(tiny_synth)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, results=tmp_path / "results", progress=False, stop_after_steps=5)
    (run,) = (tmp_path / "results" / "runs").iterdir()
    train(cfg, results=tmp_path / "results", progress=False, resume=run)
    folders = sorted((run / "wandb").glob("offline-run-*"))
    # offline-run-<time>-<id>; W&B adds -1, -2 ... when two sittings start within the same second
    assert len(folders) == 2 and all(re.fullmatch(rf"offline-run-\d{{8}}_\d{{6}}-{re.escape(run.name)}(-\d+)?", f.name)
                                     for f in folders), [f.name for f in folders]
    history, _, summary, _ = _read_wandb(run)
    want = expected_scalars(run)
    assert [s for s, _ in want["loss/total"]] == list(range(1, 9))
    for tag, points in want.items():
        assert history[tag] == [(s, pytest.approx(v, rel=1e-9)) for s, v in points], tag
    assert "final/val_miou" in summary
