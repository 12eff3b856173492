"""docs/reproduction.md is what the committed runs give, and the committed runs are complete.

These tests read ``results/`` of the repository (run summaries and grid states committed by
the reproduction of issue 8); they train nothing.
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

pytestmark = pytest.mark.skipif(not (RESULTS / "grids").is_dir(), reason="no committed grid results")


def regenerated() -> str:
    said: list[str] = []
    R.cli_run(table=None, fmt="md", out=None, preset="synthetic", figures=False, results=RESULTS,
              echo=said.append, grids_dir=GRIDS)
    return said[-1].strip()


def test_the_page_is_what_the_committed_runs_give() -> None:
    assert R.marked_block(DOC) == regenerated(), "refresh: aakit report --format md --into docs/reproduction.md"


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


def test_table1_is_complete_with_at_least_three_seeds() -> None:
    t = R.build_table(1, results=RESULTS, preset="synthetic", grids_dir=GRIDS)
    val = t.long[t.long["column"] == "val"].set_index("row")
    for row in ("CLS+CE", "CLS+CE+AA", "CLS+CE+AA+LR", "CLS+CE+AA+LR+rfpc"):
        assert val.loc[row, "n_runs"] == val.loc[row, "n_expected"] >= 3, row


def test_every_claim_that_ran_has_a_verdict_and_its_numbers() -> None:
    df = evaluate_claims(RESULTS, "synthetic", GRIDS)
    assert set(df["claim"]) == {c.key for c in CLAIMS}
    ran = df[df["outcome"] != "not run"]
    assert len(ran) and ran["diff"].notna().all()
    assert set(ran["outcome"]) <= {"supported", "opposite", "smaller than the paper's", "inconclusive"}


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
