"""A grid's own comparisons (compare:), decided on its stored runs: aakit report --compare."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_cli  # noqa: E402
from experiment_fakes import write_run  # noqa: E402

from aakit.experiment import comparisons as CMP  # noqa: E402
from aakit.experiment import grid as G  # noqa: E402
from aakit.runs import read_json  # noqa: E402

PILOT = """\
name: pilot
base: base.yaml
preset: synthetic
seeds: [0, 1, 2]
order: seeds
rows:
  - {table: 0, row: base, set: {loss.affinity: none, loss.label_reassign: false}}
  - {table: 0, row: sa, set: {loss.affinity: sa, loss.label_reassign: false}}
  - {table: 0, row: aa, set: {loss.affinity: aa, loss.label_reassign: false}}
compare:
  - {winner: aa, other: base, text: "AA helps", paper_effect: 3.2}
  - {winner: sa, other: base}
  - {winner: aa, other: sa}
"""
VALUES = {"base": [0.50, 0.52, 0.51], "sa": [0.49, 0.508, 0.499], "aa": [0.55, 0.56, 0.555]}


def make(tmp_path: Path, text: str = PILOT, seeds_done: int = 3) -> Path:
    (tmp_path / "base.yaml").write_text(
        f"preset: synthetic\nmodel: {{backbone: small, num_classes: 5}}\ntrain: {{epochs: 1}}\n"
        f"data: {{root: {tmp_path / 'synth'}}}\n")
    (tmp_path / "pilot.yaml").write_text(text)
    grid = G.load_grid(tmp_path / "pilot.yaml")
    results = tmp_path / "results"
    points = []
    for p in grid.points:
        done = p.seed < seeds_done
        if done:
            write_run(results, p.config, p.run_name, val=VALUES[p.row][p.seed])
        points.append({"id": p.id, "table": 0, "row": p.row, "params": p.params, "seed": p.seed, "hash": p.hash,
                       "metric": "val", "run": f"{p.run_name}-{p.hash}" if done else None,
                       "state": "done" if done else "missing"})
    G.write_state(grid, results, points, "journal", "grid-pilot")
    return results


def test_comparisons_pair_the_rows_by_seed_and_apply_the_claims_rule(tmp_path: Path) -> None:
    results = make(tmp_path)
    assert read_json(results / "grids" / "pilot" / "grid.json")["compare"][0]["paper_effect"] == 3.2
    out = {(c["winner_row"], c["other_row"]): c for c in CMP.comparisons_json(results, "pilot")}
    aa = out[("aa", "base")]  # +5, +4, +4.5
    assert aa["comparison"] == "AA helps" and aa["n"] == 3 and aa["paper_effect"] == 3.2
    assert aa["mean_diff"] == pytest.approx(4.5) and aa["verdict"] == "supported"
    assert aa["unit"] == "val mIoU points (0-100)"
    diffs = [p["winner"] - p["loser"] for p in aa["pairs"]]
    assert sum(diffs) / 3 == pytest.approx(aa["mean_diff"])
    assert out[("sa", "base")]["verdict"] == "opposite"  # -1.0, -1.2, -1.1
    assert out[("sa", "base")]["comparison"] == "sa beats base"  # default text
    assert out[("aa", "sa")]["verdict"] == "supported"


def test_the_reports_grid_costs_leave_a_pilot_to_its_own_report(tmp_path: Path) -> None:
    """A grid of table 0 only (a pilot) fills no paper table: the report's "Grid costs" (beside
    Tables 1-6) leaves it out; --compare shows its cost."""
    from aakit.experiment.costs import grid_costs
    from aakit.experiment.results import load_results

    results = make(tmp_path)
    index = load_results(results, "synthetic", tmp_path / "no-grid-files")
    assert "pilot" not in set(grid_costs(results, "synthetic", index=index)["grid"])
    assert list(grid_costs(results, "synthetic", index=index, grids={"pilot"})["done"]) == [9]


def test_unfinished_seeds_are_left_out_of_the_pairs(tmp_path: Path) -> None:
    results = make(tmp_path, seeds_done=1)
    out = CMP.comparisons_json(results, "pilot")
    assert all(c["n"] == 1 and c["verdict"] == "inconclusive" for c in out)


def test_compare_from_the_grid_file_when_grid_json_lacks_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = make(tmp_path)
    path = results / "grids" / "pilot" / "grid.json"
    state = json.loads(path.read_text())
    del state["compare"]  # written by an older aakit: the grid file it names is read instead
    state["file"] = str(tmp_path / "pilot.yaml")
    path.write_text(json.dumps(state))
    assert len(CMP.comparisons_json(results, "pilot")) == 3


def test_cli_compare_md_and_json_and_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    results = make(tmp_path)
    code, out, _ = run_cli(["report", "--compare", "pilot", "--format", "md", "--results", str(results)],
                           monkeypatch, capsys)
    assert code == 0 and "AA helps" in out and "supported" in out and "| aa |" in out
    assert "| pilot | 9/9 | 9 | 0 |" in out  # its cost: 9 units done, all trained by it
    code, out, _ = run_cli(["report", "--compare", "pilot", "--format", "json", "--results", str(results)],
                           monkeypatch, capsys)
    assert code == 0 and len(json.loads(out)) == 3
    for args, message in [(["--compare", "nope"], "no "), (["--compare", "pilot", "--claims"], "alone")]:
        code, out, err = run_cli(["report", *args, "--results", str(results)], monkeypatch, capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and not out, err


@pytest.mark.parametrize("item, match", [
    ("{winner: aa}", "winner: and other:"),
    ("{winner: aa, other: zz}", "'zz' is not a row"),
    ("{winner: aa, other: sa, paper_effect: big}", "paper_effect"),
    ("{winner: aa, other: sa, colour: red}", "unknown key 'colour'"),
])
def test_bad_compare_items_are_refused_when_the_grid_loads(tmp_path: Path, item: str, match: str) -> None:
    text = PILOT.split("compare:")[0] + f"compare:\n  - {item}\n"
    (tmp_path / "base.yaml").write_text("preset: synthetic\nmodel: {backbone: small, num_classes: 5}\n")
    (tmp_path / "pilot.yaml").write_text(text)
    with pytest.raises(G.GridError, match=match):
        G.load_grid(tmp_path / "pilot.yaml")


def test_the_report_reads_one_suite_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Two grids fill Table 1, one of them with suite: v2 (another benchmark): the report's Table 1
    is the suite-less grid's by default and the other's with --suite v2, never both."""
    base = tmp_path / "base.yaml"
    base.write_text(f"preset: synthetic\nmodel: {{backbone: small, num_classes: 5}}\ntrain: {{epochs: 1}}\n"
                    f"data: {{root: {tmp_path / 'synth'}}}\n")
    results = tmp_path / "results"
    for name, suite, values in (("old", None, [0.40, 0.42]), ("new", "v2", [0.60, 0.62])):
        text = (f"name: {name}\nbase: base.yaml\npreset: synthetic\nseeds: [0, 1]\n"
                + (f"suite: {suite}\n" if suite else "")
                + f"set: {{train.epochs: {1 if suite is None else 2}}}\n"
                  "rows:\n  - {table: 1, row: CLS+CE, set: {loss.affinity: none, loss.label_reassign: false}}\n")
        (tmp_path / f"{name}.yaml").write_text(text)
        grid = G.load_grid(tmp_path / f"{name}.yaml")
        assert grid.suite == suite
        points = []
        for p in grid.points:
            write_run(results, p.config, p.run_name, val=values[p.seed])
            points.append({"id": p.id, "table": 1, "row": p.row, "params": p.params, "seed": p.seed,
                           "hash": p.hash, "metric": "val", "run": f"{p.run_name}-{p.hash}", "state": "done"})
        G.write_state(grid, results, points, "journal", f"grid-{name}")
    common = ["report", "--table", "1", "--format", "csv", "--results", str(results)]
    _, default, _ = run_cli(common, monkeypatch, capsys)
    _, v2, _ = run_cli([*common, "--suite", "v2"], monkeypatch, capsys)
    assert "41.0" in default and "61.0" not in default
    assert "61.0" in v2 and "41.0" not in v2
    code, out, err = run_cli([*common, "--suite", "v9"], monkeypatch, capsys)
    assert code == 2 and "--suite v9: no grid of preset synthetic says suite: v9" in err and not out
    from aakit.experiment.gridstate import read_grid_state

    path = results / "grids" / "new" / "grid.json"
    state = json.loads(path.read_text())
    assert state["suite"] == "v2"
    del state["suite"]  # a grid.json from before suites: the grid file it names says it
    state["file"] = str(tmp_path / "new.yaml")
    path.write_text(json.dumps(state))
    assert read_grid_state(path).suite == "v2"
    (tmp_path / "bad.yaml").write_text("base: base.yaml\nsuite: 'a b'\nrows: [{table: 1, row: a}]\n")
    with pytest.raises(G.GridError, match="suite: should be a name"):
        G.load_grid(tmp_path / "bad.yaml")


def test_the_full_report_adds_the_comparisons_of_its_suites_own_grids(tmp_path: Path) -> None:
    """aakit report (all tables) ends with the comparison table of every grid of the suite that
    declares compare: (the pilot here), and costs every grid of the suite; another suite's report
    leaves it out; a grid without compare: adds no comparison table."""
    from aakit.experiment import report as R

    results = make(tmp_path)
    state = read_json(results / "grids" / "pilot" / "grid.json")
    assert [t.label for t in CMP.suite_comparison_tables(results, "synthetic", None)] == ["Grid pilot"]
    assert CMP.suite_comparison_tables(results, "synthetic", "v9") == []
    assert CMP.suite_comparison_tables(results, "voc", None) == []
    said: list[str] = []
    R.cli_run(table=None, fmt="md", out=None, preset="synthetic", figures=False, results=results,
              echo=said.append, grids_dir=tmp_path / "no-grid-files", warn=lambda line: None)
    text = said[-1]
    assert text.index("**Claims.**") < text.index("**Grid pilot.**")
    assert "| AA helps | aa vs base | 3/3 | +4.5 ± 0.5 |" in text
    costs = text.split("**Grid costs.**")[1].split("**Grid pilot.**")[0]
    assert "| pilot | 9/9 | 9 | 0 |" in costs  # every grid of the suite has its wall time in the full report
    said.clear()
    R.cli_run(table=1, fmt="md", out=None, preset="synthetic", figures=False, results=results,
              echo=said.append, grids_dir=tmp_path / "no-grid-files", warn=lambda line: None)
    assert "Grid pilot" not in said[-1]  # one table asked for: that table only
    state["compare"] = None
    state["file"] = None
    (results / "grids" / "pilot" / "grid.json").write_text(json.dumps(state))
    assert CMP.suite_comparison_tables(results, "synthetic", None) == []



def test_a_grid_of_another_suite_is_costed_by_its_own_comparison_table(tmp_path: Path) -> None:
    """--compare NAME of a grid that says suite: lab shows what it cost (the default suite's
    index does not hold its points), and the default report leaves its comparisons out."""
    results = make(tmp_path, PILOT.replace("preset: synthetic\n", "preset: synthetic\nsuite: lab\n"))
    t = CMP.comparisons_table(results, "pilot")
    cost = t.blocks[-1]
    assert cost.caption == "Cost" and cost.rows[0][:2] == ["pilot", "9/9"]
    assert CMP.suite_comparison_tables(results, "synthetic", None) == []
    assert [x.label for x in CMP.suite_comparison_tables(results, "synthetic", "lab")] == ["Grid pilot"]


def test_a_grid_expanded_without_its_data_set_says_its_hashes_cannot_match(tmp_path: Path) -> None:
    """The report expands a grid that has not run from its file, hashing each point with its data
    set's digest; with the data set absent (a fresh clone has no data/) it says so in its notes,
    and once the data set is there it says nothing."""
    from aakit.data.synth import generate
    from aakit.experiment.results import load_results

    (tmp_path / "base.yaml").write_text(
        f"preset: synthetic\nmodel: {{backbone: small, num_classes: 5}}\ntrain: {{epochs: 1}}\n"
        f"data: {{root: {tmp_path / 'synth'}}}\n")
    grids = tmp_path / "grids"
    grids.mkdir()
    (grids / "g.yaml").write_text(PILOT.replace("base: base.yaml", "base: ../base.yaml"))
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    notes = load_results(results, "synthetic", grids).notes
    assert any(f"grid pilot has not run here and its data set {tmp_path / 'synth'} is absent" in n for n in notes)
    generate(tmp_path / "synth", n_train=4, n_val=2, version=2)
    assert not [n for n in load_results(results, "synthetic", grids).notes if "is absent" in n]


def test_a_grid_files_description_titles_its_comparisons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    text = PILOT.replace("order: seeds\n", "order: seeds\ndescription: >\n  Ours, not the paper's:\n  does AA beat SA?\n")
    results = make(tmp_path, text)
    assert read_json(results / "grids" / "pilot" / "grid.json")["description"] == "Ours, not the paper's: does AA beat SA?"
    code, out, _ = run_cli(["report", "--compare", "pilot", "--format", "md", "--results", str(results)],
                           monkeypatch, capsys)
    assert code == 0 and "Ours, not the paper's: does AA beat SA?" in out and "Comparisons of grid pilot" not in out
    (tmp_path / "plain").mkdir()
    results = make(tmp_path / "plain")  # no description: the grid's name
    code, out, _ = run_cli(["report", "--compare", "pilot", "--format", "md", "--results", str(results)],
                           monkeypatch, capsys)
    assert "Comparisons of grid pilot" in out


@pytest.mark.parametrize("value", ["[a, b]", "''", "3"])
def test_a_description_that_is_not_a_line_of_text_is_refused(tmp_path: Path, value: str) -> None:
    (tmp_path / "base.yaml").write_text("preset: synthetic\nmodel: {backbone: small, num_classes: 5}\n")
    (tmp_path / "pilot.yaml").write_text(PILOT.replace("order: seeds\n", f"order: seeds\ndescription: {value}\n"))
    with pytest.raises(G.GridError, match="description:"):
        G.load_grid(tmp_path / "pilot.yaml")


def test_report_figures_draw_each_grids_comparisons_as_a_forest(tmp_path: Path) -> None:
    """--figures draws grid_<name>_forest.png for a grid of the suite that declares compare:
    one line per comparison at its paired mean, coloured by its verdict, the paper's effect as an
    open square where the grid file gives one; another suite's figures leave it out."""
    from aakit.experiment import figures as F

    results = make(tmp_path)
    df, _ = CMP.evaluate_comparisons(results, "pilot")
    fig = F.comparisons_forest(df, "Ours: the pilot")
    ax = fig.axes[0]
    top_down = sorted(ax.get_yticklabels(), key=lambda t: -t.get_position()[1])
    assert [t.get_text() for t in top_down] == ["AA helps (n=3)", "sa beats base (n=3)", "aa beats sa (n=3)"]
    helps, sa_base, _ = ax.containers
    assert float(helps.lines[0].get_xdata()[0]) == pytest.approx(4.5)
    assert helps.lines[0].get_color() == F.OUTCOME_COLOURS["supported"]
    assert sa_base.lines[0].get_color() == F.OUTCOME_COLOURS["opposite"]
    paper = [line for line in ax.lines if line.get_marker() == "s"]
    assert len(paper) == 1 and float(paper[0].get_xdata()[0]) == 3.2  # only "AA helps" has a paper_effect
    assert ax.get_title() == "Ours: the pilot"
    out = tmp_path / "figures"
    written = F.make_figures(results, out, preset="synthetic", grids_dir=tmp_path / "no-grid-files")
    assert out / "grid_pilot_forest.png" in written and (out / "grid_pilot_forest.png").stat().st_size > 0
    other = F.make_figures(results, tmp_path / "v9", preset="synthetic", grids_dir=tmp_path / "no-grid-files",
                           suite="v9")
    assert not any(p.name.startswith("grid_") for p in other)
    assert F.comparisons_forest(df.assign(paired=1), "x") is None
