"""Optuna journal files left torn by a full disk or a power cut (issue 27): a last record cut short
is recovered by the next grid or search (a copy of the file kept, no finished trial lost), read-only
commands warn without touching the file, and a bad line before the last is refused."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_cli  # noqa: E402
from experiment_fakes import calls, fake_train  # noqa: E402

from aakit.errors import AakitError  # noqa: E402
from aakit.experiment import grid as G  # noqa: E402
from aakit.experiment import journal as J  # noqa: E402
from aakit.experiment import search as S  # noqa: E402
from aakit.experiment import studies  # noqa: E402

BASE = "preset: synthetic\nmodel: {backbone: small, num_classes: 11}\ntrain: {epochs: 2}\n"
GRID = "name: g\nbase: base.yaml\nseeds: {seeds}\ntable: 4\nrow: 'gamma={{loss.gamma}}'\naxes: {{loss.gamma: [0, 2]}}\n"
SEARCH = """\
name: s
base: base.yaml
params:
  loss.gamma: {type: float, low: 0.0, high: 5.0}
sampler: {type: random, seed: 0}
pruner: {type: none}
"""
QUIET = {"progress": False, "log": lambda m: None}


def write_grid(tmp_path: Path, seeds: str = "[0, 1]") -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    path = tmp_path / "g.yaml"
    path.write_text(GRID.format(seeds=seeds))
    return path


def grid_journal(results: Path) -> Path:
    return studies.default_storage_path(results, "grid", "g")


def tear(journal: Path) -> tuple[bytes, bytes]:
    """Append half of a copy of the journal's last record, without a newline (a write cut short).

    Returns (the file before, the file after)."""
    before = journal.read_bytes()
    last = before.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    journal.write_bytes(before + last[: len(last) // 2])
    return before, journal.read_bytes()


def complete_trials(results: Path, kind: str, name: str) -> list[int]:
    st = studies.open_storage(None, studies.default_storage_path(results, kind, name))
    study = optuna.load_study(study_name=f"{kind}-{name}", storage=st)
    return [t.number for t in study.get_trials() if t.state == TrialState.COMPLETE]


def backups(journal: Path) -> list[Path]:
    return sorted(journal.parent.glob(journal.name + ".torn-*"))


# ----------------------------------------------------------------------------- inspecting
def test_inspect_finds_a_torn_last_line_and_refuses_a_bad_middle_one(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    rec = b'{"op_code":0,"worker_id":"w"}'
    path.write_bytes(rec + b"\n" + rec + b"\n")
    assert J.inspect_journal(path) is None
    path.write_bytes(rec + b"\n" + rec[:9])
    torn = J.inspect_journal(path)
    assert torn is not None and (torn.line, torn.offset, torn.kind, torn.keep) == (2, len(rec) + 1, "torn", b"")
    path.write_bytes(rec + b"\n" + rec)  # a whole record, only its newline missing
    assert J.inspect_journal(path).keep == rec + b"\n"  # type: ignore[union-attr]
    path.write_bytes(rec + b"\n" + rec[:9] + rec + b"\n")  # a whole record appended to a torn one
    torn = J.inspect_journal(path)
    assert torn is not None and (torn.line, torn.kind, torn.keep) == (2, "glued", rec + b"\n")
    path.write_bytes(rec + b"\n" + rec[:9] + b"\n")  # a last line that is not JSON, newline or not
    assert J.inspect_journal(path).line == 2  # type: ignore[union-attr]
    path.write_bytes(rec + b"\n" + rec[:9] + b"\n" + rec + b"\n")
    with pytest.raises(J.JournalError, match=r"j\.log: line 2 ") as info:
        J.inspect_journal(path)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- grids
def test_the_next_grid_recovers_a_torn_journal_without_losing_a_trial(tmp_path: Path) -> None:
    results = tmp_path / "results"
    G.run_grid(write_grid(tmp_path), results=results, train=fake_train, **QUIET)
    journal = grid_journal(results)
    done = complete_trials(results, "grid", "g")
    assert len(done) == 4
    before, torn = tear(journal)
    lines = before.count(b"\n")
    said: list[str] = []
    out = G.run_grid(write_grid(tmp_path, "[0, 1, 2]"), results=results, train=fake_train, progress=False,
                     log=said.append)
    assert out.counts()["done"] == 6 and len(out.ran) == 2
    recovered = [m for m in said if "recovered" in m]
    assert len(recovered) == 1 and str(journal) in recovered[0] and f"line {lines + 1}" in recovered[0]
    (copy,) = backups(journal)
    assert copy.read_bytes() == torn and str(copy) in recovered[0]
    assert journal.read_bytes().startswith(before)  # the records before the torn one, untouched
    assert set(done) <= set(complete_trials(results, "grid", "g"))
    assert len(complete_trials(results, "grid", "g")) == 6


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    results = tmp_path / "results"
    G.run_grid(write_grid(tmp_path), results=results, train=fake_train, **QUIET)
    journal = grid_journal(results)
    journal.write_bytes(journal.read_bytes().rstrip(b"\n"))  # the last trial's COMPLETE, newline lost
    said: list[str] = []
    G.run_grid(write_grid(tmp_path, "[0, 1, 2]"), results=results, train=fake_train, progress=False,
               log=said.append)
    assert any("recovered" in m and "newline" in m for m in said)
    assert len(complete_trials(results, "grid", "g")) == 6  # the 4 before and the 2 new ones


def test_a_record_appended_to_a_torn_one_is_kept(tmp_path: Path) -> None:
    """What an append by an older aakit left: the torn record and a whole one on one last line."""
    results = tmp_path / "results"
    G.run_grid(write_grid(tmp_path), results=results, train=fake_train, **QUIET)
    journal = grid_journal(results)
    data = journal.read_bytes()
    head, last = data.rstrip(b"\n").rsplit(b"\n", 1)  # the last trial's COMPLETE, glued after a torn record
    journal.write_bytes(head + b"\n" + last[:25] + last + b"\n")
    said: list[str] = []
    G.run_grid(write_grid(tmp_path), results=results, train=fake_train, progress=False, log=said.append)
    assert any("recovered" in m and "kept the whole one" in m for m in said)
    assert journal.read_bytes() == data and len(complete_trials(results, "grid", "g")) == 4


def test_grid_dry_run_and_read_only_commands_warn_and_leave_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    path = write_grid(tmp_path)
    G.run_grid(path, results=results, train=fake_train, **QUIET)
    journal = grid_journal(results)
    before, torn = tear(journal)
    line = f"line {len(before.splitlines()) + 1}"
    for argv in (["grid", str(path), "--dry-run"], ["runs", "ls"], ["report"]):
        code, out, err = run_cli([*argv, "--results", str(results)], monkeypatch, capsys)
        warned = [line for line in err.splitlines() if str(journal) in line]
        assert len(warned) == 1 and "torn" in warned[0] and line in warned[0], (argv, err)
        assert journal.read_bytes() == torn and not backups(journal), argv
    code, out, err = run_cli(["runs", "ls", "--json", "--results", str(results)], monkeypatch, capsys)
    assert code == 0 and len(json.loads(out)) == 4  # stdout stays JSON: the warning is on stderr


def test_a_bad_line_in_the_middle_is_refused_in_one_line_and_nothing_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    path = write_grid(tmp_path)
    G.run_grid(path, results=results, train=fake_train, **QUIET)
    journal = grid_journal(results)
    lines = journal.read_bytes().split(b"\n")
    lines[2] = lines[2][:10]
    journal.write_bytes(b"\n".join(lines))
    broken = journal.read_bytes()
    with pytest.raises(AakitError, match=r"grid-g\.log: line 3 "):
        G.run_grid(write_grid(tmp_path, "[0, 1, 2]"), results=results, train=fake_train, **QUIET)
    for argv in (["grid", str(path), "--dry-run"], ["grid", str(path), "--status"]):
        code, out, err = run_cli([*argv, "--results", str(results)], monkeypatch, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "line 3" in err and str(journal) in err, err
    code, out, err = run_cli(["runs", "ls", "--results", str(results)], monkeypatch, capsys)
    assert code == 0 and "line 3" in err  # a read-only command that needs no journal warns
    assert journal.read_bytes() == broken and not backups(journal)
    assert len(calls(results)) == 4


def test_a_record_torn_while_the_storage_is_open_is_repaired_before_the_next_append(tmp_path: Path) -> None:
    journal = tmp_path / "studies" / "x.log"
    said: list[str] = []
    st = studies.open_storage(None, journal, say=said.append)
    study = studies.get_or_create_study(st, "x", direction="maximize")
    study.tell(study.ask(), 1.0)
    _, torn = tear(journal)  # another process died in the middle of a write
    study.tell(study.ask(), 2.0)
    assert any("recovered" in m for m in said) and backups(journal)[0].read_bytes() == torn
    fresh = optuna.load_study(study_name="x", storage=studies.open_storage(None, journal))
    assert [t.value for t in fresh.get_trials()] == [1.0, 2.0]


# ----------------------------------------------------------------------------- searches
def test_a_search_recovers_its_torn_journal_and_show_only_warns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    path = tmp_path / "s.yaml"
    path.write_text(SEARCH)
    results = tmp_path / "results"
    S.run_search(path, trials=2, results=results, train=fake_train, **QUIET)
    journal = studies.default_storage_path(results, "search", "s")
    _, torn = tear(journal)
    code, out, err = run_cli(["search", str(path), "--show", "--results", str(results)], monkeypatch, capsys)
    assert code == 0 and "torn" in err and str(journal) in err and "search-s" in out
    assert journal.read_bytes() == torn and not backups(journal)
    said: list[str] = []
    S.run_search(path, trials=3, results=results, train=fake_train, progress=False, log=said.append)
    assert any("recovered" in m and str(journal) in m for m in said)
    assert backups(journal)[0].read_bytes() == torn
    assert complete_trials(results, "search", "s") == [0, 1, 2]


def test_the_tui_shows_a_torn_journal_and_its_trials_and_changes_nothing(tmp_path: Path) -> None:
    """The dashboard read a torn journal in silence; now each of its studies carries a warning."""
    from aakit.tui.data import StudyReader

    results = tmp_path / "results"
    G.run_grid(write_grid(tmp_path), results=results, train=fake_train, **QUIET)
    journal = grid_journal(results)
    _, torn = tear(journal)
    (study,) = StudyReader(results).read()
    assert study.error is None and study.warning and "torn last record" in study.warning
    assert sum(t.state == "COMPLETE" for t in study.trials) == 4  # gamma 0, 2 x seeds 0, 1
    assert journal.read_bytes() == torn and sorted(p.name for p in journal.parent.iterdir()) == [journal.name]
    journal.write_bytes(b"not json\n" + torn)
    (bad,) = StudyReader(results).read()
    assert bad.error and "line 1" in bad.error
