"""Issue 16, CLI niceties: on/off flags as --x/--no-x, shell completion, the list syntax of
--set, and report --figures --data. Each case runs the real entry point (aakit.cli.main)."""
from __future__ import annotations

from pathlib import Path

import pytest
import typer

from aakit import cli
from conftest import run_cli


def _commands(cmd, path: str = "aakit"):  # noqa: ANN001, ANN202
    """Every command of the app (groups included) with its path."""
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, f"{path} {name}")


# ----------------------------------------------------------------------------- 1. flags
def test_every_on_off_flag_has_its_no_form() -> None:
    """Every boolean option of every command is --x/--no-x (only the eager --version and the
    help and completion options, which act at once, are not)."""
    actions = {"--version", "--help", "--install-completion", "--show-completion"}
    seen = 0
    for path, cmd in _commands(typer.main.get_command(cli.app)):
        for p in cmd.params:
            if not getattr(p, "is_flag", False) or set(p.opts) & actions:
                continue
            seen += 1
            name = p.opts[0].removeprefix("--")
            assert p.secondary_opts == [f"--no-{name}"], f"{path} {p.opts}"
    assert seen >= 15


@pytest.mark.parametrize("argv", [["eval", "-h"], ["-h"], ["report", "-h"], ["data", "check", "-h"]])
def test_help_shows_no_form_and_no_bool_type(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = run_cli(argv, monkeypatch, capsys)
    assert code == 0
    assert "<bool>" not in out
    assert "--no-" in out


def test_no_form_turns_a_flag_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "runs").mkdir()
    code, out, _ = run_cli(["runs", "ls", "--results", str(tmp_path), "--json"], monkeypatch, capsys)
    assert (code, out.strip()) == (0, "[]")
    code, out, _ = run_cli(["runs", "ls", "--results", str(tmp_path), "--json", "--no-json"], monkeypatch, capsys)
    assert code == 0 and "0 run(s)" in out


@pytest.mark.parametrize("argv,flag", [
    (["eval", "some-run", "--crf", "true"], "--crf"),
    (["eval", "--crf", "true", "some-run"], "--crf"),  # 'true' taken as RUN, 'some-run' left over
    (["eval", "some-run", "--crf=true"], "--crf"),
    (["runs", "ls", "--json", "false"], "--json"),
    (["eval", "some-run", "--no-crf=1"], "--no-crf"),
])
def test_a_value_given_to_a_flag_is_one_line_with_the_spelling(argv: list[str], flag: str,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(argv, monkeypatch, capsys)
    name = flag.removeprefix("--no-").removeprefix("--")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert f"{flag} is an on/off flag and takes no value: write --{name} or --no-{name}" in err
