"""Crash safety: kill -9 at random moments, SIGTERM/SIGINT, stale runs, torn logs, atomic
writes and path/pickle safety.

The kill tests run the real command line (``python -m aakit.cli train``) in subprocesses on
the tiny benchmark (16 images, 2 epochs of 4 steps) and compare every number of the
interrupted-and-resumed run with an uninterrupted one: on CPU they must be identical.
A kill moment is "after the k-th step line appeared, plus a random delay", k and the delay
drawn from a seeded RNG, so the kills land in steps, checkpoint writes and evaluations.
"""
from __future__ import annotations

import ast
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from aakit.config import load_config
from aakit.engine.rundir import CheckpointError, RunWriter, load_checkpoint_file
from aakit.engine.train import train
from aakit.runs import (
    JsonlTail,
    atomic_write_json,
    list_runs,
    load_run,
    read_json,
    read_metrics,
    run_dir_name,
    safe_name,
)

from conftest import REPO, tiny_overrides

CONFIG = REPO / "experiments" / "synthetic" / "full.yaml"


# ----------------------------------------------------------------------------- helpers
def _overrides(root: Path, checkpoint_every: int) -> dict[str, Any]:
    return tiny_overrides(root) | {"train.checkpoint_every": checkpoint_every}


def _set_args(over: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for k, v in over.items():
        args += ["--set", f"{k}={v if isinstance(v, str) else json.dumps(v)}"]
    return args


def _train_cmd(root: Path, results: Path, checkpoint_every: int) -> list[str]:
    """The command a user would type (and type again after a crash)."""
    return [sys.executable, "-m", "aakit.cli", "train", str(CONFIG), *_set_args(_overrides(root, checkpoint_every)),
            "--results", str(results), "--no-progress"]


def _resume_cmd(run: Path, results: Path) -> list[str]:
    return [sys.executable, "-m", "aakit.cli", "train", "--resume", str(run), "--results", str(results), "--no-progress"]


def _run_path(root: Path, results: Path, checkpoint_every: int) -> Path:
    cfg = load_config(CONFIG, _overrides(root, checkpoint_every))
    return results / "runs" / run_dir_name(cfg.name, cfg.hash())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _steps_since(run: Path, t0: float) -> int:
    """Highest step logged by a process started at ``t0`` (0 if none yet)."""
    records, _ = read_metrics(run / "metrics.jsonl")
    steps = [r["step"] for r in records if r.get("kind") == "step" and r.get("time", 0) >= t0]
    return max(steps, default=0)


def _started_since(run: Path, t0: float) -> bool:
    info = read_json(run / "status.json")
    return isinstance(info, dict) and info.get("updated", 0) >= t0


def _launch(cmd: list[str], cwd: Path, run: Path, *, at_step: int | None, delay: float = 0.0,
            sig: int = signal.SIGKILL, timeout: float = 120.0) -> tuple[int, str]:
    """Run ``cmd``; once it has logged step ``at_step`` (0: once it has started the run),
    wait ``delay`` seconds and send ``sig``. ``at_step=None`` runs to the end.
    Returns (exit code, stderr)."""
    cwd.mkdir(parents=True, exist_ok=True)
    err_path = cwd / f"stderr-{time.time_ns()}.txt"
    t0 = time.time()
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        try:
            while at_step is not None and proc.poll() is None:
                reached = _started_since(run, t0) if at_step == 0 else _steps_since(run, t0) >= at_step
                if reached:
                    time.sleep(delay)
                    proc.send_signal(sig)
                    break
                assert time.monotonic() < deadline, "training did not reach the kill point"
                time.sleep(0.002)
            rc = proc.wait(timeout=timeout)  # reaps the process: its pid is really gone
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return rc, err_path.read_text()


def _numbers(run: Path) -> dict[str, Any]:
    """Everything training computed: per-step losses and lr, per-epoch scores, final metrics."""
    records, errors = read_metrics(run / "metrics.jsonl")
    assert not errors, errors
    summary = json.loads((run / "summary.json").read_text())
    return {
        "steps": [(r["step"], r["epoch"], r["losses"], r["learning_rate"]) for r in records if r["kind"] == "step"],
        "epochs": [(r["epoch"], r["step"], r.get("miou"), r.get("miou_rfpc"), r.get("pseudo_miou"))
                   for r in records if r["kind"] == "epoch"],
        "metrics": summary["metrics"],
        "pseudo_miou": summary["pseudo_miou"],
    }


def _assert_same_as(run: Path, ref: Path) -> None:
    a, b = _numbers(ref), _numbers(run)
    assert [s[0] for s in b["steps"]] == list(range(1, 9))  # each step exactly once
    assert b == a
    wa = torch.load(ref / "checkpoints" / "last.pt", weights_only=True)["model"]
    wb = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert load_run(run).status == "finished"
    assert not list(run.rglob(".*.tmp")), "temp files of killed writes were not cleaned up"


def _assert_not_torn(run: Path) -> None:
    """Every file of a killed run is whole: JSON parses, YAML loads, the checkpoint loads."""
    if not run.exists():
        return
    for f in run.rglob("*.json"):
        if not f.name.startswith("."):
            json.loads(f.read_text())
    if (run / "config.yaml").exists():
        data = yaml.safe_load((run / "config.yaml").read_text())
        assert isinstance(data, dict) and data["train"]["epochs"] == 2
        load_config(run / "config.yaml")  # a valid, complete config
    ck = run / "checkpoints" / "last.pt"
    if ck.exists():
        state = torch.load(ck, map_location="cpu", weights_only=True)
        assert {"model", "optimizer", "step", "torch_rng"} <= set(state)
    _, errors = read_metrics(run / "metrics.jsonl")
    assert not errors, errors  # a torn last line is held back, never an error


def _assert_killed_run_is_stale(run: Path) -> None:
    info = read_json(run / "status.json")
    if isinstance(info, dict) and info.get("status") == "running":
        assert load_run(run).status == "stale"


@pytest.fixture(scope="module")
def reference(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run, through the same command line."""
    base = tmp_path_factory.mktemp("reference")
    results = base / "results"
    run = _run_path(tiny_synth, results, 1)
    rc, err = _launch(_train_cmd(tiny_synth, results, 1), base / "cwd", run, at_step=None)
    assert rc == 0, err
    return run


# ----------------------------------------------------------------------------- 1. SIGKILL
def test_sigkill_at_random_moments_then_resume_matches_uninterrupted(reference: Path, tiny_synth: Path, tmp_path: Path) -> None:
    """kill -9 at seeded random moments, resume (--resume or the same command), compare."""
    rng = random.Random(6)
    # (checkpoint_every, plan): each kill is (step to wait for, how to restart afterwards)
    scenarios = [
        (1, [(rng.randint(1, 4), "resume"), (rng.randint(5, 7), "rerun")]),
        (0, [(0, "rerun"), (rng.randint(1, 3), "rerun"), (rng.randint(5, 7), "resume")]),
    ]
    for checkpoint_every, plan in scenarios:
        results = tmp_path / f"every{checkpoint_every}"
        run = _run_path(tiny_synth, results, checkpoint_every)
        cmd = _train_cmd(tiny_synth, results, checkpoint_every)
        kills = 0
        for at_step, restart in plan:
            rc, err = _launch(cmd, tmp_path / "cwd", run, at_step=at_step, delay=rng.uniform(0.0, 0.04))
            assert rc in (-signal.SIGKILL, 0), err
            if rc == 0:  # the machine was slow and training finished first: nothing to resume
                break
            kills += 1
            ck = run / "checkpoints" / "last.pt"
            print(f"checkpoint_every={checkpoint_every}: killed after step line {at_step}: logged up to step "
                  f"{_steps_since(run, 0)}, checkpoint at step {torch.load(ck, weights_only=True)['step'] if ck.exists() else None}")
            _assert_not_torn(run)
            _assert_killed_run_is_stale(run)
            cmd = _resume_cmd(run, results) if restart == "resume" and (run / "config.yaml").exists() \
                else _train_cmd(tiny_synth, results, checkpoint_every)
        assert kills >= 1
        rc, err = _launch(cmd, tmp_path / "cwd", run, at_step=None)
        assert rc == 0, err
        _assert_same_as(run, reference)
    assert not any((tmp_path / "cwd").glob("[!s]*"))  # nothing written to the working directory


# ----------------------------------------------------------------------------- 2. SIGTERM / SIGINT
def test_sigterm_and_sigint_checkpoint_mark_interrupted_and_resume_exactly(reference: Path, tiny_synth: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    run = _run_path(tiny_synth, results, 0)
    cmd = _train_cmd(tiny_synth, results, 0)
    for sig, at_step in ((signal.SIGTERM, 1), (signal.SIGINT, 5)):
        if sig == signal.SIGINT:
            cmd = _resume_cmd(run, results)
        rc, err = _launch(cmd, tmp_path / "cwd", run, at_step=at_step, sig=sig)
        assert rc == 130, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        if lines:
            assert "interrupted at step" in lines[0] and "--resume" in lines[0], err
        status = json.loads((run / "status.json").read_text())
        assert status["status"] == "interrupted" and load_run(run).status == "interrupted"
        ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        assert ckpt["step"] == status["step"] >= at_step  # the checkpoint holds the last step done
        assert not (run / "summary.json").exists()
        _assert_not_torn(run)
    rc, err = _launch(_train_cmd(tiny_synth, results, 0), tmp_path / "cwd", run, at_step=None)
    assert rc == 0, err
    _assert_same_as(run, reference)


def test_interrupt_prints_one_line_naming_the_resume_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """What the engine raises on SIGINT/SIGTERM reaches the user as one line, exit 130."""
    import aakit.engine.train as T
    from aakit import cli

    def interrupted(*a: Any, **k: Any) -> Path:
        raise KeyboardInterrupt("interrupted at step 3; resume with: aakit train --resume results/runs/x-1")

    monkeypatch.setattr(T, "train", interrupted)
    monkeypatch.setattr(sys, "argv", ["aakit", "train", str(CONFIG), "--results", str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err
    assert e.value.code == 130
    assert [line for line in err.splitlines() if line.strip()] == [
        "aakit: interrupted at step 3; resume with: aakit train --resume results/runs/x-1"]


# ----------------------------------------------------------------------------- 3. stale
def test_sigkilled_run_is_stale(tiny_synth: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    run = _run_path(tiny_synth, results, 0)
    rc, err = _launch(_train_cmd(tiny_synth, results, 0), tmp_path / "cwd", run, at_step=1)
    assert rc == -signal.SIGKILL, err
    info = json.loads((run / "status.json").read_text())
    assert info["status"] == "running"  # the process had no chance to say otherwise
    assert load_run(run).status == "stale"
    assert [r.status for r in list_runs(results)] == ["stale"]
    # a live process with the same record is running, not stale
    (run / "status.json").write_text(json.dumps(info | {"pid": os.getpid()}))
    assert load_run(run).status == "running"


def test_stale_after_silence_and_finished_summary_wins(tmp_path: Path) -> None:
    """No news for ``stale_after`` seconds -> stale; a summary written just before a kill -> finished."""
    run = tmp_path / "runs" / "r-1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: r\n")
    old = time.time() - 3600
    atomic_write_json(run / "status.json", {"status": "running", "pid": os.getpid(), "host": "elsewhere", "updated": old})
    (run / "metrics.jsonl").write_text("")
    os.utime(run / "metrics.jsonl", (old, old))
    os.utime(run / "config.yaml", (old, old))
    assert load_run(run, stale_after=600).status == "stale"
    assert load_run(run, stale_after=7200).status == "running"
    # killed between writing summary.json and status.json: the run did finish
    atomic_write_json(run / "summary.json", {"status": "finished", "metrics": {}})
    assert load_run(run, stale_after=600).status == "finished"


# ----------------------------------------------------------------------------- 4. torn metrics.jsonl
def test_torn_and_garbage_metric_lines_are_held_back_or_reported(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    good = [{"kind": "step", "step": i, "losses": {"total": 1.0 / i}} for i in (1, 2)]
    text = "".join(json.dumps(r) + "\n" for r in good) + "not json at all\n[1, 2]\n" + '{"kind": "step", "st'
    path.write_text(text)
    records, errors = read_metrics(path)
    assert records == good
    assert len(errors) == 2 and "line 3" in errors[0] and "line 4" in errors[1]  # garbage, with its line
    assert not any("st'" in e or "line 5" in e for e in errors)  # the torn last line is no error
    tail = JsonlTail(path)
    recs, errs = tail.poll()
    assert recs == good and len(errs) == 2
    assert tail.poll() == ([], [])  # the partial line is held back ...
    with open(path, "a") as f:
        f.write('ep": 3}\n')
    assert tail.poll() == ([{"kind": "step", "step": 3}], [])  # ... and completed later
    path.write_text(json.dumps(good[0]) + "\n")  # replaced by a shorter file: start again
    assert tail.poll() == ([good[0]], [])


def test_resume_with_a_torn_metrics_line_ends_with_a_clean_file(reference: Path, tiny_synth: Path, tmp_path: Path) -> None:
    cfg = load_config(CONFIG, _overrides(tiny_synth, 1))
    with pytest.raises(KeyboardInterrupt):
        train(cfg, results=tmp_path, progress=False, stop_after_steps=3)
    run = _run_path(tiny_synth, tmp_path, 1)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('garbage line\n{"kind":"step","epoch":1,"step":4,"los')  # a crash mid-append
    (run / "checkpoints" / ".last.pt.x1y2.tmp").write_bytes(b"half a checkpoint")  # mid-write
    (run / ".status.json.a1b2.tmp").write_text('{"stat')
    train(cfg, results=tmp_path, progress=False, resume=run)
    text = (run / "metrics.jsonl").read_text()
    assert text.endswith("\n")
    assert all(json.loads(line) for line in text.splitlines())  # every line whole
    _assert_same_as(run, reference)


# ----------------------------------------------------------------------------- crash inside an epoch's evaluation
def test_crash_during_epoch_evaluation_redoes_it_on_resume(reference: Path, tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With checkpoint_every=1 the step-4 checkpoint precedes epoch 1's evaluation; a crash in
    that evaluation must not lose the epoch's record."""
    import aakit.engine.hooks as T  # the evaluation and the summary run in hooks

    class Crash(BaseException):
        pass

    real = T.evaluate
    calls = {"n": 0}

    def crash_in_first(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Crash()
        return real(*a, **k)

    cfg = load_config(CONFIG, _overrides(tiny_synth, 1))
    monkeypatch.setattr(T, "evaluate", crash_in_first)
    with pytest.raises(Crash):
        train(cfg, results=tmp_path, progress=False)
    run = _run_path(tiny_synth, tmp_path, 1)
    assert torch.load(run / "checkpoints/last.pt", weights_only=True)["step"] == 4
    monkeypatch.setattr(T, "evaluate", real)
    train(cfg, results=tmp_path, progress=False, resume=run)
    _assert_same_as(run, reference)


def test_crash_during_final_evaluation_resumes_to_the_same_summary(reference: Path, tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after the last epoch but before summary.json: resuming trains nothing more and
    writes the same summary (the last epoch's pseudo-label score comes from the log)."""
    import aakit.engine.hooks as T  # the evaluation and the summary run in hooks

    class Crash(BaseException):
        pass

    def crash(*a: Any, **k: Any) -> Any:
        raise Crash()

    cfg = load_config(CONFIG, _overrides(tiny_synth, 1))
    real = T.final_summary
    monkeypatch.setattr(T, "final_summary", crash)
    with pytest.raises(Crash):
        train(cfg, results=tmp_path, progress=False)
    run = _run_path(tiny_synth, tmp_path, 1)
    assert not (run / "summary.json").exists()
    monkeypatch.setattr(T, "final_summary", real)
    train(cfg, results=tmp_path, progress=False, resume=run)
    _assert_same_as(run, reference)


def test_sigterm_during_epoch_evaluation_stops_after_it(reference: Path, tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal arriving during an evaluation stops the run right after that epoch's checkpoint
    (not one training step later), and the resumed run still matches."""
    import aakit.engine.hooks as T  # the evaluation and the summary run in hooks

    real = T.evaluate
    calls = {"n": 0}

    def signal_in_first(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # caught by the engine's handler: sets a flag
        return real(*a, **k)

    cfg = load_config(CONFIG, _overrides(tiny_synth, 0))
    monkeypatch.setattr(T, "evaluate", signal_in_first)
    with pytest.raises(KeyboardInterrupt, match="interrupted at step 4"):
        train(cfg, results=tmp_path, progress=False)
    run = _run_path(tiny_synth, tmp_path, 0)
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert (state["step"], state["epochs_done"]) == (4, 1)
    records, _ = read_metrics(run / "metrics.jsonl")
    assert [r["kind"] for r in records] in (["step"] * 4 + ["epoch"],  # epoch 1 evaluated, no step 5
                                            ["step"] * 4 + ["epoch", "mechanism"])  # (and its mechanism record)
    assert load_run(run).status == "interrupted"
    train(cfg, results=tmp_path, progress=False, resume=run)
    _assert_same_as(run, reference)


def test_a_signal_after_the_last_step_finishes_the_run_then_stops_the_caller(reference: Path, tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM during the final evaluation: the run is completed (summary.json, status finished,
    the uninterrupted numbers), and then train() raises as a stop does, so that a grid or a search
    stops instead of forgetting the request and starting its next run; the handlers are put back."""
    import aakit.engine.hooks as T

    real = T.final_summary

    def signal_in_summary(*a: Any, **k: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)  # caught by the engine's handler: sets a flag
        return real(*a, **k)

    before = signal.getsignal(signal.SIGTERM)
    cfg = load_config(CONFIG, _overrides(tiny_synth, 1))
    monkeypatch.setattr(T, "final_summary", signal_in_summary)
    with pytest.raises(KeyboardInterrupt, match="after the run finished: .* is complete"):
        train(cfg, results=tmp_path, progress=False)
    assert signal.getsignal(signal.SIGTERM) is before
    run = _run_path(tiny_synth, tmp_path, 1)
    assert load_run(run).status == "finished"
    _assert_same_as(run, reference)


# ----------------------------------------------------------------------------- 5. atomic writes
@pytest.mark.parametrize("broken", ["replace", "fsync"])
def test_failed_atomic_write_keeps_the_old_file_and_no_temp(broken: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_config: Any) -> None:
    import aakit.runs as runs_mod

    target = tmp_path / "run" / "summary.json"
    atomic_write_json(target, {"version": 1})
    writer = RunWriter(tmp_path / "results", tiny_config)
    writer.path.mkdir(parents=True)
    writer.save_checkpoint({"model": {"w": torch.ones(2)}, "step": 1})
    writer.set_status("running")
    ck_before = writer.ckpt_path.read_bytes()
    status_before = (writer.path / "status.json").read_bytes()

    def crash(*a: Any, **k: Any) -> None:
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(runs_mod.os, broken, crash)
    with pytest.raises(OSError, match="simulated"):
        atomic_write_json(target, {"version": 2})
    with pytest.raises(OSError, match="simulated"):
        writer.save_checkpoint({"model": {"w": torch.zeros(2)}, "step": 2})
    with pytest.raises(OSError, match="simulated"):
        writer.set_status("finished")
    with pytest.raises(OSError, match="simulated"):
        from aakit.config import save_config

        save_config(tiny_config, writer.path / "config.yaml")
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"version": 1}
    assert writer.ckpt_path.read_bytes() == ck_before
    assert load_checkpoint_file(writer.ckpt_path)["step"] == 1
    assert (writer.path / "status.json").read_bytes() == status_before
    assert not (writer.path / "config.yaml").exists()  # never half there
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == []


def test_hard_crash_mid_write_leaves_the_old_file(tmp_path: Path) -> None:
    """A real process dies (os._exit) after writing the temp file, before the rename.

    (The temp file it leaves is removed when the run is resumed: see
    ``test_resume_with_a_torn_metrics_line_ends_with_a_clean_file``.)
    """
    target = tmp_path / "status.json"
    atomic_write_json(target, {"status": "running", "n": 1})
    code = (
        "import os, sys, aakit.runs as r\n"
        "os.fsync = lambda fd: os._exit(9)\n"
        "r.atomic_write_json(sys.argv[1], {'status': 'finished', 'n': 2})\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(target)], env=_env(), capture_output=True, text=True)
    assert p.returncode == 9, p.stderr
    assert json.loads(target.read_text()) == {"status": "running", "n": 1}
    temps = list(tmp_path.glob(".status.json.*.tmp"))
    assert len(temps) == 1  # the crash left its temp file: no cleanup is possible in the dying process


def test_every_module_writes_files_atomically() -> None:
    """Static check: no module of aakit writes a file except through ``aakit.files``' atomic helpers."""
    allowed = {
        "aakit/files.py": "the atomic helpers and the append-only JSONL log",
        "aakit/data/synth/write.py": "writes into a temporary directory renamed into place when complete",
        "aakit/data/objects/build.py": "writes into a temporary directory renamed into place when complete",
        "aakit/experiment/studies.py": "an append-mode lock file (content never read)",
        "aakit/engine/inference.py": "prediction overlays (user output, redone by a rerun) - see docs/reliability.md",
        "aakit/experiment/journal.py": "Optuna's append-only journal: appends as Optuna does; a torn tail is cut "
                                       "in place under Optuna's lock, after a durable copy of the whole file",
    }
    offenders = []
    for f in sorted((REPO / "aakit").rglob("*.py")):
        rel = f.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(f.read_text())):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            raw = name in ("write_text", "write_bytes")
            if name == "open":
                mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
                raw = isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+")
            if name in ("save", "savefig") and node.args:  # torch.save(obj, f) / img.save(f) / fig.savefig(f)
                dest = node.args[1] if (isinstance(fn, ast.Attribute) and ast.unparse(fn.value) == "torch") else node.args[0]
                raw = not (isinstance(dest, ast.Name) and dest.id == "buf")
            if raw and rel not in allowed:
                offenders.append(f"{rel}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert offenders == []


# ----------------------------------------------------------------------------- 6. path and load safety
@pytest.mark.parametrize("name,expected", [
    ("../../escape", "escape"),
    ("a/b c", "a-b-c"),
    ("/etc/passwd", "etc-passwd"),
    ("..", "run"),
    ("", "run"),
    (".hidden", "hidden"),
    ("x\x00y\nz", "x-y-z"),
    ("C:\\evil\\..\\x", "C-evil-..-x"),
    ("é" * 200, "é" * 80),  # letters of any script are kept (at most 80)
])
def test_safe_name_never_escapes(name: str, expected: str, tmp_path: Path) -> None:
    out = safe_name(name)
    assert out == expected
    assert "/" not in out and "\\" not in out and out not in (".", "..") and not out.startswith(".")
    p = (tmp_path / "runs" / run_dir_name(name, "abcd1234")).resolve()
    assert p.parent == (tmp_path / "runs").resolve()


def test_run_name_with_dots_and_slashes_stays_under_results(tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from aakit import cli

    results = tmp_path / "deep" / "results"
    over = tiny_overrides(tiny_synth) | {"train.epochs": 1, "train.cls_warmup_epochs": 0}
    argv = ["aakit", "train", str(REPO / "experiments/synthetic/baseline.yaml"), *_set_args(over),
            "--results", str(results), "--no-progress"]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for name in ("../../escape", "my run/with slashes"):
        monkeypatch.setattr(sys, "argv", [*argv, "--name", name])
        cli.main()
    runs = sorted(p.name for p in (results / "runs").iterdir())
    assert [r.rsplit("-", 1)[0] for r in runs] == ["escape", "my-run-with-slashes"]
    outside = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if results not in (p, *p.parents))
    assert outside == ["cwd", "deep"]  # nothing written anywhere else
    capsys.readouterr()


def test_yaml_python_tags_are_refused_with_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from aakit import cli

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n"
                    f"train:\n  seed: !!python/object/new:builtins.int [3]\n")
    cases = [
        (["train", str(evil)], "evil.yaml"),
        # a --set value with a tag is not constructed either: it stays a string, then fails the type check
        (["train", str(CONFIG), "--set", f"train.seed=!!python/object/apply:os.system ['touch {marker}']"], "train.seed"),
    ]
    for argv, where in cases:
        monkeypatch.setattr(sys, "argv", ["aakit", *argv, "--results", str(tmp_path / "results")])
        with pytest.raises(SystemExit) as e:
            cli.main()
        err = capsys.readouterr().err
        assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert where in err, err
    assert not marker.exists()
    assert not (tmp_path / "results").exists()


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def test_checkpoints_load_with_weights_only(tiny_config: Any, tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from aakit import cli

    # the payload is live: an unsafe load would run it
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe))).close()
    assert probe.exists()

    marker = tmp_path / "pwned"
    writer = RunWriter(tmp_path / "results", tiny_config)
    writer.path.mkdir(parents=True)
    from aakit.config import save_config

    save_config(tiny_config, writer.path / "config.yaml")
    writer.ckpt_path.parent.mkdir()
    torch.save({"model": {"w": torch.ones(1)}, "step": 1, "evil": _Payload(marker), "config_hash": tiny_config.hash()},
               writer.ckpt_path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint_file(writer.ckpt_path)
    as_init = ["train", str(CONFIG), *_set_args(tiny_overrides(tiny_synth)), "--set", f"model.pretrained={writer.ckpt_path}"]
    for argv in (["eval", str(writer.path)], ["train", "--resume", str(writer.path)], as_init):
        monkeypatch.setattr(sys, "argv", ["aakit", *argv, "--results", str(tmp_path / "results")])
        with pytest.raises(SystemExit) as e:
            cli.main()
        err = capsys.readouterr().err
        assert e.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert "not a readable checkpoint" in err and "last.pt" in err, err
    assert not marker.exists()


def test_training_needs_no_network(tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training and evaluation open no network connection (local pipes/unix sockets only)."""
    import socket

    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family != socket.AF_UNIX:
            attempts.append(address)
            raise OSError("network access during a run (blocked by the test)")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: guarded(socket.socket(), a[0]))
    cfg = load_config(REPO / "experiments/synthetic/baseline.yaml",
                      tiny_overrides(tiny_synth) | {"train.epochs": 1, "train.cls_warmup_epochs": 0})
    run = train(cfg, results=tmp_path, progress=False)
    assert attempts == [] and load_run(run).status == "finished"


def test_no_unsafe_loaders_in_the_code() -> None:
    """Static check: yaml.safe_load only, torch.load(weights_only=True) only, no pickle/eval/exec."""
    bad = []
    for f in sorted((REPO / "aakit").rglob("*.py")):
        rel = f.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                bad += [f"{rel}:{node.lineno}: import {m}" for m in mods if m.split(".")[0] in ("pickle", "dill", "marshal", "shelve")]
            if not isinstance(node, ast.Call):
                continue
            src = ast.unparse(node.func)
            if src in ("eval", "exec") or src.endswith(("yaml.load", "yaml.unsafe_load", "yaml.full_load")):
                bad.append(f"{rel}:{node.lineno}: {src}")
            if src == "torch.load":
                wo = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    bad.append(f"{rel}:{node.lineno}: torch.load without weights_only=True")
    assert bad == []
