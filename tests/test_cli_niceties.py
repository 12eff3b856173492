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


# ----------------------------------------------------------------------------- 2. completion
def test_completion_options_are_listed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = run_cli(["-h"], monkeypatch, capsys)
    assert code == 0 and "--install-completion" in out and "--show-completion" in out


def in_bash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Typer asks shellingham which shell runs aakit (the parent process): say bash, whatever
    runs the tests (under make it is sh, which Typer does not support)."""
    import shellingham

    monkeypatch.setattr(shellingham, "detect_shell", lambda *a, **k: ("bash", "/bin/bash"))


def test_show_completion_prints_the_bash_script(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    in_bash(monkeypatch)
    code, out, _ = run_cli(["--show-completion"], monkeypatch, capsys)
    assert code == 0
    assert "_AAKIT_COMPLETE=complete_bash" in out and "complete -o default -F _aakit_completion aakit" in out


@pytest.mark.parametrize("words,cword,want", [
    ("aakit ev", 1, {"eval"}),
    ("aakit runs ", 2, {"ls", "show", "diff", "tag"}),
    ("aakit eval RUN --cr", 3, {"--crf"}),
    ("aakit eval RUN --no-c", 3, {"--no-crf"}),
])
def test_bash_completion_through_the_entry_point(words: str, cword: int, want: set[str],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """What bash asks through the installed script (COMP_WORDS, _AAKIT_COMPLETE) gets the
    candidates from aakit's own main()."""
    monkeypatch.setenv("_AAKIT_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(cword))
    code, out, err = run_cli([], monkeypatch, capsys)
    assert code == 0, err
    assert set(out.split()) == want


def test_install_completion_writes_the_script_and_sources_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    in_bash(monkeypatch)
    code, out, err = run_cli(["--install-completion"], monkeypatch, capsys)
    assert code == 0, err
    script = tmp_path / ".bash_completions" / "aakit.sh"
    assert "_AAKIT_COMPLETE=complete_bash" in script.read_text()
    assert str(script.relative_to(tmp_path)) in (tmp_path / ".bashrc").read_text()


# ----------------------------------------------------------------------------- 3. list syntax
@pytest.mark.parametrize("item,key", [
    ("model.cam_scales=1.0,0.5", "model.cam_scales"),
    ("loss.dilations=4 8", "loss.dilations"),
    ("loss.dilations=[4,8", "loss.dilations"),  # unclosed: YAML reads a string
    ("loss.dilations=[a,b]", "loss.dilations"),  # a bad element
    ("data.scale_range=[0.7]", "data.scale_range"),  # a fixed-size list of the wrong size
    ("logging.backends=jsonl", "logging.backends"),
])
def test_a_malformed_list_shows_the_syntax_that_works(item: str, key: str, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import shlex

    code, out, err = run_cli(["train", "synthetic/full", "--print-config", "--set", item], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert f"{key} = " in err and "written in brackets: --set '" in err
    # the syntax shown, pasted back as a shell would split it, is accepted
    shown = shlex.split(err.split("written in brackets: ", 1)[1])
    assert shown[0] == "--set" and shown[1].startswith(f"{key}=[")
    code, out, err = run_cli(["train", "synthetic/full", "--print-config", *shown], monkeypatch, capsys)
    assert code == 0, err


@pytest.mark.parametrize("command", ["train", "grid", "search"])
def test_set_help_shows_a_list_that_works(command: str, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import shlex

    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = run_cli([command, "-h"], monkeypatch, capsys)
    assert code == 0
    line = next(line for line in out.splitlines() if "a list in brackets: --set '" in line)
    shown = shlex.split(line.split("a list in brackets: ", 1)[1].split(" (repeatable)")[0])
    code, out, err = run_cli(["train", "synthetic/full", "--print-config", *shown], monkeypatch, capsys)
    assert code == 0, err
    assert "dilations:\n  - 4\n  - 8\n  - 12\n" in out


def test_the_bracket_syntax_sets_the_list(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    code, out, err = run_cli(["train", "synthetic/full", "--print-config", "--set", "model.cam_scales=[1.0,0.5]",
                              "--set", "loss.dilations=[4, 8, 12]"], monkeypatch, capsys)
    assert code == 0, err
    cfg = yaml.safe_load(out)
    assert cfg["model"]["cam_scales"] == [1.0, 0.5] and cfg["loss"]["dilations"] == [4, 8, 12]


# ----------------------------------------------------------------------------- 4. report --figures --data
@pytest.fixture()
def moved_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """Runs whose data set moved: at their data.root only meta.json is left (same identity),
    the images and ground truth are in a copy elsewhere. Returns (results, old root, new root);
    the working directory holds the grids as experiments/grids (the report's default)."""
    import shutil

    from test_figures import setup

    results, grids, _ = setup(tmp_path)
    old, new = tmp_path / "data", tmp_path / "elsewhere" / "data"
    shutil.copytree(old, new)
    shutil.rmtree(old / "JPEGImages")
    shutil.rmtree(old / "SegmentationClass")
    work = tmp_path / "work"
    work.mkdir()
    (work / "experiments").symlink_to(grids.parent)
    monkeypatch.chdir(work)
    return results, old, new


def _report(results: Path, out: Path, extra: list[str], monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    argv = ["report", "--preset", "synthetic", "--format", "md", "--figures", "--out", str(out),
            "--results", str(results), *extra]
    return run_cli(argv, monkeypatch, capsys)


def _image_panels(png: Path) -> float:
    """How many of Figure 5's grey (128) example images are drawn, from the grey pixels' area
    (the fake data set's images are 128 grey, drawn one panel each, 2 rows)."""
    from aakit.experiment.figures import CELL_IN
    from test_figures import read_png

    grey = int((read_png(png)[..., :3] == 128).all(-1).sum())
    return grey / ((100 * CELL_IN) ** 2 * 0.75)


def test_figures_warn_once_where_images_were_looked_for(moved_data: tuple[Path, Path, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from aakit.experiment.figures import FIGURE5_FILE

    results, old, _ = moved_data
    code, out, err = _report(results, tmp_path / "out", [], monkeypatch, capsys)
    assert code == 0, err
    assert f"wrote {tmp_path / 'out' / 'figures' / FIGURE5_FILE}" in out
    warnings = [line for line in err.splitlines() if "Figure 5" in line]
    assert len(warnings) == 1
    assert "as missing: not found in " + str(old) in warnings[0] and "--data PATH" in warnings[0]
    assert _image_panels(tmp_path / "out" / "figures" / FIGURE5_FILE) < 0.1


def test_figures_data_draws_the_images(moved_data: tuple[Path, Path, Path], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from aakit.experiment.figures import FIGURE5_FILE

    results, _, new = moved_data
    code, out, err = _report(results, tmp_path / "out", ["--data", str(new)], monkeypatch, capsys)
    assert code == 0, err
    assert "Figure 5" not in err
    assert _image_panels(tmp_path / "out" / "figures" / FIGURE5_FILE) == pytest.approx(2, abs=0.1)  # (a), 2 rows


@pytest.mark.parametrize("extra,expect", [
    (["--data", "{new}"], "give --figures too"),  # --data without --figures
    (["--figures", "--data", "{missing}"], "directory not found"),
])
def test_report_data_refuses_bad_use(extra: list[str], expect: str, moved_data: tuple[Path, Path, Path],
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    results, _, new = moved_data
    extra = [a.format(new=new, missing=tmp_path / "nope") for a in extra]
    code, out, err = run_cli(["report", "--preset", "synthetic", "--results", str(results), *extra],
                             monkeypatch, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and expect in err and err.startswith("aakit: error: --data ")


@pytest.mark.parametrize("words,cword,expect,absent", [
    ("aakit train synthetic/f", 2, {"synthetic/full", "synthetic/full_supervision"}, {"voc/full"}),
    ("aakit grid grids/v2/t", 2, {"grids/v2/table1", "grids/v2/table4"}, {"synthetic/full"}),
    ("aakit search searches/", 2, {"searches/synthetic", "searches/voc"}, {"grids/table1"}),
    ("aakit train synthetic/full --set loss.lam", 4, {"loss.lambda_aa=", "loss.lambda_lr="}, {"loss.gamma="}),
])
def test_preset_names_and_set_keys_tab_complete(words: str, cword: int, expect: set[str], absent: set[str]) -> None:
    """Issue 33: bash completion (aakit --install-completion) offers preset names and --set keys."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "_AAKIT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    code = "import sys; from aakit.cli import main; sys.argv = ['aakit']; main()"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    got = set(out.split())
    assert expect <= got and not (absent & got), out
