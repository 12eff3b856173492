"""Logs without a terminal (issue 16 part 4): under nohup or SLURM stdout is a file or a pipe;
`aakit train` then prints plain progress lines with step, losses, lr, images/s and ETA, and
says when it resumes, evaluates, or finds the run already finished."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, tiny_overrides

BASE = REPO / "experiments/synthetic/full.yaml"


def _aakit(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="80")
    return subprocess.run([sys.executable, "-m", "aakit.cli", *args], cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)


def _train_args(root: Path, results: Path, *extra: str) -> list[str]:
    over = tiny_overrides(root) | {"eval.save_examples": 0, "logging.print_every": 3, "logging.backends": ["jsonl"]}
    args = ["train", str(BASE), "--results", str(results)]
    for k, v in over.items():
        args += ["--set", f"{k}={v if isinstance(v, str) else json.dumps(v)}"]
    return args + list(extra)


LINE = re.compile(r"^(\S+) step (\d+)/8 \(\d+%\) epoch (\d)/2 \| (.+) \| lr (\S+) \| (\S+) img/s \| eta (\d+:\d\d:\d\d)$")


def test_plain_lines_on_a_pipe_then_already_finished(tiny_synth: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    p = _aakit(_train_args(tiny_synth, results), tmp_path)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert not any("\x1b" in line or "━" in line for line in lines)  # no terminal codes, no bar
    steps = [m for m in map(LINE.match, lines) if m]
    assert [int(m[2]) for m in steps] == [1, 3, 6, 8]  # the first, every 3rd, the last
    assert all(float(m[5]) > 0 and float(m[6]) > 0 for m in steps)
    assert "cls=" in steps[0][4] and "total=" in steps[0][4] and "aa=" in steps[-1][4]
    run = steps[0][1]
    # each evaluation is announced before it runs, and the final one after the last epoch
    ev = [i for i, line in enumerate(lines) if line.startswith(f"{run}: evaluating epoch")]
    assert len(ev) == 2 and lines[ev[0] + 1].startswith("epoch 1: val mIoU")
    assert any(line == f"{run}: final evaluation (summary.json) ..." for line in lines)
    assert lines[-1].startswith(str(results / "runs" / run)) and "mIoU" in lines[-1]

    again = _aakit(_train_args(tiny_synth, results), tmp_path)
    assert again.returncode == 0
    assert again.stdout.splitlines()[0] == (f"already finished: {results / 'runs' / run} (nothing to train; "
                                            f"a new --name or config trains another run)")
    assert not LINE.search(again.stdout)


def _interrupted_run(tiny_synth: Path, results: Path) -> tuple[Any, Path]:
    """(config, run directory) of a tiny run stopped after 5 of its 8 steps."""
    from aakit.config import load_config
    from aakit.engine.train import train

    cfg = load_config(BASE, tiny_overrides(tiny_synth) | {"eval.save_examples": 0, "logging.backends": ["jsonl"]})
    try:
        train(cfg, results=results, progress=False, stop_after_steps=5)
    except KeyboardInterrupt:
        pass
    (run,) = (results / "runs").iterdir()
    return cfg, run


def test_resume_is_said_on_the_console(tiny_synth: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    _, run = _interrupted_run(tiny_synth, results)
    p = _aakit(["train", "--resume", str(run), "--results", str(results), "--set", "logging.print_every=100"], tmp_path)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == f"{run.name}: resumed from step 5/8 (epoch 2 of 2)"
    assert [int(m[2]) for m in map(LINE.match, lines) if m] == [6, 8]


def test_a_resumed_runs_wall_time_counts_the_sittings_before_its_checkpoint(tiny_synth: Path, tmp_path: Path) -> None:
    """summary.json's wall_time_s (the grid cost table's compute) goes on from the checkpoint's
    elapsed_s, not from zero: here the first sitting is made to have lasted 1000 s."""
    import torch

    from aakit.engine.train import train

    results = tmp_path / "results"
    cfg, run = _interrupted_run(tiny_synth, results)
    ckpt = run / "checkpoints" / "last.pt"
    state = torch.load(ckpt, weights_only=True)
    assert 0 < state["elapsed_s"] < 1000
    state["elapsed_s"] = 1000.0
    torch.save(state, ckpt)
    train(cfg, results=results, progress=False, resume=run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and 1000 < summary["wall_time_s"] < 1000 + 600


@pytest.mark.parametrize("width", [80, 60, 160])
def test_the_progress_bar_keeps_step_percentage_and_eta_whole_at_any_width(width: int) -> None:
    """Issue 33: at 80 columns rich cut the ETA and the percentage to "…"; the losses give way."""
    import io
    import re
    from types import SimpleNamespace

    from rich.console import Console

    from aakit.engine.hooks import ProgressBar

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=True, color_system=None)
    trainer = SimpleNamespace(total_steps=1500, step=0, epoch=0, cfg=SimpleNamespace(train=SimpleNamespace(epochs=8)),
                              losses={"aa": 1.2, "ce": 2.67, "cls": 0.6, "lr": 0.13, "total": 4.6}, images_per_s=28.5,
                              resumed=False)
    bar = ProgressBar("v2-table2-AA-4-8-12-24-36-s17-1b73f3ed")
    bar.trainer = trainer
    bar.announce_resume = bar.announce_evaluation = lambda: None  # console lines: not what is tested here
    bar.before_train(console=console)
    trainer.step = 40
    bar.after_step()
    bar.p.refresh()
    bar.p.stop()
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", buf.getvalue()).replace("\r", "\n")
    line = [ln for ln in text.splitlines() if ln.strip()][-1]
    assert "…" not in line and len(line) <= width, line
    assert "3%" in line and "40/1500" in line and re.search(r"eta \d:\d\d:\d\d|eta -:--:--", line), line
    if width >= 160:
        assert "ce 2.670" in line  # room for every loss
