"""docs/reproduction.md (benchmark version 2) and docs/reproduction-v1.md (the record of version
1, report suite ``v1``) are what the committed runs give, and the committed runs are complete.

These tests read ``results/`` of the repository (run summaries and grid states committed by the
reproductions of issues 8 and 17 and the pilot of issue 14); they train nothing.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from aakit.experiment import report as R
from aakit.experiment.claims import CLAIMS, evaluate_claims

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
GRIDS = REPO / "experiments" / "grids"
DOC = REPO / "docs" / "reproduction.md"
DOC_V1 = REPO / "docs" / "reproduction-v1.md"

pytestmark = pytest.mark.skipif(not (RESULTS / "grids").is_dir(), reason="no committed grid results")


def regenerated(suite: str | None = None) -> str:
    said: list[str] = []
    R.cli_run(table=None, fmt="md", out=None, preset="synthetic", figures=False, results=RESULTS,
              echo=said.append, grids_dir=GRIDS, suite=suite, warn=lambda line: None)
    return said[-1].strip()


def test_the_page_is_what_the_committed_runs_give() -> None:
    assert R.marked_block(DOC) == regenerated(), "refresh: aakit report --format md --into docs/reproduction.md"


def test_the_version1_page_is_what_its_committed_runs_give() -> None:
    assert R.marked_block(DOC_V1) == regenerated("v1"), \
        "refresh: aakit report --suite v1 --format md --into docs/reproduction-v1.md"


def test_the_page_shows_the_pilot_and_the_v_source_question_beside_the_tables() -> None:
    """The default report (version 2) carries the comparisons of the suite's own grids after the
    paper's tables: the pilot's dose response, and the V-source table of ours once it has run."""
    block = R.marked_block(DOC)
    assert "**Table 1.**" in block and "**Claims.**" in block and "**Grid v2-pilot.**" in block
    if (RESULTS / "grids" / "v2-vsource" / "grid.json").is_file():
        assert "**Grid v2-vsource.** Ours, not the paper's" in block  # marked as the question of ours
    assert "**Grid v2-pilot.**" not in R.marked_block(DOC_V1)


def test_the_pilot_block_is_what_the_committed_runs_give() -> None:
    """docs/benchmark.md's pilot results are aakit report --compare v2-pilot of the committed runs."""
    if not (RESULTS / "grids" / "v2-pilot" / "grid.json").is_file():
        pytest.skip("no committed pilot")
    said: list[str] = []
    R.cli_run(table=None, fmt="md", out=None, preset="synthetic", figures=False, results=RESULTS,
              echo=said.append, grids_dir=GRIDS, compare="v2-pilot")
    doc = REPO / "docs" / "benchmark.md"
    assert R.marked_block(doc) == said[-1].strip(), \
        "refresh: aakit report --compare v2-pilot --format md --into docs/benchmark.md"


def _table1_val(suite: str | None):
    from aakit.experiment.results import load_results

    index = load_results(RESULTS, "synthetic", GRIDS, suite)
    t = R.build_table(1, results=RESULTS, preset="synthetic", grids_dir=GRIDS, index=index)
    return t.long[t.long["column"] == "val"].set_index("row")


def test_version1_table1_is_complete_with_at_least_three_seeds() -> None:
    val = _table1_val("v1")
    for row in ("CLS+CE", "CLS+CE+AA", "CLS+CE+AA+LR", "CLS+CE+AA+LR+rfpc"):
        assert val.loc[row, "n_runs"] == val.loc[row, "n_expected"] >= 3, row


def test_version2_table1_is_complete_and_every_interval_within_one_point() -> None:
    """Issue 17's bar: all 20 declared seeds of every Table 1 row are committed, and each Table 1
    comparison's paired 95 % interval is no wider than +-1.0 point."""
    val = _table1_val(None)
    for row in ("CLS+CE", "CLS+CE+AA", "CLS+CE+AA+LR", "CLS+CE+AA+LR+rfpc"):
        assert val.loc[row, "n_expected"] == val.loc[row, "n_runs"] == 20, row
    t1 = evaluate_claims(RESULTS, "synthetic", GRIDS).query("table == 1")
    assert len(t1) == 3 and (t1["paired"] == 20).all()
    assert ((t1["ci_high"] - t1["ci_low"]) / 2 <= 1.0).all(), t1[["winner", "ci_low", "ci_high"]]


def test_every_claim_that_ran_has_a_verdict_and_its_numbers() -> None:
    df = evaluate_claims(RESULTS, "synthetic", GRIDS)
    assert set(df["claim"]) == {c.key for c in CLAIMS}
    ran = df[df["outcome"] != "not run"]
    assert len(ran) and ran["diff"].notna().all()
    assert set(ran["outcome"]) <= {"supported", "opposite", "smaller than the paper's", "inconclusive",
                                   "not engaged here"}


def test_the_claims_say_what_the_committed_comparisons_tested() -> None:
    """Issue 28: the committed grids' mechanism (results/grids/*/mechanism.json, written by aakit
    grid FILE --preflight --store; nothing retrained) marks Table 2's AA vs SA comparisons "not
    engaged here" with their measured share, names its units, and every interval still follows
    from its pairs."""
    import json
    import statistics

    from scipy import stats as sps

    from aakit.experiment.claims import UNIT

    said: list[str] = []
    R.cli_run(table=None, fmt="json", out=None, preset="synthetic", figures=False, results=RESULTS,
              echo=said.append, grids_dir=GRIDS, claims=True, warn=lambda line: None)
    items = json.loads(said[-1])
    t2 = [it for it in items if it["table"] == 2]
    assert len(t2) == 4
    for it in t2:
        mech = it["mechanism"]
        assert it["verdict"] == it["claim_verdict"] == "not engaged here", it["comparison"]
        assert 0 <= mech["grad_share"] < 0.01 and mech["engaged"] is False and mech["unit"].startswith("fraction")
        assert mech["source"] == "results/grids/v2-table2/mechanism.json" and it["unit"] == UNIT
        assert it["interval_verdict"] in ("smaller than the paper's", "inconclusive")
    aa = next(it for it in items if it["claim"] == "T1-AA")
    assert aa["verdict"] == "supported" and aa["mechanism"]["engaged"] is True
    for it in items:
        diffs = [p["winner"] - p["loser"] for p in it["pairs"]]
        if len(diffs) >= 2 and statistics.stdev(diffs) > 0:
            lo, hi = sps.t.interval(0.95, len(diffs) - 1, loc=statistics.mean(diffs), scale=sps.sem(diffs))
            assert (it["mean_diff"], it["ci_low"], it["ci_high"]) == (pytest.approx(statistics.mean(diffs)),
                                                                      pytest.approx(lo), pytest.approx(hi))


def test_committed_runs_stay_readable_under_the_new_run_identity() -> None:
    """Issue 12 changed what a run's hash covers (the data set by digest, not by path; no worker
    counts): the committed runs keep loading, are listed as finished, and a run is still
    checked against the hash it was created under."""
    from aakit.config import load_config
    from aakit.engine.rundir import recorded_hash
    from aakit.runs import list_runs

    runs = sorted(p for p in (RESULTS / "runs").iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(runs) >= 50
    for run in runs:
        cfg = load_config(run / "config.yaml")
        assert recorded_hash(run, cfg) == run.name.rsplit("-", 1)[1], run.name
    listed = {r.path.name: r.status for r in list_runs(RESULTS)}
    assert {listed[r.name] for r in runs} == {"finished"}
