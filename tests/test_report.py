"""The report: Tables 1-6 from runs made by the test, in every format, missing runs shown as missing."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from experiment_fakes import fake_train, write_run  # noqa: E402

from aakit.experiment import grid as G  # noqa: E402
from aakit.experiment import report as R  # noqa: E402
from aakit.experiment.published import VOC_CLASSES  # noqa: E402
from aakit.experiment.results import load_results  # noqa: E402
from aakit.experiment.tables import LONG_COLUMNS  # noqa: E402

FULL = "{loss.affinity: aa, loss.label_reassign: true}"
T1 = f"""\
name: r-table1
base: ../base.yaml
preset: synthetic
seeds: [0, 1, 2]
rows:
  - {{table: 1, row: CLS+CE, set: {{loss.affinity: none, loss.label_reassign: false}}}}
  - {{table: 1, row: CLS+CE+AA, set: {{loss.affinity: aa, loss.label_reassign: false}}}}
  - {{table: 1, row: CLS+CE+AA+LR, set: {FULL}}}
  - {{table: 1, row: CLS+CE+AA+LR+rfpc, set: {FULL}, metric: val_rfpc}}
  - {{table: 5, row: Ours, set: {FULL}}}
  - {{table: 6, row: Ours, set: {FULL}}}
"""
T2 = """\
name: r-table2
base: ../base.yaml
preset: synthetic
seeds: [0, 1]
rows:
  - {table: 2, row: SA 4-8-12-24, set: {loss.affinity: sa, loss.label_reassign: false}}
  - {table: 2, row: AA 4-8-12-24-36, set: {loss.affinity: aa, loss.label_reassign: false, loss.dilations: [4, 8, 12, 24, 36]}}
"""
T4 = """\
name: r-table4
base: ../base.yaml
preset: synthetic
seeds: [0, 1]
table: 4
row: "gamma={loss.gamma}"
set: {loss.affinity: aa, loss.label_reassign: true}
axes: {loss.gamma: [0, 2]}
"""
VOC_GRID = T2.replace("preset: synthetic", "preset: voc").replace("name: r-table2", "name: r-voc")


def setup(tmp_path: Path, num_classes: int = 21) -> tuple[Path, Path]:
    """Grid files, and runs for some of their points with chosen numbers."""
    root = tmp_path / "exp"
    grids = root / "grids"
    grids.mkdir(parents=True)
    (root / "base.yaml").write_text(
        f"preset: synthetic\nmodel: {{backbone: small, num_classes: {num_classes}}}\n"
        f"train: {{epochs: 2}}\ndata: {{root: {tmp_path / 'synth'}}}\n")
    (root / "voc.yaml").write_text("preset: voc\ntrain: {epochs: 2}\n")
    (grids / "t1.yaml").write_text(T1)
    (grids / "t2.yaml").write_text(T2)
    (grids / "t4.yaml").write_text(T4)
    (grids / "voc.yaml").write_text(VOC_GRID.replace("../base.yaml", "../voc.yaml"))
    results = tmp_path / "results"
    pts = {(p.row, p.seed): p for p in G.load_grid(grids / "t1.yaml").points}
    for seed, val, train in ((0, 0.50, 0.60), (1, 0.52, 0.62), (2, 0.54, 0.64)):
        p = pts[("CLS+CE", seed)]
        write_run(results, p.config, p.run_name, val=val, train=train)
    p = pts[("CLS+CE+AA", 0)]
    write_run(results, p.config, p.run_name, val=0.55, train=0.66)
    for seed, val in ((0, 0.56), (1, 0.58)):
        p = pts[("CLS+CE+AA+LR", seed)]
        write_run(results, p.config, p.run_name, val=val, train=val + 0.1)
    # an unfinished run of a point: must not count
    p = pts[("CLS+CE+AA", 1)]
    write_run(results, p.config, p.run_name, val=0.99, status="interrupted")
    return results, grids


def cell(t: R.ReportTable, row: str, column: str) -> dict:
    hit = t.long[(t.long["row"] == row) & (t.long["column"] == column)]
    assert len(hit) == 1, (row, column)
    return hit.iloc[0].to_dict()


def block_row(t: R.ReportTable, label: str, block: int = 0) -> list[str]:
    rows = [r for r in t.blocks[block].rows if r[0] == label]
    assert len(rows) == 1, (label, [r[0] for r in t.blocks[block].rows])
    return rows[0]


def test_table1_mean_std_over_seeds_beside_the_paper(tmp_path: Path) -> None:
    results, grids = setup(tmp_path)
    t = R.build_table(1, results=results, preset="synthetic", grids_dir=grids)
    c = cell(t, "CLS+CE", "val")
    assert c["ours_mean"] == pytest.approx(52.0) and c["ours_std"] == pytest.approx(2.0)
    assert (c["n_runs"], c["n_expected"], c["paper"]) == (3, 3, 60.0)
    assert c["diff"] == pytest.approx(-8.0) and c["protocol"] == "ss"
    assert cell(t, "CLS+CE", "train")["ours_mean"] == pytest.approx(62.0)
    # one finished run: no std; the interrupted run of seed 1 is not counted
    c = cell(t, "CLS+CE+AA", "val")
    assert (c["ours_mean"], c["n_runs"]) == (pytest.approx(55.0), 1) and pd.isna(c["ours_std"])
    # the rfpc row reads val_rfpc / train_rfpc of the same runs (fake: +2 points)
    c = cell(t, "CLS+CE+AA+LR+rfpc", "val")
    assert c["ours_mean"] == pytest.approx(59.0) and c["ours_std"] == pytest.approx(2 ** 0.5)
    assert c["protocol"] == "ss+rfpc" and c["paper_protocol"] == "rfpc" and c["paper"] == 65.8
    assert cell(t, "CLS+CE+AA+LR+rfpc", "train")["ours_mean"] == pytest.approx(69.0)
    # displayed strings
    assert block_row(t, "CLS+CE") == ["CLS+CE", "62.0 ± 2.0", "63.7", "-1.7", "52.0 ± 2.0", "60.0", "-8.0", "ss", "3/3"]
    assert block_row(t, "CLS+CE+AA")[4:7] == ["55.0", "63.2", "-8.2"]
    assert block_row(t, "CLS+CE+AA")[-1] == "1/3"
    assert block_row(t, "CLS+CE+AA+LR+rfpc")[-2] == "ss+rfpc (paper: rfpc)"


def test_missing_runs_are_shown_as_missing_never_filled_in(tmp_path: Path) -> None:
    results, grids = setup(tmp_path)
    t = R.build_table(2, results=results, preset="synthetic", grids_dir=grids)
    row = block_row(t, "SA 4-8-12-24")
    assert row == ["SA 4-8-12-24", "missing", "66.0", "", "missing", "62.3", "", "", "0/2"]
    # our extra row without a published number, and a published row without any grid point
    assert block_row(t, "AA 4-8-12-24-36")[1:7] == ["missing", "—", "", "missing", "—", ""]
    assert block_row(t, "SA 12-24-36")[-1] == "no grid point"
    assert t.long["ours_mean"].isna().all() and (t.long["n_runs"] == 0).all()
    # Table 3 has no grid here at all: the paper's rows, every cell of ours missing
    t3 = R.build_table(3, results=results, preset="synthetic", grids_dir=grids)
    assert [r[0] for r in t3.blocks[0].rows] == ["max", "min", "mean"]
    assert all(r[1] == "missing" and r[4] == "missing" for r in t3.blocks[0].rows)


def test_table5_per_class_and_table6_comparison(tmp_path: Path) -> None:
    results, grids = setup(tmp_path)
    t5 = R.build_table(5, results=results, preset="synthetic", grids_dir=grids)
    # the full method's runs (seeds 0, 1): per-class IoU = miou + (c - 10) * 0.001
    for c_idx, name in ((0, "bkg"), (20, "tv")):
        c = cell(t5, "Ours", name)
        assert c["ours_mean"] == pytest.approx(100 * (0.57 + (c_idx - 10) * 0.001))
        assert c["n_runs"] == 2
    assert cell(t5, "Ours", "mIoU")["diff"] == pytest.approx(57.0 - 63.9)
    assert cell(t5, "RRM", "bkg")["paper"] == 87.9 and cell(t5, "RRM", "bkg")["n_runs"] == 0
    assert t5.blocks[0].header == ["Method", *VOC_CLASSES, "mIoU"]
    assert block_row(t5, "Ours (aakit)")[1] == "56.0" and block_row(t5, "Ours (aakit)")[-1] == "57.0"
    assert block_row(t5, "Δ vs Ours (paper)")[-1] == "-6.9"
    assert block_row(t5, "SSSS (paper)")[1] == "88.7"

    t6 = R.build_table(6, results=results, preset="synthetic", grids_dir=grids)
    labels = [r[0] for r in t6.blocks[0].rows]
    assert labels[0] == "SEC [19]" and "NSROM [50]" in labels and "Ours (aakit, synthetic)" in labels
    ours = block_row(t6, "Ours (aakit, synthetic)")
    assert ours[4:6] == ["57.0 ± 1.4", "missing"] and ours[2] == "small" and ours[3] == "I"
    assert block_row(t6, "Δ vs Ours (paper)")[4:6] == ["-6.9", ""]
    assert cell(t6, "Ours", "test")["n_runs"] == 0 and cell(t6, "Ours", "test")["paper"] == 64.8


def test_table5_with_other_classes_compares_miou_only(tmp_path: Path) -> None:
    (tmp_path / "synth").mkdir()  # the data set is there when the runs are made (it is in their hash)
    names = ["background"] + [f"shape{i}" for i in range(1, 11)]
    (tmp_path / "synth" / "meta.json").write_text(json.dumps({"class_names": names}))
    results, grids = setup(tmp_path, num_classes=11)
    t5 = R.build_table(5, results=results, preset="synthetic", grids_dir=grids)
    assert len(t5.blocks) == 2
    assert block_row(t5, "Ours (aakit)")[1] == "n/a" and block_row(t5, "Ours (aakit)")[-1] == "57.0 ± 1.4"
    assert t5.blocks[1].header == ["Method", "bkg", *names[1:], "mIoU"]
    assert any("11 classes" in n for n in t5.notes)
    # without the data (a fresh clone): the embedded benchmark's own class list, not class1..10;
    # the runs are found by the hashes of the committed grid state (the data digest is in them)
    G.grid_status(grids / "t1.yaml", results=results)
    (tmp_path / "synth" / "meta.json").unlink()
    fresh = R.build_table(5, results=results, preset="synthetic", grids_dir=grids)
    from aakit.data.synth import CLASSES

    assert fresh.blocks[1].header == ["Method", "bkg", *[c.name for c in CLASSES[:10]], "mIoU"]


def test_grid_json_hashes_are_used_where_a_grid_has_run(tmp_path: Path) -> None:
    """Runs made with --set have other hashes than the grid file: grid.json records them."""
    results, grids = setup(tmp_path)
    G.run_grid(grids / "t4.yaml", results=results, overrides=["loss.lambda_aa=0.3"], train=fake_train,
               progress=False, log=lambda m: None)
    t4 = R.build_table(4, results=results, preset="synthetic", grids_dir=grids)
    assert block_row(t4, "gamma=0")[-1] == "2/2" and block_row(t4, "gamma=2")[-1] == "2/2"
    assert block_row(t4, "gamma=5")[-1] == "no grid point"
    runs = G.load_grid(grids / "t4.yaml", ["loss.lambda_aa=0.3"]).points
    vals = [json.loads((results / "runs" / f"{p.run_name}-{p.hash}" / "summary.json").read_text())
            ["metrics"]["val"]["miou"] for p in runs if p.row == "gamma=0"]
    assert cell(t4, "gamma=0", "val")["ours_mean"] == pytest.approx(100 * sum(vals) / 2)
    # a grid that ran for Table 1 replaces the grid files' expansion of Table 1
    (grids / "custom.yaml").write_text(
        "name: r-custom\nbase: ../base.yaml\nseeds: [5]\nrows:\n"
        "  - {table: 1, row: CLS+CE, set: {loss.affinity: none, loss.label_reassign: false}}\n")
    G.run_grid(grids / "custom.yaml", results=results, train=fake_train, progress=False, log=lambda m: None)
    t1 = R.build_table(1, results=results, preset="synthetic", grids_dir=grids)
    assert block_row(t1, "CLS+CE")[-1] == "1/1" and block_row(t1, "CLS+CE+AA")[-1] == "no grid point"
    # the VOC preset sees none of the synthetic runs
    v = R.build_table(4, results=results, preset="voc", grids_dir=grids)
    assert v.long["n_runs"].sum() == 0


def test_all_tables_in_all_four_formats(tmp_path: Path) -> None:
    results, grids = setup(tmp_path)
    tables = R.build_report(results=results, preset="synthetic", grids_dir=grids)
    assert [t.number for t in tables] == [1, 2, 3, 4, 5, 6]

    md = R.render(tables, "md")
    assert "| CLS+CE | 62.0 ± 2.0 | 63.7 | -1.7 | 52.0 ± 2.0 | 60.0 | -8.0 | ss | 3/3 |" in md
    assert "| SA 4-8-12-24 | missing | 66.0 |  | missing | 62.3 |  |  | 0/2 |" in md
    for n in range(1, 7):
        assert f"**Table {n}.**" in md
    header_line = next(line for line in md.splitlines() if line.startswith("| Row |"))
    assert header_line.count("|") == 10

    tex = R.render(tables, "latex")
    assert tex.count(r"\begin{tabular}") == 6 and tex.count(r"\bottomrule") == 6
    assert r"CLS+CE & 62.0 $\pm$ 2.0 & 63.7 & -1.7 & 52.0 $\pm$ 2.0 & 60.0 & -8.0 & ss & 3/3 \\" in tex
    assert r"train: $\Delta$" in tex and "missing" in tex and r"\%" in tex

    csv = pd.read_csv(io.StringIO(R.render(tables, "csv")))
    assert list(csv.columns) == LONG_COLUMNS and set(csv["table"]) == {1, 2, 3, 4, 5, 6}
    row = csv[(csv["table"] == 1) & (csv["row"] == "CLS+CE") & (csv["column"] == "val")].iloc[0]
    assert (row["ours_mean"], row["ours_std"], row["n_runs"], row["paper"], row["diff"]) == (52.0, 2.0, 3, 60.0, -8.0)
    miss = csv[(csv["table"] == 2) & (csv["row"] == "SA 4-8-12-24") & (csv["column"] == "val")].iloc[0]
    assert pd.isna(miss["ours_mean"]) and miss["n_runs"] == 0 and miss["paper"] == 62.3

    text = R.render(tables, "rich")
    assert "Table 1. Ablation" in text and "52.0 ± 2.0" in text and "missing" in text
    assert "NSROM [50]" in text


def test_cli_run_writes_files_and_figures(tmp_path: Path) -> None:
    results, grids = setup(tmp_path)
    G.run_grid(grids / "t4.yaml", results=results, train=fake_train, progress=False, log=lambda m: None)
    out = tmp_path / "report"
    said: list[str] = []
    R.cli_run(table=None, fmt="md", out=out, preset="synthetic", figures=True, results=results,
              echo=said.append, grids_dir=grids)
    assert sorted(p.name for p in out.glob("*.md")) == ["claims.md", "grid_costs.md"] + [f"table{n}.md" for n in range(1, 7)] + ["tables.md"]
    pngs = sorted(p.relative_to(out / "figures").as_posix() for p in (out / "figures").rglob("*.png"))
    assert "figure3_pseudo_miou.png" in pngs and "table4_gamma.png" in pngs
    assert sum(p.startswith("curves/") for p in pngs) == len(list((results / "runs").iterdir()))
    assert all((out / "figures" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert any(s.startswith("wrote ") for s in said)
    R.cli_run(table=2, fmt="csv", out=None, preset="synthetic", figures=False, results=results,
              echo=said.append, grids_dir=grids)
    assert said[-1].startswith("table,row,column") and "\n1," not in said[-1]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"fmt": "html"}, "--format"), ({"table": 7}, "--table 7"), ({"preset": "coco"}, "--preset")],
)
def test_bad_report_requests(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"table": None, "fmt": "md", "out": None, "preset": "synthetic", "figures": False,
            "results": tmp_path, **kwargs}
    with pytest.raises(R.ReportError, match=match):
        R.cli_run(echo=lambda s: None, grids_dir=tmp_path, **args)


# ----------------------------------------------------------------------------- honest failure paths
def _aakit(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the real entry point in process: (exit code, stdout, stderr)."""
    from conftest import run_cli

    return run_cli(argv, monkeypatch, capsys)


def test_report_on_a_results_dir_without_runs_says_so_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    (empty / "runs" / ".locks").mkdir(parents=True)  # a lock directory is not a run
    (empty / "runs" / "not-a-run").mkdir()  # nor is a directory without any run file
    doc = tmp_path / "doc.md"
    doc.write_text(f"title\n{R.BEGIN_MARK}\nold tables\n{R.END_MARK}\n")
    before = doc.read_bytes()
    for extra in ([], ["--format", "md", "--into", str(doc)], ["--out", str(tmp_path / "out"), "--figures"],
                  ["--claims"]):
        code, out, err = _aakit(["report", "--results", str(empty), *extra], monkeypatch, capsys)
        assert code == 2 and out == "", extra
        assert err.count("\n") == 1 and str(empty) in err and "no runs" in err, err
    assert doc.read_bytes() == before and not (tmp_path / "out").exists()
    assert not (empty / "figures").exists() and sorted(p.name for p in (empty / "runs").iterdir()) == [".locks", "not-a-run"]
    code, _, err = _aakit(["report", "--results", str(tmp_path / "nope")], monkeypatch, capsys)
    assert code == 2 and "no such directory" in err and err.count("\n") == 1


def _damage(results: Path, grids: Path) -> dict[str, Path]:
    """Left-out runs of every kind, beside the interrupted one of :func:`setup`."""
    pts = {(p.row, p.seed): p for p in G.load_grid(grids / "t1.yaml").points}
    run = {k: results / "runs" / f"{pts[k].run_name}-{pts[k].hash}"
           for k in (("CLS+CE", 1), ("CLS+CE", 2), ("CLS+CE+AA", 1), ("CLS+CE+AA+LR", 0), ("CLS+CE+AA+LR", 1))}
    (run[("CLS+CE", 1)] / "status.json").write_text('{"status": "fini')  # truncated
    (run[("CLS+CE", 2)] / "config.yaml").unlink()
    s = json.loads((run[("CLS+CE+AA+LR", 0)] / "summary.json").read_text())
    del s["metrics"]["train_rfpc"]
    (run[("CLS+CE+AA+LR", 0)] / "summary.json").write_text(json.dumps(s))
    twin = results / "runs" / f"copy-{pts[('CLS+CE+AA+LR', 1)].hash}"  # a second finished run, same hash
    twin.mkdir()
    for f in run[("CLS+CE+AA+LR", 1)].glob("*.*"):
        (twin / f.name).write_bytes(f.read_bytes())
    stray = results / "runs" / "stray-0badc0de"  # no grid point, no config: still named
    stray.mkdir()
    (stray / "metrics.jsonl").write_text("")
    return {"status": run[("CLS+CE", 1)], "config": run[("CLS+CE", 2)], "interrupted": run[("CLS+CE+AA", 1)],
            "metric": run[("CLS+CE+AA+LR", 0)], "twin": twin, "twin_of": run[("CLS+CE+AA+LR", 1)]}


def test_report_names_every_run_it_left_out_and_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    results, grids = setup(tmp_path)
    runs = _damage(results, grids)
    monkeypatch.chdir(tmp_path)  # the grid files: experiments/grids of the working directory
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "grids").symlink_to(grids)
    code, out, err = _aakit(["report", "--results", str(results), "--format", "md", "--verbose"], monkeypatch, capsys)
    assert code == 0
    # stdout is the report alone, the corrupt runs filling no cell; stderr names what was left out
    assert "| CLS+CE | 60.0 | 63.7 | -3.7 | 50.0 | 60.0 | -10.0 | ss | 1/3 |" in out
    assert "left out" not in out and "corrupt" not in out
    lines = err.splitlines()
    assert lines[0] == "aakit report: runs left out, and why:"
    expect = [
        f"Table 1 CLS+CE: 1/3 seeds; s1 {runs['status'].name}: corrupt: status.json: not valid JSON",
        f"Table 1 CLS+CE: 1/3 seeds; s2 {runs['config'].name}: corrupt: no config.yaml",
        f"Table 1 CLS+CE+AA: 1/3 seeds; s1 {runs['interrupted'].name}: no summary.json (status: interrupted)",
        f"Table 1 CLS+CE+AA+LR+rfpc: 2/3 seeds; s0 {runs['metric'].name}: no 'train_rfpc' metrics in summary.json",
        "run stray-0badc0de: corrupt: no config.yaml",
    ]
    for line in expect:
        assert f"  {line}" in lines, (line, lines)
    twin = [x for x in lines if "2 finished runs with hash" in x]
    assert twin and all(runs["twin"].name in x and runs["twin_of"].name in x for x in twin)
    assert len(lines) == len(set(lines))  # each said once


def test_left_out_runs_in_the_tables_claims_and_costs(tmp_path: Path) -> None:
    results, grids = setup(tmp_path)
    runs = _damage(results, grids)
    index = load_results(results, "synthetic", grids)
    assert index.seen == len(list((results / "runs").iterdir()))
    corrupt = {s.path.name: s.reason for s in index.dropped if s.corrupt}
    assert corrupt == {runs["status"].name: "corrupt: status.json: not valid JSON",
                       runs["config"].name: "corrupt: no config.yaml", "stray-0badc0de": "corrupt: no config.yaml"}
    t1 = R.build_table(1, results=results, preset="synthetic", grids_dir=grids)
    assert cell(t1, "CLS+CE", "val")["n_runs"] == 1 and any("s1" in x and "status.json" in x for x in t1.dropped)
    from aakit.experiment.claims import claims_table
    from aakit.experiment.costs import costs_table

    claims = claims_table(results, "synthetic", grids)
    assert any("Table 1 CLS+CE: 1/3 seeds; s2" in x for x in claims.dropped)
    s = json.loads((runs["twin"] / "summary.json").read_text())
    (runs["twin"] / "summary.json").write_text(json.dumps(s | {"seed": None}))
    assert any("has no seed in summary.json" in x for x in claims_table(results, "synthetic", grids).dropped)
    costs = costs_table(results, "synthetic", grids)
    assert any("no 'created' in provenance.json" in x for x in costs.dropped)


def test_table5_does_not_take_class_names_from_another_benchmark_version(tmp_path: Path) -> None:
    """Runs of version 1 (their provenance records no version) with a version-2 set now at their
    data root: the class names are version 1's, not the data on disk's."""
    (tmp_path / "synth").mkdir()
    names = ["background"] + [f"other{i}" for i in range(1, 11)]
    (tmp_path / "synth" / "meta.json").write_text(json.dumps({"class_names": names, "version": "2.0"}))
    results, grids = setup(tmp_path, num_classes=11)
    from aakit.data.synth import CLASSES

    t5 = R.build_table(5, results=results, preset="synthetic", grids_dir=grids)
    assert t5.blocks[1].header == ["Method", "bkg", *[c.name for c in CLASSES[:10]], "mIoU"]


def test_finished_runs_without_a_train_evaluation_say_so(tmp_path: Path) -> None:
    """A row whose runs finished but were evaluated on val only (eval.train_iou: false) shows
    'not evaluated' in its train column, not 'missing', which means no finished run."""
    from aakit.runs import atomic_write_json, read_json

    results, grids = setup(tmp_path)
    for run in (results / "runs").iterdir():
        if "CLS+CE+AA+LR" in run.name:
            summary = read_json(run / "summary.json")
            del summary["metrics"]["train"], summary["metrics"]["train_rfpc"]
            atomic_write_json(run / "summary.json", summary)
    t = R.build_table(1, results=results, preset="synthetic", grids_dir=grids)
    md = R.render([t], "md")
    assert "| CLS+CE+AA+LR | not evaluated | 67.4 |  | 57.0 ± 1.4 |" in md
    said = [line for line in t.dropped if line.startswith("Table 1 CLS+CE+AA+LR: ")]
    assert said == ["Table 1 CLS+CE+AA+LR: 2/3 seeds; none of its 2 runs has 'train' metrics in summary.json "
                    "(not evaluated: aakit eval RUN --split train)"]  # one line for the row, not one per run
    assert "| CLS+CE | 62.0 ± 2.0 |" in md and "'not evaluated' = finished runs" in md


def test_figures_again_redraw_only_the_curves_of_runs_that_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from aakit.experiment import figures as F
    from aakit.runs import load_run

    results, grids = setup(tmp_path)
    G.run_grid(grids / "t4.yaml", results=results, train=fake_train, progress=False, log=lambda m: None)
    out = tmp_path / "figs"
    F.make_figures(results, out, preset="synthetic", grids_dir=grids)
    curves = sorted((out / "curves").glob("*.png"))
    assert curves
    old = {p.name: p.stat().st_mtime_ns for p in curves}
    changed = sorted((results / "runs").iterdir())[0]
    future = changed.joinpath("metrics.jsonl").stat().st_mtime + 10
    os.utime(changed / "metrics.jsonl", (future, future))
    read: list[str] = []
    on_disk = F._records_on_disk

    def counting(run: Path) -> list:
        read.append(run.name)
        return on_disk(run)

    monkeypatch.setattr(F, "_records_on_disk", counting)
    again = F.make_figures(results, out, preset="synthetic", grids_dir=grids)
    assert changed.name in read and len(set(read)) < len(curves)  # the kept curves' metrics are not read
    new = {p.name: p.stat().st_mtime_ns for p in (out / "curves").glob("*.png")}
    redrawn = {n for n in new if new[n] != old[n]}
    assert redrawn == {f"{load_run(changed).name}.png"}
    assert {p.name for p in again if p.parent.name == "curves"} == set(old)


# ----------------------------------------------------------------------------- the default view
def _in_repo_layout(tmp_path: Path, grids: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the grid files: experiments/grids of the working directory
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "grids").symlink_to(grids)


def test_the_default_report_is_the_verdicts_then_how_to_see_the_tables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    results, grids = setup(tmp_path)
    _in_repo_layout(tmp_path, grids, monkeypatch)
    code, out, err = _aakit(["report", "--results", str(results)], monkeypatch, capsys)
    assert code == 0, err
    lines = out.rstrip("\n").splitlines()
    assert lines[0].startswith("Verdicts. The paper's ablation claims, tested (synthetic)")
    row = next(x for x in lines if "CLS+CE+AA+LR+rfpc vs CLS+CE+AA+LR " in x)  # two paired seeds
    assert "T1: rfpc at evaluation adds more" in row and "│     2 │" in row and "[+" in row  # paired Δ, interval
    assert any(v in row for v in ("supported", "opposite", "smaller than the paper's", "inconclusive", "not run"))
    assert any(x.startswith("9 claims: ") for x in lines)
    assert "--tables" in lines[-1] and "--table N" in lines[-1]
    assert "Table 1." not in out and "Grid costs" not in out and "Δ vs" not in out and ": Δ" not in out
    assert len(lines) < 40

    code, full, _ = _aakit(["report", "--results", str(results), "--tables"], monkeypatch, capsys)
    assert code == 0
    assert full.index("Table 1. Ablation") < full.index("Table 6.") < full.index("Claims. ") < full.index("Grid costs")
    assert "val: paper" in full and "val: Δ" not in full and "Δ vs Ours" not in full  # synthetic: no ours − paper
    assert "no Δ on synthetic data" in full
    code, one, _ = _aakit(["report", "--results", str(results), "--table", "1"], monkeypatch, capsys)
    assert code == 0 and "Table 1. Ablation" in one and "train: Δ" not in one and "Claims." not in one
    code, md, _ = _aakit(["report", "--results", str(results), "--format", "md"], monkeypatch, capsys)
    assert code == 0 and "| val: Δ |" in md and "**Claims.**" in md  # the files' formats: as before
    code, _, err = _aakit(["report", "--results", str(results), "--tables", "--claims"], monkeypatch, capsys)
    assert code == 2 and "--tables and --claims" in err


def test_the_rich_view_shows_ours_minus_the_paper_on_the_paper_data_only(tmp_path: Path) -> None:
    results, grids = setup(tmp_path)
    t1 = R.build_table(1, results=results, preset="synthetic", grids_dir=grids)
    assert "val: Δ" in t1.blocks[0].header
    assert R.for_view(t1, "md", "synthetic") is t1 and R.for_view(t1, "rich", "voc") is t1
    view = R.for_view(t1, "rich", "synthetic")
    assert view.blocks[0].header == ["Row", "train: ours", "train: paper", "val: ours", "val: paper", "protocol", "runs"]
    assert view.long.equals(t1.long)  # the cells keep their diff
    t5 = R.build_table(5, results=results, preset="synthetic", grids_dir=grids)
    assert any(r[0] == "Δ vs Ours (paper)" for r in t5.blocks[0].rows)
    assert not any(r[0].startswith("Δ vs") for b in R.for_view(t5, "rich", "synthetic").blocks for r in b.rows)
    said: list[str] = []
    for preset in ("voc", "synthetic"):
        R.cli_run(table=2, fmt="rich", out=None, preset=preset, figures=False, results=results, echo=said.append,
                  grids_dir=grids, warn=lambda line: None)
    voc, synthetic = said
    assert "val: Δ" in voc and "val: Δ" not in synthetic


def test_stderr_counts_the_runs_left_out_in_one_line_and_verbose_lists_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    results, grids = setup(tmp_path)
    _damage(results, grids)
    _in_repo_layout(tmp_path, grids, monkeypatch)
    code, out, err = _aakit(["report", "--results", str(results), "--format", "md"], monkeypatch, capsys)
    assert code == 0
    code, _, verbose = _aakit(["report", "--results", str(results), "--format", "md", "--verbose"], monkeypatch, capsys)
    listed = [x for x in verbose.splitlines() if x.startswith("  ")]
    assert len(listed) >= 10
    assert len(err.splitlines()) == 1 and err.startswith(f"aakit report: {len(listed)} runs or rows left out")
    assert "3 corrupt" in err and "1 unfinished" in err and "--verbose" in err
    for argv in (["report"], ["report", "--tables"], ["report", "--claims"]):
        code, _, err = _aakit([*argv, "--results", str(results)], monkeypatch, capsys)
        assert code == 0 and len(err.splitlines()) == 1 and "--verbose" in err, (argv, err)


def test_a_run_not_evaluated_on_train_is_not_left_out_of_the_claims(tmp_path: Path) -> None:
    from aakit.experiment.claims import claims_table
    from aakit.runs import atomic_write_json, read_json

    results, grids = setup(tmp_path)
    for run in (results / "runs").iterdir():
        summary = read_json(run / "summary.json")
        if summary:
            summary["metrics"].pop("train", None)
            summary["metrics"].pop("train_rfpc", None)
            atomic_write_json(run / "summary.json", summary)
    t1 = R.build_table(1, results=results, preset="synthetic", grids_dir=grids)
    assert any("'train' metrics" in x for x in t1.dropped)  # the table's train column: not evaluated
    assert not any("'train" in x for x in claims_table(results, "synthetic", grids).dropped)  # the claims read val


def test_the_mechanism_table_has_a_row_per_grid_row_from_the_stored_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 28: a "Mechanism" table in the report, one row per grid row (read from the committed
    results/grids/*/mechanism.json); without any stored record, one line and exit 2."""
    from conftest import REPO, run_cli

    from aakit.experiment.mechanisms import mechanism_rows

    rows = {(r["grid"], r["row"]): r for r in mechanism_rows(REPO / "results", ["v2-table2", "v2-vsource"])}
    assert rows[("v2-table2", "AA 4-8-12-24")]["aa_vs_sa_grad_share"] < 0.01  # V from the CRF: AA is SA here
    assert rows[("v2-vsource", "AA-cam")]["aa_vs_sa_grad_share"] > 0.01
    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = run_cli(["report", "--mechanism", "--results", str(REPO / "results")], monkeypatch, capsys)
    assert code == 0 and "Mechanism" in out and "AA 4-8-12-24" in out and "untrained start" in out, err
    code, _, err = run_cli(["report", "--mechanism", "--claims", "--results", str(REPO / "results")], monkeypatch, capsys)
    assert code == 2 and "--mechanism: alone" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "grids").mkdir()
    code, _, err = run_cli(["report", "--mechanism", "--results", str(tmp_path)], monkeypatch, capsys)
    assert code == 2 and ("no grid" in err or "no runs" in err) and len(err.strip().splitlines()) == 1
