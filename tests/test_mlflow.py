"""MLflow as a tracking hook (issue 16 part 1): a tiny run writes an MLflow run (a file store in
its run directory) whose metric history, params and status, read back with MLflow's own client,
are the numbers of metrics.jsonl and the resolved config; a resumed run continues the same
MLflow run; a missing package is refused before training."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from aakit.config import Config, load_config
from conftest import REPO, expected_scalars, run_cli, tiny_overrides


def _cfg(root: Path, **extra: Any) -> Config:
    over = tiny_overrides(root) | {"eval.save_examples": 0, "logging.backends": ["jsonl", "mlflow"]} | extra
    return load_config(REPO / "experiments/synthetic/full.yaml", over)


def _train(cfg: Config, results: Path, **kw: Any) -> Path:
    from aakit.engine.train import train

    return train(cfg, results=results, progress=False, **kw)


def _mlflow_runs(run: Path) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    exp = client.get_experiment_by_name("aakit")
    return [] if exp is None else client.search_runs([exp.experiment_id])


def _history(run: Path, mlrun: Any) -> dict[str, list[tuple[int, float]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(mlrun.info.run_id, key))
            for key in mlrun.data.metrics}


@pytest.fixture()
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads a file store only when told


def test_an_mlflow_run_holds_the_numbers_of_metrics_jsonl(tiny_synth: Path, tmp_path: Path, no_env: None) -> None:
    pytest.importorskip("mlflow")
    run = _train(_cfg(tiny_synth, **{"train.log_every": 3}), tmp_path)
    (mlrun,) = _mlflow_runs(run)
    assert mlrun.info.status == "FINISHED" and mlrun.info.run_name == run.name
    assert mlrun.data.tags["aakit.run"] == run.name
    got, want = _history(run, mlrun), expected_scalars(run)
    assert [s for s, _ in want["train/learning_rate"]] == [3, 6, 8]  # every 3 steps and the last, as TensorBoard
    for tag, points in want.items():
        assert [s for s, _ in got[tag]] == [s for s, _ in points], tag
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag
    summary = json.loads((run / "summary.json").read_text())
    assert mlrun.data.metrics["final/val_miou"] == pytest.approx(summary["metrics"]["val"]["miou"])
    params = mlrun.data.params
    assert params["config_hash"] == run.name.rsplit("-", 1)[1]
    assert params["loss.affinity"] == "aa" and params["train.epochs"] == "2" and params["data.crop"] == "64"


def test_a_resumed_run_continues_its_mlflow_run(tiny_synth: Path, tmp_path: Path, no_env: None) -> None:
    pytest.importorskip("mlflow")
    cfg = _cfg(tiny_synth, **{"train.checkpoint_every": 2})
    with pytest.raises(KeyboardInterrupt):
        _train(cfg, tmp_path, stop_after_steps=5)
    (run,) = (tmp_path / "runs").iterdir()
    (stopped,) = _mlflow_runs(run)
    assert stopped.info.status == "KILLED"
    _train(cfg, tmp_path, resume=run)
    (mlrun,) = _mlflow_runs(run)  # the same MLflow run, not a second one
    assert mlrun.info.run_id == stopped.info.run_id and mlrun.info.status == "FINISHED"
    assert [s for s, _ in _history(run, mlrun)["loss/total"]] == list(range(1, 9))  # each step once


def test_mlflow_without_the_package_is_refused_before_training(tiny_synth: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow fails, find_spec finds nothing
    results = tmp_path / "results"
    over = tiny_overrides(tiny_synth) | {"logging.backends": ["jsonl", "mlflow"]}
    argv = ["train", "synthetic/full", *[a for k, v in over.items() for a in ("--set", f"{k}={json.dumps(v)}")],
            "--results", str(results), "--no-progress"]
    code, out, err = run_cli(argv, monkeypatch, capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "mlflow package is not installed" in err and "pip install 'aakit[mlflow]'" in err
    assert not results.exists()
