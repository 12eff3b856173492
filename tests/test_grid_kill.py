"""A grid killed with SIGKILL, then finished by two grid processes sharing its storage.

This is the end-to-end version of the grid's crash story (``aakit/experiment/grid.py``): the
real command line (``python -m aakit.cli grid``) trains the tiny benchmark (16 images, 2 epochs
of 4 steps, a checkpoint after every step). The first invocation runs two worker processes and
is killed (``kill -9`` on its whole process group, so the workers die too) as soon as one point
has a checkpoint. Then two invocations start at once on the same default storage
(``results/studies/grid-<name>.log``): one with ``--workers 2``, one plain. Afterwards every
point has exactly one finished run, trained once (each step logged once, one COMPLETE trial),
the killed points were resumed from their checkpoints, and one more invocation runs nothing.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import torch
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

from aakit.experiment import studies
from aakit.experiment.grid import GridPoint, load_grid
from aakit.runs import read_json, read_metrics, run_dir_name

from conftest import REPO, tiny_overrides

CONFIG = REPO / "experiments" / "synthetic" / "full.yaml"
NAME = "killgrid"
STEPS = 8  # 16 images, batch 4, 2 epochs


# ----------------------------------------------------------------------------- helpers
def _set_args(root: Path) -> list[str]:
    """The tiny schedule as ``--set`` items (so it is part of every point's hash)."""
    over = tiny_overrides(root) | {"train.checkpoint_every": 1}
    return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in over.items()]


def _write_grid(tmp_path: Path) -> Path:
    spec = {
        "name": NAME,
        "base": str(CONFIG),
        "preset": "synthetic",
        "seeds": [0],
        "rows": [
            {"table": 1, "row": "CLS+CE", "set": {"loss.affinity": "none", "loss.label_reassign": False}},
            {"table": 1, "row": "CLS+CE+AA", "set": {"loss.affinity": "aa", "loss.label_reassign": False}},
            {"table": 1, "row": "CLS+CE+AA+LR", "set": {}},
        ],
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _start(grid: Path, sets: list[str], results: Path, cwd: Path, tag: str, *extra: str) -> subprocess.Popen[bytes]:
    """``aakit grid`` in its own session (process group), output to ``cwd/<tag>.out``."""
    cmd = [sys.executable, "-m", "aakit.cli", "grid", str(grid)]
    for s in sets:
        cmd += ["--set", s]
    cmd += ["--results", str(results), *extra]
    out = open(cwd / f"{tag}.out", "wb")
    try:
        return subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        out.close()  # the child holds its own copy


def _finish(proc: subprocess.Popen[bytes], timeout: float = 150.0) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def _steps(run: Path) -> list[int]:
    records, errors = read_metrics(run / "metrics.jsonl")
    assert not errors, errors
    return [r["step"] for r in records if r.get("kind") == "step"]


def _finished(run: Path) -> bool:
    summary = read_json(run / "summary.json")
    return isinstance(summary, dict) and summary.get("status") == "finished"


def _trials(results: Path) -> list[FrozenTrial]:
    """The grid's study, read straight from its journal file (as the grid code opens it)."""
    path = str(results / "studies" / f"grid-{NAME}.log")
    storage = JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    return optuna.load_study(study_name=f"grid-{NAME}", storage=storage).get_trials(deepcopy=False)


def _wait_for_a_checkpoint(proc: subprocess.Popen[bytes], runs: list[Path], log: Path) -> None:
    """Until some run is mid-training with a checkpoint on disk (at least one step line)."""
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, f"the grid ended before the kill:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no checkpoint appeared:\n{log.read_text()}"
        for run in runs:
            if (run / "checkpoints" / "last.pt").is_file() and 0 < len(_steps(run)) < STEPS:
                return
        time.sleep(0.005)


def _wait_exited(pids: list[int]) -> None:
    """Until each process has finished exiting (gone, or a zombie waiting to be reaped)."""
    deadline = time.monotonic() + 30
    for pid in pids:
        while True:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            assert time.monotonic() < deadline, f"killed worker {pid} did not exit"
            time.sleep(0.01)


# ----------------------------------------------------------------------------- the test
def test_sigkilled_grid_is_finished_by_two_processes_each_point_trained_once(tiny_synth: Path, tmp_path: Path) -> None:
    grid_path = _write_grid(tmp_path)
    sets = _set_args(tiny_synth)
    results = tmp_path / "results"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    units: list[GridPoint] = load_grid(grid_path, sets).units()
    assert len(units) == 3
    runs = {u.hash: results / "runs" / run_dir_name(u.run_name, u.hash) for u in units}

    # 1. a grid with two workers, killed (-9, whole process group) once a point has a checkpoint
    first = _start(grid_path, sets, results, cwd, "killed", "--workers", "2")
    _wait_for_a_checkpoint(first, list(runs.values()), cwd / "killed.out")
    workers = [c.pid for c in psutil.Process(first.pid).children(recursive=True)]
    os.killpg(first.pid, signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    _wait_exited(workers)  # orphaned by the kill: init reaps them, whenever it does
    killed = {h: run for h, run in runs.items() if run.exists() and not _finished(run)}
    ckpt_step = {h: int(torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"])
                 for h, run in killed.items() if (run / "checkpoints" / "last.pt").is_file()}
    assert ckpt_step and all(s >= 1 for s in ckpt_step.values())
    done_before = {h: (run / "metrics.jsonl").read_bytes() for h, run in runs.items() if run.exists() and _finished(run)}
    left_running = [t for t in _trials(results) if t.state == TrialState.RUNNING]
    # the claims the kill left behind: every interrupted run's (a worker may have died before
    # creating its run directory), none of a finished one
    claimed = {t.user_attrs["point"] for t in left_running}
    assert set(killed) <= claimed and not claimed & set(done_before)
    # and they are free at once on this host, though their heartbeats are fresh: the workers
    # have exited, even if init has not reaped them yet (a zombie still answers kill(pid, 0))
    assert {int(t.user_attrs["pid"]) for t in left_running} <= set(workers)
    assert not [t.number for t in left_running if studies.is_live(t, grace=600)]
    print(f"killed mid-training: {sorted(killed)}; checkpoints at steps {ckpt_step}; finished before: {len(done_before)}")

    # 2. two invocations at once on the same default storage: one with two workers, one plain
    a = _start(grid_path, sets, results, cwd, "a", "--workers", "2")
    b = _start(grid_path, sets, results, cwd, "b")
    rc_a, rc_b = _finish(a), _finish(b)
    assert rc_a == 0, (cwd / "a.out").read_text()
    assert rc_b == 0, (cwd / "b.out").read_text()
    assert "Traceback" not in (cwd / "a.out").read_text() + (cwd / "b.out").read_text()

    # every point: exactly one finished run directory, each step trained (logged) exactly once
    assert sorted(p.name for p in (results / "runs").iterdir()) == sorted(r.name for r in runs.values())
    for h, run in runs.items():
        assert _finished(run), run.name
        assert _steps(run) == list(range(1, STEPS + 1)), run.name
    for h, metrics in done_before.items():
        assert (runs[h] / "metrics.jsonl").read_bytes() == metrics  # finished runs were not touched

    # the killed points were resumed from their checkpoints, not restarted (one killed before
    # its first checkpoint starts again from step 0: nothing to resume)
    for h in runs:
        records, _ = read_metrics(runs[h] / "metrics.jsonl")
        messages = [r["message"] for r in records if r.get("kind") == "log"]
        expected = [f"resumed from step {ckpt_step[h]}"] if h in ckpt_step else []
        assert messages == expected, (runs[h].name, messages)

    # the study: one COMPLETE trial per point; the killed claims marked stale, nothing left running
    trials = _trials(results)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs["point"] for t in complete) == sorted(runs)
    assert {t.user_attrs["run"] for t in complete} == {r.name for r in runs.values()}
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    stale = [t for t in trials if t.user_attrs.get("outcome") == "stale"]
    assert sorted(t.number for t in stale) == sorted(t.number for t in left_running)
    other = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get("outcome") != "stale"]
    assert all(t.user_attrs.get("outcome") == "duplicate" for t in other), [t.user_attrs for t in other]
    sessions = {t.user_attrs["session"] for t in complete}
    print(f"{len(trials)} trials; {len(other)} lost claim races; completed by {len(sessions)} invocation(s)")
    state = json.loads((results / "grids" / NAME / "grid.json").read_text())
    assert [p["state"] for p in state["points"]] == ["done"] * 3

    # 3. one more invocation runs nothing
    metrics = {h: (run / "metrics.jsonl").read_bytes() for h, run in runs.items()}
    last = _start(grid_path, sets, results, cwd, "again")
    assert _finish(last, timeout=60) == 0, (cwd / "again.out").read_text()
    assert "ran 0 run(s)" in (cwd / "again.out").read_text()
    assert {h: (run / "metrics.jsonl").read_bytes() for h, run in runs.items()} == metrics
    assert len(_trials(results)) == len(trials)  # not even a claim
    assert not list(cwd.glob("results")) and not (cwd / "data").exists()  # nothing in the working dir
