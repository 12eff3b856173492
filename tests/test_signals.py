"""Ctrl-C and SIGTERM during training (issue 12): one line, no traceback, a resumable run.

``aakit train`` runs in a real process with two CRF worker processes. Ctrl-C at a terminal
sends SIGINT to the whole foreground process group (the workers too), so the test signals the
group; a scheduler's ``kill`` sends SIGTERM to the main process only.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, tiny_overrides


def _start(tiny_synth: Path, results: Path) -> subprocess.Popen[str]:
    over = tiny_overrides(tiny_synth) | {"train.epochs": 200, "pseudo.workers": 2, "train.cls_warmup_epochs": 0}
    argv = [sys.executable, "-m", "aakit.cli", "train", str(REPO / "experiments/synthetic/full.yaml"),
            "--results", str(results), "--no-progress"]
    for k, v in over.items():
        argv += ["--set", f"{k}={v if isinstance(v, str) else json.dumps(v)}"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=os.environ | {"OMP_NUM_THREADS": "1"})


def _wait_for_steps(results: Path, proc: subprocess.Popen[str], n: int = 2, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        for m in (results / "runs").glob("*/metrics.jsonl"):
            if sum('"kind":"step"' in line for line in m.read_text().splitlines()) >= n:
                return
        time.sleep(0.2)
    proc.kill()
    pytest.fail("training made no steps")


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_prints_one_line_and_leaves_a_resumable_run(tiny_synth: Path, tmp_path: Path, how: str) -> None:
    results = tmp_path / "r"
    proc = _start(tiny_synth, results)
    _wait_for_steps(results, proc)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: the workers get it too
    else:
        os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130, err
    assert "Traceback" not in err + out and "KeyboardInterrupt" not in err, err
    assert len(lines) == 1 and "interrupted at step" in lines[0] and "aakit train --resume" in lines[0], err
    (run,) = (results / "runs").glob("synth-full-*")
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
    assert (run / "checkpoints" / "last.pt").exists()
