"""The shipped presets by name, from any folder (aakit.presets; issue 18)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aakit import presets
from aakit.config import ConfigError, load_config
from aakit.config import copy_preset
from aakit.presets import PresetError, presets_root, resolve_config
from conftest import REPO

EXP = REPO / "experiments"


@pytest.fixture()
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, away from the repository."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_source_checkout_reads_the_repository_copy() -> None:
    assert presets_root() == EXP  # no aakit/_shipped in a source checkout: one copy, experiments/
    assert {"synthetic/full", "voc/full", "grids/table1", "grids/voc/table1", "searches/voc"} <= set(presets.preset_names())


@pytest.mark.parametrize("name,rel", [
    ("synthetic/full", "synthetic/full.yaml"),
    ("voc/full.yaml", "voc/full.yaml"),
    ("grids/voc/table1", "grids/voc/table1.yaml"),
    ("grids/table1.yaml", "grids/table1.yaml"),
    ("experiments/synthetic/full.yaml", "synthetic/full.yaml"),
    ("experiments/synthetic/cls.yaml", "synthetic/cls.yaml"),  # model.pretrained of synthetic/base.yaml
    ("./experiments/synthetic/schedules/demo_cls.yaml", "synthetic/schedules/demo_cls.yaml"),
])
def test_a_name_resolves_to_the_shipped_preset(elsewhere: Path, name: str, rel: str) -> None:
    assert resolve_config(name) == EXP / rel


def test_an_existing_path_wins_over_a_preset(elsewhere: Path) -> None:
    (elsewhere / "voc").mkdir()
    (elsewhere / "voc" / "full.yaml").write_text("name: mine\n")
    assert resolve_config("voc/full.yaml") == Path("voc/full.yaml")
    assert load_config("voc/full.yaml").name == "mine"
    assert load_config("voc/full").name == "voc-full"  # no such local file: the preset


@pytest.mark.parametrize("name", ["voc/ful", "nope", "../experiments/voc/full", "/no/such/voc/full.yaml", "synthetic"])
def test_what_is_not_a_preset_stays_a_missing_path(elsewhere: Path, name: str) -> None:
    assert resolve_config(name) == Path(name)
    with pytest.raises(ConfigError, match="config file not found") as info:
        load_config(name)
    assert "\n" not in str(info.value)


def test_a_bad_name_says_what_is_near(elsewhere: Path) -> None:
    with pytest.raises(ConfigError, match=r"voc/ful: config file not found \(nor a shipped preset: did you mean voc/full\?"):
        load_config("voc/ful")
    with pytest.raises(PresetError, match=r"synthetic/fulll: no such shipped preset \(did you mean synthetic/full\?"):
        copy_preset("synthetic/fulll", elsewhere)


def test_a_users_file_inherits_from_a_preset(elsewhere: Path) -> None:
    mine = elsewhere / "cfgs" / "mine.yaml"
    mine.parent.mkdir()
    mine.write_text("_base_: voc/full\nname: mine\nloss:\n  gamma: 1.5\n")
    cfg, ref = load_config(mine), load_config("voc/full")
    assert (cfg.name, cfg.loss.gamma, ref.loss.gamma) == ("mine", 1.5, 2.0)
    assert cfg.to_dict() | {"name": "x", "loss": {}} == ref.to_dict() | {"name": "x", "loss": {}}
    mine.write_text("_base_: [experiments/synthetic/full.yaml, missing.yaml]\n")
    with pytest.raises(ConfigError, match=r"cfgs/missing\.yaml: config file not found"):
        load_config(mine)


def test_a_preset_inherits_from_a_users_file_of_its_name_only_beside_it(elsewhere: Path) -> None:
    """A preset's own _base_ (base.yaml) is its neighbour: a base.yaml in the working directory is ignored."""
    (elsewhere / "base.yaml").write_text("name: hijack\ntrain:\n  epochs: 99\n")
    assert load_config("synthetic/full").train.epochs == 3


def test_a_copied_config_is_the_preset_flattened(elsewhere: Path, tiny_synth: Path) -> None:
    out = copy_preset("synthetic/full.yaml", elsewhere / "mine")
    text = out.read_text()
    assert out == elsewhere / "mine" / "full.yaml" and "_base_" not in yaml.safe_load(text)
    assert "pretrained: experiments/synthetic/cls.yaml" in text  # the string of the run's identity, kept
    over = {"data.root": str(tiny_synth)}
    assert load_config(out, over).hash() == load_config("synthetic/full", over).hash()
    with pytest.raises(PresetError, match="already exists"):
        copy_preset("synthetic/full", elsewhere / "mine")
    assert copy_preset("synthetic/full", elsewhere / "mine", force=True) == out


def test_a_copied_grid_names_its_base_by_preset_name(elsewhere: Path) -> None:
    from aakit.experiment.grid import load_grid

    out = copy_preset("grids/voc/table1", elsewhere)
    assert yaml.safe_load(out.read_text())["base"] == "voc/full.yaml"
    assert out.read_text().startswith("# Table 1:")  # the comments kept
    grid, ref = load_grid(out), load_grid(EXP / "grids/voc/table1.yaml")
    assert [p.config.hash() for p in grid.points] == [p.config.hash() for p in ref.points]


def test_report_and_demo_read_the_presets_root(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aakit.engine import demo
    from aakit.experiment.published import default_published_path

    try:  # moving from report to results (issue 13)
        from aakit.experiment.results import default_grids_dir
    except ImportError:
        from aakit.experiment.report import default_grids_dir  # type: ignore[attr-defined,no-redef]

    assert default_grids_dir() == EXP / "grids"
    assert default_published_path(elsewhere / "results") == REPO / "results" / "published.csv"
    seen = []

    def fake_train(cfg, *, results, name, command):  # noqa: ANN001, ANN202
        seen.append(cfg)
        return results / name

    monkeypatch.setattr("aakit.data.synth.is_generated", lambda root, **options: True)
    monkeypatch.setattr("aakit.engine.train.train", fake_train)
    demo.run_demo(results=Path("results"), data=Path("data/synth"), echo=lambda s: None)
    assert [c.name for c in seen] == ["demo-synth-baseline", "demo-synth-full"]
    pre = seen[0].model.pretrained
    assert pre == "experiments/synthetic/schedules/demo_cls.yaml"  # as written: no install path in the hash
    assert resolve_config(pre) == EXP / "synthetic/schedules/demo_cls.yaml"


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's aakit, whatever the venv's install
    return subprocess.run([sys.executable, "-m", "aakit.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_version_ls_copy_and_bad_names(elsewhere: Path) -> None:
    p = _cli(elsewhere, "--version")
    assert (p.returncode, p.stdout.strip()) == (0, "aakit 0.1.0")
    p = _cli(elsewhere, "configs", "ls")
    assert p.returncode == 0 and f"presets in {EXP}" in p.stdout
    assert any(line.split()[:1] == ["voc/full"] for line in p.stdout.splitlines())
    p = _cli(elsewhere, "configs", "copy", "voc/full.yaml", "edit")
    assert p.returncode == 0 and (elsewhere / "edit" / "full.yaml").is_file()
    for argv, says in (
        (["configs", "copy", "voc/nope", "edit"], "voc/nope: no such shipped preset"),
        (["configs", "copy", "voc/full", "edit"], "edit/full.yaml: already exists"),
        (["train", "synthetic/nope"], "synthetic/nope: config file not found (nor a shipped preset"),
        (["grid", "grids/nope", "--dry-run"], "grids/nope: grid file not found"),
    ):
        p = _cli(elsewhere, *argv)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and says in p.stderr, (argv, p.stderr)
    assert sorted(x.name for x in elsewhere.iterdir()) == ["edit"]


def test_the_resolver_is_stdlib_only() -> None:
    """aakit.config imports it: it must pull in neither YAML nor torch nor the CLI."""
    code = "import sys, aakit.presets\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('yaml', 'torch', 'typer')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_preset_description_cites_an_issue_number() -> None:
    """Issue 33: a user of `aakit configs ls` cannot look up "issue 17"; the docs are named instead."""
    import re

    from aakit.presets import list_presets

    cited = [(n, d) for n, d in list_presets() if re.search(r"\bissues? \d", d)]
    assert cited == []
