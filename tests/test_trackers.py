"""The tracker seam (issue 29): one hook owns the cadence, each tracker of the registry
(aakit.trackers.TRACKERS) is a writer; every writer receives the same scalars at the same steps,
and a tracker whose package is missing does what it did before the seam (warn or refuse)."""
from __future__ import annotations

import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aakit.config import LoggingConfig, load_config
from aakit.engine import tracking
from aakit.engine.rundir import RunWriter
from aakit.engine.trackers.base import TrackerWriter
from aakit.errors import AakitError
from aakit.trackers import BACKENDS, TRACKERS
from conftest import REPO, expected_scalars, tiny_overrides


def _cfg(root: Path, backends: list[str], **extra: Any) -> Any:
    over = tiny_overrides(root) | {"eval.save_examples": 0, "logging.backends": backends} | extra
    return load_config(REPO / "experiments/synthetic/full.yaml", over)


@pytest.mark.parametrize("name", TRACKERS)
def test_each_entry_is_a_writer_the_config_accepts(name: str, tiny_synth: Path) -> None:
    cls = tracking.writer_class(name)
    assert issubclass(cls, TrackerWriter) and cls.write is not TrackerWriter.write
    assert cls.package and cls.extra and cls.if_missing in ("warn", "refuse")
    assert _cfg(tiny_synth, ["jsonl", name]).logging.backends == ("jsonl", name)
    (literal,) = typing.get_args(typing.get_type_hints(LoggingConfig)["backends"])[:1]
    assert typing.get_args(literal) == BACKENDS == ("jsonl", *TRACKERS)


@pytest.mark.parametrize("name", TRACKERS)
def test_a_missing_package_warns_once_or_refuses(name: str, tiny_synth: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cls = tracking.writer_class(name)
    monkeypatch.setitem(sys.modules, cls.package, None)  # import fails, find_spec finds nothing
    monkeypatch.setattr(tracking, "_WARNED", [])
    cfg = _cfg(tiny_synth, ["jsonl", name])
    if cls.if_missing == "warn":  # tensorboard: one warning a process, no writer, the run goes on
        assert tracking.tracking_hooks(cfg, RunWriter(tmp_path, cfg)) == []
        assert tracking.tracking_hooks(cfg, RunWriter(tmp_path, cfg)) == []
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "warning" in err[0] and f"pip install 'aakit[{cls.extra}]'" in err[0]
    else:  # wandb, mlflow: refused before anything is trained
        with pytest.raises(AakitError, match=rf"lists {name} but the {cls.package} package is not installed: "
                                             rf"pip install 'aakit\[{cls.extra}\]'"):
            tracking.require_backends(cfg)
        assert capsys.readouterr().err == ""


def _installed() -> list[str]:
    return [n for n in TRACKERS if tracking.available(n)]


@pytest.fixture(scope="module")
def every_tracker(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """One tiny run with every installed tracker, each writer's ``write`` calls recorded (W&B offline,
    MLflow in the run directory's file store): (run, name -> [(step, scalars)])."""
    from aakit.engine.train import train

    home = tmp_path_factory.mktemp("trackers")
    calls: dict[str, list[tuple[int, dict[str, float]]]] = {n: [] for n in _installed()}
    with pytest.MonkeyPatch.context() as m:
        m.setenv("WANDB_MODE", "offline")
        for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
            m.setenv(var, str(home / "wandb-home"))
        for var in ("WANDB_API_KEY", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
            m.delenv(var, raising=False)
        for name in calls:
            cls = tracking.writer_class(name)

            def write(self: TrackerWriter, scalars: dict[str, float], step: int, _orig: Any = cls.write,
                      _name: str = name) -> None:
                calls[_name].append((step, dict(scalars)))
                _orig(self, scalars, step)

            m.setattr(cls, "write", write)
        run = train(_cfg(tiny_synth, ["jsonl", *calls], **{"train.log_every": 3}), results=home / "results",
                    progress=False)
    yield run, calls
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()


def _hook_records(calls: list[tuple[int, dict[str, float]]]) -> list[tuple[int, dict[str, float]]]:
    """The records the hook handed over (TensorBoard also writes the final metrics as scalars)."""
    out = [(step, {k: v for k, v in d.items() if not k.startswith("final/")}) for step, d in calls]
    return [(step, d) for step, d in out if d]


@pytest.mark.parametrize("name", TRACKERS)
def test_every_writer_receives_the_records_of_metrics_jsonl(name: str, every_tracker: tuple[Path, dict[str, Any]]) -> None:
    run, calls = every_tracker
    if name not in calls:
        pytest.skip(f"{name} is not installed")
    got: dict[str, list[tuple[int, float]]] = {}
    for step, scalars in _hook_records(calls[name]):
        for tag, value in scalars.items():
            got.setdefault(tag, []).append((step, value))
    want = expected_scalars(run)
    assert [s for s, _ in want["train/learning_rate"]] == [3, 6, 8]  # every 3 steps and the last
    assert got == want
    assert all(_hook_records(c) == _hook_records(calls[name]) for c in calls.values())  # the same records, in order
