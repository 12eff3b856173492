"""The paper's claims judged on stored runs with paired intervals: supported / opposite /
smaller than the paper's / inconclusive / not run (issue 14 replaced the unpaired spread rule)."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from experiment_fakes import write_run  # noqa: E402

from aakit.experiment import claims as C  # noqa: E402
from aakit.experiment import grid as G  # noqa: E402
from aakit.experiment import report as R  # noqa: E402
from aakit.experiment.stats import seeds_for_halfwidth  # noqa: E402

T1 = """\
name: c-table1
base: ../base.yaml
preset: synthetic
seeds: [0, 1, 2]
rows:
  - {table: 1, row: CLS+CE, set: {loss.affinity: none, loss.label_reassign: false}}
  - {table: 1, row: CLS+CE+AA, set: {loss.affinity: aa, loss.label_reassign: false}}
  - {table: 1, row: CLS+CE+AA+LR, set: {loss.affinity: aa, loss.label_reassign: true}}
  - {table: 1, row: CLS+CE+AA+LR+rfpc, set: {loss.affinity: aa, loss.label_reassign: true}, metric: val_rfpc}
"""
T3 = """\
name: c-table3
base: ../base.yaml
preset: synthetic
seeds: [0, 1]
table: 3
row: "{loss.weighting}"
set: {loss.affinity: aa, loss.label_reassign: false}
axes: {loss.weighting: [max, min, mean]}
"""

# val mIoU per (row, seed): AA clearly above CLS+CE; LR within the spread of AA (one seed
# worse); Table 3: max (the same config as Table 1's +AA, so its runs are reused: 45, 47)
# beats mean clearly but loses to min clearly.
VALUES = {
    ("c-table1", "CLS+CE"): [0.40, 0.41, 0.42],
    ("c-table1", "CLS+CE+AA"): [0.45, 0.47, 0.46],
    ("c-table1", "CLS+CE+AA+LR"): [0.47, 0.46, 0.475],
    ("c-table3", "min"): [0.55, 0.56],
    ("c-table3", "mean"): [0.40, 0.41],
}


def setup(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "exp"
    grids = root / "grids"
    grids.mkdir(parents=True)
    (root / "base.yaml").write_text(
        f"preset: synthetic\nmodel: {{backbone: small, num_classes: 5}}\ntrain: {{epochs: 1}}\n"
        f"data: {{root: {tmp_path / 'synth'}}}\n")
    (grids / "t1.yaml").write_text(T1)
    (grids / "t3.yaml").write_text(T3)
    results = tmp_path / "results"
    done: set[str] = set()
    for f in ("t1.yaml", "t3.yaml"):
        for p in G.load_grid(grids / f).points:
            vals = VALUES.get((G.load_grid(grids / f).name, p.row))
            if vals is None or p.run_name in done:
                continue
            done.add(p.run_name)
            write_run(results, p.config, p.run_name, val=vals[p.seed])
    return results, grids


def by_comparison(df: pd.DataFrame) -> dict[tuple[str, str], dict]:
    return {(r["winner"], r["other"]): r for r in df.to_dict("records")}


def test_each_verdict_from_the_paired_interval(tmp_path: Path) -> None:
    results, grids = setup(tmp_path)
    df = C.evaluate_claims(results, "synthetic", grids)
    rows = by_comparison(df)
    t2 = 4.302652729911275  # t_{0.975, 2}: three paired seeds

    aa = rows[("CLS+CE+AA", "CLS+CE")]  # per-seed differences 5, 6, 4
    assert aa["diff"] == pytest.approx(5.0) and aa["paired_std"] == pytest.approx(1.0)
    assert (aa["ci_low"], aa["ci_high"]) == (pytest.approx(5 - t2 / 3**0.5), pytest.approx(5 + t2 / 3**0.5))
    assert (aa["outcome"], aa["wins"], aa["paired"], aa["winner_n"]) == ("supported", 3, 3, 3)
    assert aa["paper_diff"] == 3.2  # as the paper prints it, not 3.200000000000003
    assert [(p["seed"], p["winner"], p["loser"]) for p in aa["pairs"]] == [(0, pytest.approx(45.0), pytest.approx(40.0)),
                                                                         (1, pytest.approx(47.0), pytest.approx(41.0)),
                                                                         (2, pytest.approx(46.0), pytest.approx(42.0))]

    lr = rows[("CLS+CE+AA+LR", "CLS+CE+AA")]  # 2, -1, 1.5: the interval holds 0 and the paper's +0.7
    assert lr["paired_mean"] == pytest.approx(0.8333, abs=1e-3) and lr["paired_std"] == pytest.approx(1.6073, abs=1e-3)
    assert lr["outcome"] == "inconclusive" and lr["wins"] == 2 and lr["ci_low"] < 0 < 0.7 < lr["ci_high"]

    # the rfpc row reads val_rfpc of the same runs (the fakes add 2 points): no spread at all
    rfpc = rows[("CLS+CE+AA+LR+rfpc", "CLS+CE+AA+LR")]
    assert rfpc["diff"] == pytest.approx(2.0) and rfpc["outcome"] == "supported" and rfpc["wins"] == 3

    # Table 3 with two seeds: max - mean = 5, 6 (t_{0.975,1} = 12.7 makes the interval hold 0);
    # max - min = -10, -11 (below 0 all the same) -> the claim is opposite
    assert rows[("max", "mean")]["outcome"] == "inconclusive" and rows[("max", "mean")]["ci_low"] < 0
    assert rows[("max", "min")]["outcome"] == "opposite"
    assert set(df[df["claim"] == "T3-max"]["claim_outcome"]) == {"opposite"}

    # grids that never ran: not run, never judged
    assert set(df[df["table"].isin([2, 4])]["outcome"]) == {"not run"}


def test_one_seed_is_inconclusive_not_a_verdict() -> None:
    r = C.compare({0: (60.0, "a", 0.6)}, {0: (50.0, "b", 0.5)}, 3.0)
    assert r["diff"] == pytest.approx(10.0) and r["ci_low"] is None and r["outcome"] == "inconclusive"
    assert C.compare({}, {0: (50.0, "b", 0.5)})["outcome"] == "not run"
    assert C.combine(["supported", "inconclusive"]) == "inconclusive"
    assert C.combine(["supported", "supported"]) == "supported"
    assert C.combine(["supported", "smaller than the paper's"]) == "smaller than the paper's"
    assert C.combine(["smaller than the paper's", "opposite"]) == "opposite"



def test_claims_in_words_state_the_interval_its_width_and_where_the_paper_falls(tmp_path: Path) -> None:
    results, grids = setup(tmp_path)
    words = dict(C.claims_in_words(C.evaluate_claims(results, "synthetic", grids)))
    half = 4.302652729911275 / 3**0.5  # AA - CLS+CE: 5, 6, 4 -> sd 1, three seeds
    assert words["T1: AA improves the CLS+CE baseline"] == (
        f"supported: CLS+CE+AA vs CLS+CE: +5.0 points, 95 % CI [{5 - half:+.1f}, {5 + half:+.1f}] "
        f"(±{half:.1f}: wider than ±1.0; about {seeds_for_halfwidth(1.0)} seeds would reach it), 3 seeds, "
        "ahead on 3; the paper's +3.2 is inside the interval")
    # rfpc: +2 on every seed, an interval of zero width that excludes the paper's +1.9
    assert words["T1: rfpc at evaluation adds more"].endswith("(±0.0), 3 seeds, ahead on 3; the paper's +1.9 is below it")
    assert "the paper's +0.7 is inside the interval" in words["T1: LR improves it further"]
    assert words["T3: max weighting beats mean and min"].startswith("opposite: max vs mean: +5.5 points")
    assert words["T4: gamma 2 is the best concentration"] == "not run"


def test_claims_json_lists_pairs_whose_differences_give_the_interval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import statistics

    from scipy import stats as sps

    results, grids = setup(tmp_path)
    said: list[str] = []
    R.cli_run(table=None, fmt="json", out=None, preset="synthetic", figures=False, results=results,
              echo=said.append, grids_dir=grids, claims=True)
    items = json.loads(said[-1])
    assert {"claim", "paper_effect", "n", "mean_diff", "ci_low", "ci_high", "verdict", "pairs"} <= set(items[0])
    for it in items:
        diffs = [p["winner"] - p["loser"] for p in it["pairs"]]  # points, as the differences
        assert it["n"] == len(diffs) and it["unit"] == "val mIoU points (0-100)"
        assert all(1 < p["winner"] <= 100 for p in it["pairs"]), "per-seed values in points, not fractions"
        assert it["paper_effect"] is None or it["paper_effect"] == round(it["paper_effect"], 1)
        if len(diffs) >= 2 and statistics.stdev(diffs) > 0:
            lo, hi = sps.t.interval(0.95, len(diffs) - 1, loc=statistics.mean(diffs), scale=sps.sem(diffs))
            assert (it["mean_diff"], it["ci_low"], it["ci_high"]) == (pytest.approx(statistics.mean(diffs)),
                                                                      pytest.approx(lo), pytest.approx(hi))
            assert it["seeds_needed"] == seeds_for_halfwidth(statistics.stdev(diffs))
        elif len(diffs) < 2:
            assert it["seeds_needed"] is None
    with pytest.raises(R.ReportError, match="--format json: only with --claims"):
        R.cli_run(table=None, fmt="json", out=None, preset="synthetic", figures=False, results=results,
                  echo=said.append, grids_dir=grids)


def test_the_report_shows_the_claims_after_the_tables(tmp_path: Path) -> None:
    results, grids = setup(tmp_path)
    said: list[str] = []
    R.cli_run(table=None, fmt="md", out=None, preset="synthetic", figures=False, results=results,
              echo=said.append, grids_dir=grids)
    md = said[-1]
    assert md.index("**Table 6.**") < md.index("**Claims.**")
    assert ("| T1: AA improves the CLS+CE baseline | CLS+CE+AA vs CLS+CE | 46.0 ± 1.0 | 41.0 ± 1.0 | 3/3 | +5.0 ± 1.0 "
            "| [+2.5, +7.5] | 3.1 | 7 | +3.2 | — | supported | supported |") in md

    said.clear()
    R.cli_run(table=None, fmt="csv", out=None, preset="synthetic", figures=False, results=results,
              echo=said.append, grids_dir=grids, claims=True)
    csv = pd.read_csv(io.StringIO(said[-1]))
    assert list(csv.columns) == C.CLAIM_COLUMNS and len(csv) == sum(len(c.others) for c in C.CLAIMS)

    out = tmp_path / "report"
    R.cli_run(table=None, fmt="md", out=out, preset="synthetic", figures=False, results=results,
              echo=said.append, grids_dir=grids)
    assert "opposite" in (out / "claims.md").read_text()


def test_grid_costs_count_own_runs_reused_units_and_the_shared_pretraining(tmp_path: Path) -> None:
    import json

    from aakit.experiment.costs import costs_table, grid_costs

    results, grids = setup(tmp_path)
    runs = results / "runs"
    pre = runs / "synth-cls-abcd1234"
    pre.mkdir()
    (pre / "config.yaml").write_text("name: synth-cls\n")  # without it the run would be corrupt
    (pre / "summary.json").write_text(json.dumps({"status": "finished", "hash": "abcd1234", "wall_time_s": 500.0}))
    (pre / "provenance.json").write_text(json.dumps({"created": 0.0, "host": "h1"}))
    t1 = sorted(runs.glob("c-table1-*"))
    for i, run in enumerate(t1):  # 9 runs of 100 s, one after the other from t = 1000
        s = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps(s | {"wall_time_s": 100.0}))
        (run / "provenance.json").write_text(json.dumps(
            {"created": 1000.0 + 100 * i, "host": "h1", "init": "checkpoint results/runs/synth-cls-abcd1234/checkpoints/last.pt"}))
    df = grid_costs(results, "synthetic", grids).set_index("grid")
    assert len(t1) == 9
    r = df.loc["c-table1"]
    assert (r["units"], r["done"], r["trained"], r["reused"]) == (9, 9, 9, 0)
    assert r["compute_s"] == pytest.approx(900.0) and r["span_s"] == pytest.approx(900.0) and r["hosts"] == "h1"
    r = df.loc["c-table3"]  # "max" is Table 1's +AA (same hash): reused, not trained again
    assert (r["units"], r["done"], r["trained"], r["reused"]) == (6, 6, 4, 2)
    assert df.loc["pre-training synth-cls-abcd1234 (shared)", "compute_s"] == pytest.approx(500.0)
    rows = {r[0]: r for r in costs_table(results, "synthetic", grids).blocks[0].rows}
    assert rows["c-table1"][1:5] == ["9/9", "9", "0", "0:15:00"]


def test_into_replaces_only_the_marked_block(tmp_path: Path) -> None:
    results, grids = setup(tmp_path)
    doc = tmp_path / "reproduction.md"
    doc.write_text(f"# Hand-written title\n\nintro\n\n{R.BEGIN_MARK}\nold tables\n{R.END_MARK}\n\nhand-written end\n")
    said: list[str] = []
    run = dict(table=None, fmt="md", out=None, preset="synthetic", figures=False, results=results,
               echo=said.append, grids_dir=grids)
    R.cli_run(into=doc, **run)
    text = doc.read_text()
    assert text.startswith("# Hand-written title\n\nintro\n\n") and text.endswith("hand-written end\n")
    assert "old tables" not in text and "**Table 1.**" in text and "**Claims.**" in text and "**Grid costs.**" in text
    block = R.marked_block(doc)
    R.cli_run(into=doc, **run)  # idempotent
    assert R.marked_block(doc) == block and doc.read_text() == text

    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    with pytest.raises(R.ReportError, match="needs one line"):
        R.cli_run(into=plain, **run)
    assert plain.read_text() == "no markers\n"
    with pytest.raises(R.ReportError, match="--format md"):
        R.cli_run(into=doc, **(run | {"fmt": "csv"}))


def test_the_demo_ends_with_the_stored_multi_seed_answer_not_a_typed_one(tmp_path: Path) -> None:
    """Issue 33: `make demo` says what one epoch cannot show and the stored paired result."""
    from aakit.engine.demo import what_the_demo_shows

    results, grids = setup(tmp_path)
    t1 = next(c for c in C.claims_json(results, "synthetic", grids) if c["claim"] == "T1-AA")
    text = "\n".join(what_the_demo_shows(results, grids))
    assert "cannot show: whether the method helps" in text
    assert (f"{t1['mean_diff']:+.1f} points, 95 % interval [{t1['ci_low']:+.1f}, {t1['ci_high']:+.1f}]" in text
            and f"({t1['n']} seeds" in text), text
    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    assert "docs/reproduction.md (no stored runs" in "\n".join(what_the_demo_shows(empty, grids))


T2 = """\
name: c-table2
base: ../base.yaml
preset: synthetic
seeds: [0, 1, 2]
table: 2
set: {loss.label_reassign: false}
rows:
  - {row: SA 12-24-36, set: {loss.affinity: sa, loss.dilations: [12, 24, 36]}}
  - {row: AA 12-24-36, set: {loss.affinity: aa, loss.dilations: [12, 24, 36]}}
  - {row: SA 4-8-12, set: {loss.affinity: sa, loss.dilations: [4, 8, 12]}}
  - {row: AA 4-8-12, set: {loss.affinity: aa, loss.dilations: [4, 8, 12]}}
"""


def test_a_comparison_whose_stored_mechanism_is_below_one_percent_is_not_engaged_here(tmp_path: Path) -> None:
    """Issue 28: Table 2's AA vs SA comparisons whose grid's mechanism.json (aakit grid --preflight
    --store) measured the two objectives < 1 % apart are "not engaged here", with their share and
    its unit; the interval, still from the pairs, is kept as interval_verdict. A share of 1 % or
    more leaves the interval's verdict; a grid without the file, too (mechanism not measured)."""
    import json
    import statistics

    from scipy import stats as sps

    from aakit.experiment.mechanisms import GRAD_UNIT, NOT_ENGAGED, write_mechanism

    results, grids = setup(tmp_path)
    (grids / "t2.yaml").write_text(T2)
    values = {"SA 12-24-36": [0.50, 0.52, 0.51], "AA 12-24-36": [0.51, 0.52, 0.53],
              "SA 4-8-12": [0.50, 0.51, 0.52], "AA 4-8-12": [0.53, 0.55, 0.54]}
    for p in G.load_grid(grids / "t2.yaml").points:
        write_run(results, p.config, p.run_name, val=values[p.row][p.seed])
    entry = {"table": 2, "claim": "T2-12-24-36", "winner": "AA 12-24-36", "other": "SA 12-24-36",
             "grad_share": 0.0002, "grad_cos": 1.0, "reason": None, "seed": 0}
    write_mechanism(results, "c-table2", {
        "grid": "c-table2", "threshold": 0.01, "start": {"weights": "random initialisation", "untrained": True},
        "comparisons": [entry, entry | {"claim": "T2-4-8-12", "winner": "AA 4-8-12", "other": "SA 4-8-12",
                                        "grad_share": 0.04}]})
    said: list[str] = []
    R.cli_run(table=None, fmt="json", out=None, preset="synthetic", figures=False, results=results,
              echo=said.append, grids_dir=grids, claims=True)
    items = {it["comparison"]: it for it in json.loads(said[-1])}
    off, on = items["AA 12-24-36 vs SA 12-24-36"], items["AA 4-8-12 vs SA 4-8-12"]
    assert off["verdict"] == off["claim_verdict"] == NOT_ENGAGED and off["interval_verdict"] == "inconclusive"
    assert off["mechanism"]["grad_share"] == 0.0002 and off["mechanism"]["engaged"] is False
    assert off["mechanism"]["unit"] == GRAD_UNIT and off["unit"] == "val mIoU points (0-100)"
    assert off["mechanism"]["source"] == "results/grids/c-table2/mechanism.json"
    assert on["verdict"] == on["interval_verdict"] == "supported" and on["mechanism"]["engaged"] is True
    assert items["CLS+CE+AA vs CLS+CE"]["mechanism"]["grad_share"] is None  # its grid has no mechanism.json
    assert items["CLS+CE+AA vs CLS+CE"]["verdict"] == "supported"
    for it in (off, on):  # every interval still follows from its pairs
        diffs = [p["winner"] - p["loser"] for p in it["pairs"]]
        lo, hi = sps.t.interval(0.95, len(diffs) - 1, loc=statistics.mean(diffs), scale=sps.sem(diffs))
        assert (it["n"], it["ci_low"], it["ci_high"]) == (3, pytest.approx(lo), pytest.approx(hi))
    # the words and the tables say what was tested
    df = C.evaluate_claims(results, "synthetic", grids)
    words = dict(C.claims_in_words(df))["T2: AA beats SA with dilations 12-24-36"]
    assert words.startswith("not engaged here: AA 12-24-36 vs SA 12-24-36: +1.0 points")
    assert "differ by 0.02 % of the gradient" in words and "(by itself inconclusive)" in words
    from aakit.experiment.tables import render_md

    table = render_md(C.claims_table(results, "synthetic", grids))
    assert "| — | 0.02 % | not engaged here | not engaged here |" in table and "| 4 % | supported |" in table
    assert "1 not engaged here" in C.claims_tally(df)


def test_not_engaged_combines_after_opposite() -> None:
    assert C.combine(["supported", "not engaged here"]) == "not engaged here"
    assert C.combine(["not engaged here", "opposite"]) == "opposite"
    assert C.combine(["not engaged here", "smaller than the paper's"]) == "not engaged here"
    assert C.combine(["not engaged here", "not run"]) == "not run"
    r = C.compare({0: (60.0, "a", 0.6), 1: (61.0, "c", 0.61)}, {0: (50.0, "b", 0.5), 1: (50.5, "d", 0.505)})
    assert C.judged(r, {"engaged": False})["outcome"] == "not engaged here"
    assert C.judged(r, {"engaged": None})["outcome"] == r["outcome"] == "supported"
    assert C.judged(C.compare({}, {}), {"engaged": False})["outcome"] == "not run"


def test_a_pair_whose_runs_began_from_other_pre_trained_checkpoints_is_marked_and_said(tmp_path: Path) -> None:
    """A grid resumed on another machine trains a seed's remaining rows from a pre-training
    trained again there (other bits): the claims mark each such pair and say how many there are."""
    import json

    results, grids = setup(tmp_path)
    runs = results / "runs"
    df = C.evaluate_claims(results, "synthetic", grids)
    aa = by_comparison(df)[("CLS+CE+AA", "CLS+CE")]
    assert [p["same_start"] for p in aa["pairs"]] == [None] * 3  # no record: unknown, not a mismatch
    for p in aa["pairs"]:
        for run, sha in ((p["winner_run"], "a"), (p["loser_run"], "b" if p["seed"] == 2 else "a")):
            (runs / run / "provenance.json").write_text(json.dumps({"init_checkpoint": {"sha256": sha * 64}}))
    df = C.evaluate_claims(results, "synthetic", grids)
    aa = by_comparison(df)[("CLS+CE+AA", "CLS+CE")]
    assert [p["same_start"] for p in aa["pairs"]] == [True, True, False]
    words = dict(C.claims_in_words(df))["T1: AA improves the CLS+CE baseline"]
    assert words.endswith("; 1 of 3 pairs began from different pre-trained checkpoints (a pre-training trained "
                          "again on another processor), which their differences hold too")
    item = next(i for i in C.claims_json(results, "synthetic", grids) if i["comparison"] == "CLS+CE+AA vs CLS+CE")
    assert [p["same_start"] for p in item["pairs"]] == [True, True, False]
    assert "pairs began" not in dict(C.claims_in_words(df))["T1: LR improves it further"]  # its +LR runs record none
