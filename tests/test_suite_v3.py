"""Report suite ``v3``: the pre-registered grids of benchmark version 3 (experiments/grids/v3/,
docs/benchmark.md "Version 3") fill the paper's Tables 1-4 in their own suite, never version 2's.
Trains nothing."""
from __future__ import annotations

from pathlib import Path

import pytest

from aakit.experiment.grid import load_grid
from aakit.experiment.results import collect_points

REPO = Path(__file__).resolve().parents[1]
GRIDS = REPO / "experiments" / "grids"
V3 = sorted((GRIDS / "v3").glob("*.yaml"))


@pytest.fixture(scope="module")
def v3_points() -> list:
    points, _ = collect_points(REPO / "results", "synthetic", GRIDS, "v3")
    return points


def test_every_v3_grid_is_in_suite_v3_on_the_v3_data_seed_by_seed() -> None:
    assert {f.stem for f in V3} >= {"table1", "table2", "table3", "table4", "vsource"}
    for f in V3:
        g = load_grid(f)
        assert g.suite == "v3" and g.name.startswith("v3-"), f
        assert sorted({p.seed for p in g.points}) == list(range(20)), f
        assert [p.seed for p in g.points[:3]] == [0, 0, 0], f"{f}: order: seeds (every row of seed 0 first)"
        assert all(p.config.data.root == "data/synth-v3" for p in g.points), f


def test_suite_v3_fills_tables_1_to_4_and_the_default_suite_holds_none_of_it(v3_points: list) -> None:
    tables = {p.table for p in v3_points}
    assert {1, 2, 3, 4} <= tables
    assert {p.grid for p in v3_points} == {load_grid(f).name for f in V3}
    rows4 = {p.row for p in v3_points if p.table == 4}
    assert rows4 == {"gamma=0", "gamma=0.5", "gamma=1", "gamma=2", "gamma=5"}
    default, _ = collect_points(REPO / "results", "synthetic", GRIDS, None)
    assert not any(p.grid.startswith("v3-") for p in default)
    assert not ({p.hash for p in default} & {p.hash for p in v3_points}), "v3 runs are other runs than v2's"


def test_shared_rows_are_one_training(v3_points: list) -> None:
    """+AA of Table 1 is Table 2's AA 4-8-12-24, Table 3's max and the V-source table's AA-cam;
    +AA+LR is Table 4's gamma=2 (the same config hashes, so each is trained once)."""
    by = {}
    for p in v3_points:
        by.setdefault((p.grid, p.row, p.seed), p.hash)
    for s in (0, 19):
        aa = by[("v3-table1", "CLS+CE+AA", s)]
        assert aa == by[("v3-table2", "AA 4-8-12-24", s)] == by[("v3-table3", "max", s)] == by[("v3-vsource", "AA-cam", s)]
        assert by[("v3-table1", "CLS+CE+AA+LR", s)] == by[("v3-table4", "gamma=2", s)]
        assert by[("v3-table2", "SA 4-8-12-24", s)] == by[("v3-vsource", "SA", s)]
        assert by[("v3-table4", "gamma=0 rescaled", s)] != by[("v3-table4", "gamma=0", s)]
