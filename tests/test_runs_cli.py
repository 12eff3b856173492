"""Run management on the command line (issue 16 part 3): aakit runs ls|show|diff|tag, and
aakit train --print-config / --set-file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_cli, tiny_overrides

BASE = REPO / "experiments/synthetic/baseline.yaml"


def _aakit(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """Run the real entry point in process: (exit code, stdout, stderr)."""
    return run_cli(argv, monkeypatch, capsys)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, tiny_synth: Path) -> tuple[Path, Path, Path]:
    """A results root with two finished 1-epoch runs that differ in seed and lambda_aa... and name."""
    from aakit.config import load_config
    from aakit.engine.train import train

    results = tmp_path_factory.mktemp("runs-cli") / "results"
    over = tiny_overrides(tiny_synth) | {"train.epochs": 1, "train.cls_warmup_epochs": 0, "eval.save_examples": 0,
                                         "logging.backends": ["jsonl"]}
    a = train(load_config(BASE, over | {"name": "alpha"}), results=results, progress=False)
    b = train(load_config(BASE, over | {"name": "beta", "train.seed": 1}), results=results, progress=False)
    return results, a, b


def test_runs_ls_table_json_filters_and_sort(two_runs: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    results, a, b = two_runs
    code, out, _ = _aakit(["runs", "ls", "--results", str(results)], capsys, monkeypatch)
    assert code == 0 and a.name in out and b.name in out and "2 run(s)" in out
    assert out.splitlines()[0].split()[:3] == ["run", "status", "done"]
    code, out, _ = _aakit(["runs", "ls", "--results", str(results), "--json", "--sort", "val_miou"], capsys, monkeypatch)
    rows = json.loads(out)
    vals = [r["metrics"]["val_miou"] for r in rows]
    assert code == 0 and vals == sorted(vals, reverse=True) and {r["status"] for r in rows} == {"finished"}
    code, out, _ = _aakit(["runs", "ls", "--results", str(results), "--json", "--where", "train.seed=1"], capsys, monkeypatch)
    assert [r["name"] for r in json.loads(out)] == [b.name]
    code, out, _ = _aakit(["runs", "ls", "--results", str(results), "--json", "--status", "running"], capsys, monkeypatch)
    assert json.loads(out) == []


def test_runs_tag_note_and_filter_by_tag(two_runs: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    results, a, b = two_runs
    code, out, _ = _aakit(["runs", "tag", a.name, "keep", "paper", "--note", "the baseline", "--results", str(results)],
                          capsys, monkeypatch)
    assert code == 0 and "keep, paper" in out
    _aakit(["runs", "tag", a.name, "keep", "--results", str(results)], capsys, monkeypatch)  # no duplicate
    assert json.loads((a / "tags.json").read_text()) == {"tags": ["keep", "paper"], "note": "the baseline"}
    code, out, _ = _aakit(["runs", "ls", "--results", str(results), "--tag", "keep", "--json"], capsys, monkeypatch)
    assert [r["name"] for r in json.loads(out)] == [a.name] and json.loads(out)[0]["note"] == "the baseline"
    _aakit(["runs", "tag", a.name, "paper", "--remove", "--results", str(results)], capsys, monkeypatch)
    assert json.loads((a / "tags.json").read_text())["tags"] == ["keep"]
    assert not list(a.glob(".tags.json.*.tmp"))  # written atomically, no temporary left
    code, out, _ = _aakit(["runs", "show", a.name[:7], "--results", str(results)], capsys, monkeypatch)  # a prefix
    assert code == 0 and f"run       {a.name}" in out and "keep" in out and "the baseline" in out
    assert "final     val " in out and "epoch 1: val mIoU" in out


def test_runs_diff_names_the_keys_that_differ_and_both_metrics(two_runs: tuple[Path, Path, Path],
                                                               capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from aakit.runlist import diff_runs

    results, a, b = two_runs
    d = diff_runs(a, b)
    assert [k for k, _, _ in d["config"]] == ["name", "train.seed"]
    assert ("train.seed", 0, 1) in d["config"]
    assert "val_miou" in [m for m, _, _ in d["metrics"]]
    code, out, _ = _aakit(["runs", "diff", str(a), b.name, "--results", str(results)], capsys, monkeypatch)
    lines = out.splitlines()
    assert code == 0 and a.name in lines[0] and b.name in lines[0]
    assert any(line.split() == ["train.seed", "0", "1"] for line in lines)
    summary = json.loads((a / "summary.json").read_text())
    val = next(line for line in lines if line.startswith("val_miou"))
    assert val.split()[1] == f"{100 * summary['metrics']['val']['miou']:.1f}"


def test_runs_ls_lists_the_committed_runs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = _aakit(["runs", "ls", "--results", str(REPO / "results"), "--status", "finished",
                           "--where", "loss.affinity=aa", "--sort", "val_miou", "--limit", "0"], capsys, monkeypatch)
    names = [line.split()[0] for line in out.splitlines()[1:-1]]
    assert code == 0 and len(names) >= 10 and any(n.startswith("synthetic-table1-CLS+CE+AA-") for n in names)
    assert not any("CLS+CE-s" in n for n in names)  # affinity none: filtered out


def test_print_config_and_set_file(tiny_synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from aakit.config import from_dict

    schedule = tmp_path / "schedule.yaml"
    schedule.write_text("train.epochs: 3\ntrain:\n  batch_size: 2\nloss.dilations: [2, 4]\noptim.lr: 0.5\n")
    results = tmp_path / "results"
    code, out, err = _aakit(["train", str(BASE), "--set-file", str(schedule), "--set", "optim.lr=0.25",
                             "--set", f"data.root={tiny_synth}", "--results", str(results), "--print-config"],
                            capsys, monkeypatch)
    assert code == 0, err
    cfg = from_dict(yaml.safe_load(out))
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.loss.dilations) == (3, 2, (2, 4))
    assert cfg.optim.lr == 0.25  # --set comes after --set-file
    assert cfg.data.root == str(tiny_synth) and not results.exists()  # nothing trained, nothing written


def test_runs_ls_pages_the_committed_runs_and_where_suggests_the_near_key(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 33: `runs ls` printed all 390 runs; `--where` had no did-you-mean."""
    results = str(REPO / "results")
    code, out, _ = _aakit(["runs", "ls", "--results", results, "--limit", "0"], capsys, monkeypatch)
    total = int(out.strip().splitlines()[-1].split()[0])  # "N run(s)"
    assert code == 0 and "more of" not in out and total > 300
    code, out, _ = _aakit(["runs", "ls", "--results", results, "--limit", "5"], capsys, monkeypatch)
    lines = out.strip().splitlines()
    assert code == 0 and lines[-1].startswith(f"... {total - 5} more of {total} runs not shown") and len(lines) < 12
    code, _, err = _aakit(["runs", "ls", "--results", results, "--where", "loss.lamda_aa=0.1"], capsys, monkeypatch)
    assert code == 2 and "did you mean loss.lambda_aa?" in err and len(err.strip().splitlines()) == 1


def test_where_and_diff_read_a_backbone_setting_in_either_spelling(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 29: a run stored before the backbone registry says ``model.small_width``, one stored
    after ``model.backbone_args.width``; ``--where`` finds both by either key, ``runs diff`` sees
    no difference where they compute the same."""
    from aakit.config import load_run_config, save_config
    from aakit.runlist import diff_runs

    old = next(p for p in sorted((REPO / "results" / "runs").glob("synthetic-table1-*")) if (p / "summary.json").exists())
    stored = yaml.safe_load((old / "config.yaml").read_text())
    assert stored["model"]["small_width"] == 32 and "backbone_args" not in stored["model"]
    new = tmp_path / "runs" / "new-run"
    new.mkdir(parents=True)
    save_config(load_run_config(old / "config.yaml"), new / "config.yaml")
    (new / "summary.json").write_text((old / "summary.json").read_text())
    assert "backbone_args" in yaml.safe_load((new / "config.yaml").read_text())["model"]
    diff = dict((k, (a, b)) for k, a, b in diff_runs(old, new)["config"])
    assert not any(k.startswith("model.") for k in diff), diff
    (tmp_path / "runs" / "old-run").symlink_to(old)
    for key in ("model.small_width", "model.backbone_args.width"):
        code, out, _ = _aakit(["runs", "ls", "--results", str(tmp_path), "--where", f"{key}=32", "--limit", "0"],
                              capsys, monkeypatch)
        assert code == 0 and "old-run" in out and "new-run" in out, (key, out)
        code, out, _ = _aakit(["runs", "ls", "--results", str(tmp_path), "--where", f"{key}=8"], capsys, monkeypatch)
        assert code == 0 and "old-run" not in out and "new-run" not in out, (key, out)
