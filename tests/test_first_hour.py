"""A newcomer's first hour (issue 33): a pre-training interrupted by Ctrl-C is never taken as
finished, committed runs are never rewritten, and a dependent run records the exact checkpoint
(run, step, epoch, sha256) it started from."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, tiny_overrides


def _setup(tiny_synth: Path, tmp_path: Path) -> tuple[dict, Path]:
    cls_yaml = tmp_path / "cls.yaml"
    cls_yaml.write_text(f"_base_: {REPO / 'experiments/synthetic/cls.yaml'}\ntrain:\n  epochs: 2\n  batch_size: 4\n")
    over = tiny_overrides(tiny_synth) | {"model.pretrained": str(cls_yaml), "train.cls_warmup_epochs": 0,
                                         "train.epochs": 1}
    return over, cls_yaml


def _dependent(over: dict, seed: int = 0):  # noqa: ANN202
    from aakit.config import load_config

    return load_config(REPO / "experiments/synthetic/baseline.yaml", over | {"train.seed": seed})


def _stop_the_pretraining_at(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the pre-training (synth-cls) at ``step``: its SignalHook stops it there."""
    from aakit.engine import train as T

    real = T.default_hooks

    def hooks(trainer, writer, data, **kw):  # noqa: ANN001, ANN003, ANN202
        if trainer.cfg.name == "synth-cls":
            kw["stop_after_steps"] = step
        return real(trainer, writer, data, **kw)

    monkeypatch.setattr(T, "default_hooks", hooks)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_ctrl_c_during_a_shared_pretraining_then_the_same_command_finishes_it_first(
        tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's case: a finished pre-training whose weights are absent is retrained, Ctrl-C
    stops it early, the same command again must finish it, not start from its early checkpoint."""
    from aakit.engine.train import train

    over, _ = _setup(tiny_synth, tmp_path)
    res = tmp_path / "res"
    train(_dependent(over), results=res, progress=False)
    (dep,) = [p for p in (res / "runs").iterdir() if p.name.startswith("synth-cls-")]
    total = json.loads((dep / "status.json").read_text())["steps_total"]
    (dep / "checkpoints" / "last.pt").unlink()  # as a committed run has it: a summary, no weights

    with monkeypatch.context() as m:
        _stop_the_pretraining_at(2, m)
        with pytest.raises(KeyboardInterrupt, match="interrupted at step 2"):
            train(_dependent(over, seed=1), results=res, progress=False)
    assert json.loads((dep / "status.json").read_text())["status"] == "interrupted"
    assert not (dep / "summary.json").exists() and list(dep.glob("summary.before-*.json"))  # set aside

    run = train(_dependent(over, seed=1), results=res, progress=False)
    init = json.loads((run / "provenance.json").read_text())["init_checkpoint"]
    assert (init["run"], init["step"], init["epoch"]) == (dep.name, total, 2)
    assert json.loads((dep / "status.json").read_text())["step"] == total


def test_a_dependent_run_refuses_a_pretraining_that_stopped_early(
        tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aakit.engine.train import train
    from aakit.errors import AakitError

    over, _ = _setup(tiny_synth, tmp_path)
    res = tmp_path / "res"
    with monkeypatch.context() as m:
        _stop_the_pretraining_at(3, m)
        with pytest.raises(KeyboardInterrupt):
            train(_dependent(over), results=res, progress=False)
    (dep,) = [p for p in (res / "runs").iterdir() if p.name.startswith("synth-cls-")]
    with pytest.raises(AakitError, match=r"stopped at step 3 of \d+ .*finish it first"):
        train(_dependent(over | {"model.pretrained": str(dep)}), results=res, progress=False)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_committed_run_is_never_rewritten_its_weights_are_trained_as_a_local_copy(
        tiny_synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aakit.engine.train import train

    over, _ = _setup(tiny_synth, tmp_path)
    repo = tmp_path / "repo"
    res = repo / "results"
    train(_dependent(over), results=res, progress=False)
    for run in (res / "runs").iterdir():  # commit the pre-training's evidence only, as the repository does
        if not run.name.startswith("synth-cls-"):
            shutil.rmtree(run)
    (repo / ".gitignore").write_text("results/runs/**/checkpoints/\nresults/local/\n*.lock\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "evidence")
    (dep,) = list((res / "runs").iterdir())
    shutil.rmtree(dep / "checkpoints")  # a fresh clone: checkpoints are not committed
    before = _files(dep)
    capsys.readouterr()

    run = train(_dependent(over, seed=3), results=res, progress=False)
    err = capsys.readouterr().err
    local = res / "local" / "runs" / dep.name
    assert f"{dep} is committed (tracked by git) and is not rewritten" in err and str(local) in err
    assert _files(dep) == before  # the committed run: not a byte changed
    assert _git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    init = json.loads((run / "provenance.json").read_text())["init_checkpoint"]
    assert init["run"] == dep.name and (local / "checkpoints" / "last.pt").exists()
    assert init["step"] == json.loads((local / "status.json").read_text())["steps_total"]
    train(_dependent(over, seed=4), results=res, progress=False)  # the local copy is there now: not "training" it
    assert "training a local copy" not in capsys.readouterr().err
