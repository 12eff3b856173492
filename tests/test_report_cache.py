"""What the report reads of each run is kept (in memory, and in results/.cache for the CLI),
keyed by the run's files and the code that reads them: a changed file is read afresh."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_report import setup  # noqa: E402

import aakit.runs  # noqa: E402
from aakit.experiment import results as RS  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_memory():
    RS.forget_runs()
    yield
    RS.forget_runs()


def _age(results: Path, seconds: float = 60.0) -> None:
    """Date every run file back (a file written this very moment is never cached)."""
    when = os.stat(results).st_mtime - seconds
    for f in (results / "runs").rglob("*"):
        if f.is_file():
            os.utime(f, (when, when))


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run directories whose config.yaml was parsed."""
    said: list[str] = []
    real = aakit.runs.read_config

    def counting(path: Path):
        said.append(Path(path).parent.name)
        return real(path)

    monkeypatch.setattr(aakit.runs, "read_config", counting)
    return said


def _summary(results: Path) -> tuple[Path, dict]:
    run = sorted((results / "runs").iterdir())[0]
    return run, json.loads((run / "summary.json").read_text())


def _val(index: RS.ResultsIndex, run: Path) -> float | None:
    return next(r for rs in index.runs.values() for r in rs if r.path == run).miou("val")


def test_a_second_process_reads_no_config_of_an_unchanged_run(tmp_path: Path, parsed: list[str]) -> None:
    results, _ = setup(tmp_path)
    _age(results)
    cache = tmp_path / "cache"
    first = RS.read_runs(results, cache)
    n = first[2]
    assert len(parsed) == n and (cache / RS.CACHE_FILE).is_file()
    RS.forget_runs()  # as a new process would: only the file is left
    parsed.clear()
    again = RS.read_runs(results, cache)
    assert first[1] and sorted(parsed) == sorted(d.path.name for d in first[1])  # a run left out: always read afresh
    assert {h: [(r.path, dict(r.summary), dict(r.config)) for r in rs] for h, rs in again[0].items()} == \
           {h: [(r.path, dict(r.summary), dict(r.config)) for r in rs] for h, rs in first[0].items()}
    assert [(d.path, d.reason) for d in again[1]] == [(d.path, d.reason) for d in first[1]]
    assert again[2] == n


def test_a_changed_summary_is_read_afresh(tmp_path: Path, parsed: list[str]) -> None:
    results, _ = setup(tmp_path)
    _age(results)
    cache = tmp_path / "cache"
    run, summary = _summary(results)
    index = RS.load_results(results, cache=cache)
    before = _val(index, run)
    finished = {r.path.name for rs in index.runs.values() for r in rs}
    for memory in (True, False):  # the same process, and a new one (the cache file only)
        if not memory:
            RS.forget_runs()
        parsed.clear()
        summary["metrics"]["val"]["miou"] = summary["metrics"]["val"]["miou"] / 2
        (run / "summary.json").write_text(json.dumps(summary))  # the same size or not: its mtime moved
        after = _val(RS.load_results(results, cache=cache), run)
        assert after == pytest.approx(100 * summary["metrics"]["val"]["miou"]) and after != before
        assert [p for p in parsed if p in finished] == [run.name]  # of the finished runs, that one only
        before = after
        _age(results)


def test_a_run_that_turned_unfinished_or_corrupt_leaves_the_cache(tmp_path: Path) -> None:
    results, _ = setup(tmp_path)
    _age(results)
    cache = tmp_path / "cache"
    RS.read_runs(results, cache)
    run, summary = _summary(results)
    (run / "summary.json").write_text(json.dumps(summary | {"status": "running"}))
    finished, dropped, _ = RS.read_runs(results, cache)
    assert any(d.path == run and "status 'running'" in d.reason for d in dropped)
    (run / "config.yaml").unlink()
    RS.forget_runs()
    finished, dropped, _ = RS.read_runs(results, cache)
    assert any(d.path == run and d.corrupt and "no config.yaml" in d.reason for d in dropped)
    assert all(r.path != run for rs in finished.values() for r in rs)
    assert run.name not in json.loads((cache / RS.CACHE_FILE).read_text())["runs"]


def test_a_run_removed_is_forgotten_and_a_run_written_just_now_is_not_cached(tmp_path: Path, parsed: list[str]) -> None:
    import shutil

    results, _ = setup(tmp_path)
    cache = tmp_path / "cache"
    RS.read_runs(results, cache)  # every file written a moment ago: nothing may be trusted to the cache
    assert not (cache / RS.CACHE_FILE).exists()
    parsed.clear()
    RS.read_runs(results, cache)
    assert len(parsed) == RS.read_runs(results)[2]  # all read again
    _age(results)
    RS.read_runs(results, cache)
    run, _ = _summary(results)
    shutil.rmtree(run)
    RS.read_runs(results, cache)
    kept = json.loads((cache / RS.CACHE_FILE).read_text())["runs"]
    assert run.name not in kept and kept


def test_a_cache_written_by_other_code_is_not_used(tmp_path: Path, parsed: list[str]) -> None:
    results, _ = setup(tmp_path)
    _age(results)
    cache = tmp_path / "cache"
    RS.read_runs(results, cache)
    data = json.loads((cache / RS.CACHE_FILE).read_text())
    run, _ = _summary(results)
    data["runs"][run.name]["summary"]["metrics"]["val"]["miou"] = 0.01  # what another reader made of it
    (cache / RS.CACHE_FILE).write_text(json.dumps(data | {"reader": "another aakit"}))
    RS.forget_runs()
    parsed.clear()
    index = RS.load_results(results, cache=cache)
    assert len(parsed) == index.seen and _val(index, run) != pytest.approx(1.0)
    (cache / RS.CACHE_FILE).write_text("{not json")  # damaged: ignored, rewritten
    RS.forget_runs()
    assert RS.load_results(results, cache=cache).seen == index.seen
    assert json.loads((cache / RS.CACHE_FILE).read_text())["reader"] == RS.reader_fingerprint()


def test_the_report_command_keeps_its_cache_in_results_and_the_api_writes_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli

    from aakit.experiment import report as R

    results, grids = setup(tmp_path)
    _age(results)
    R.cli_run(table=None, fmt="md", out=None, preset="synthetic", figures=False, results=results,
              echo=lambda s: None, grids_dir=grids)
    assert not (results / ".cache").exists()  # the API (and the tests on the committed runs) write nothing
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "grids").symlink_to(grids)
    code, out, _ = run_cli(["report", "--results", str(results), "--no-cache"], monkeypatch, capsys)
    assert code == 0 and not (results / ".cache").exists()
    code, again, _ = run_cli(["report", "--results", str(results)], monkeypatch, capsys)
    assert code == 0 and (results / ".cache" / RS.CACHE_FILE).is_file() and again == out
    index = RS.load_results(results)
    assert ".cache" not in {r.path.name for rs in index.runs.values() for r in rs} | {d.path.name for d in index.dropped}
