"""Paired statistics of the claims (issue 14): intervals, detectable effect, verdicts."""
from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from aakit.experiment.stats import (
    INCONCLUSIVE, OPPOSITE, SMALLER, SUPPORTED, min_detectable_effect, paired_comparison, seeds_for_halfwidth,
    t_interval, verdict,
)


def test_t_interval_matches_scipy() -> None:
    diffs = [1.2, 0.4, 2.0, 0.9, 1.5, -0.2]
    mean, sd, low, high = t_interval(diffs)
    lo, hi = sps.t.interval(0.95, len(diffs) - 1, loc=sps.tmean(diffs), scale=sps.sem(diffs))
    assert mean == pytest.approx(sum(diffs) / 6) and sd == pytest.approx(sps.tstd(diffs))
    assert (low, high) == (pytest.approx(lo), pytest.approx(hi))


def test_too_few_pairs_give_no_interval_and_no_verdict() -> None:
    r = paired_comparison([0.5], paper_effect=3.2)
    assert r.n == 1 and r.mean_diff == 0.5 and math.isnan(r.ci_low) and math.isnan(r.mde)
    assert r.verdict == INCONCLUSIVE and paired_comparison([], 1.0).verdict == INCONCLUSIVE


@pytest.mark.parametrize("diffs, paper, want", [
    ([1.0, 1.2, 0.8, 1.1, 0.9], 3.2, SUPPORTED),          # interval above 0
    ([-1.0, -1.2, -0.8, -1.1, -0.9], 3.2, OPPOSITE),      # below 0
    ([0.3, -0.2, 0.1, -0.1, 0.2], 3.2, SMALLER),          # contains 0, excludes the paper's 3.2
    ([0.3, -0.2, 0.1, -0.1, 0.2], 0.1, INCONCLUSIVE),     # contains 0 and the paper's 0.1
    ([3.0, -2.0, 4.0, -3.0, 2.0], 3.2, INCONCLUSIVE),     # too wide to exclude either
])
def test_verdicts(diffs: list[float], paper: float, want: str) -> None:
    assert paired_comparison(diffs, paper).verdict == want


def test_verdict_without_a_paper_effect_never_says_smaller() -> None:
    assert verdict(-0.1, 0.1, None) == INCONCLUSIVE and verdict(-0.1, 0.1, -2.0) == INCONCLUSIVE


def test_min_detectable_effect_shrinks_with_seeds_and_matches_the_formula() -> None:
    sd = 2.2
    mde6, mde21 = min_detectable_effect(sd, 6), min_detectable_effect(sd, 21)
    assert mde21 < mde6
    assert mde6 == pytest.approx((sps.t.ppf(0.975, 5) + sps.t.ppf(0.8, 5)) * sd / math.sqrt(6))


def test_seeds_needed_is_the_fewest_whose_interval_is_within_one_point() -> None:
    for sd in (0.34, 1.33, 1.99, 2.2):
        n = seeds_for_halfwidth(sd)
        assert sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n) <= 1.0 < sps.t.ppf(0.975, n - 2) * sd / math.sqrt(n - 1)
    assert seeds_for_halfwidth(1.99) == 18 and seeds_for_halfwidth(0.34) == 3  # the v2 pilot's Table 1 pairs
    assert seeds_for_halfwidth(math.nan) is None and seeds_for_halfwidth(500.0, most=50) is None
    diffs = [3.9, 0.5, 4.6, 1.2, 2.4]  # an interval of +-2.6: more seeds wanted
    r = paired_comparison(diffs, 3.2)
    assert r.seeds_needed == seeds_for_halfwidth(r.sd) > len(diffs)
    assert paired_comparison([0.5], 3.2).seeds_needed is None


def test_two_way_split_adds_up_and_finds_a_seed_effect() -> None:
    import numpy as np

    from aakit.experiment.variance import bootstrap_variance, two_way

    rng = np.random.default_rng(1)
    seed = rng.normal(0, 5, 6)[None, :]
    row = np.array([[0.0], [1.0], [2.0]])
    values = 40 + row + seed + rng.normal(0, 0.3, (3, 6))
    ss = two_way(values)
    assert ss["row"] + ss["seed"] + ss["within seed"] == pytest.approx(ss["total"])
    assert ss["seed"] > 10 * ss["within seed"] and ss["row"] > ss["within seed"]
    same = np.zeros((20, 3, 3), int)
    same[:, 0, 0], same[:, 1, 1], same[:, 2, 2] = 5, 5, 5  # every image perfect: no evaluation-set spread
    assert bootstrap_variance(same) == pytest.approx(0.0)
    mixed = same.copy()
    mixed[::2, 1, 1], mixed[::2, 1, 2] = 0, 5  # half the images get class 1 wrong
    assert bootstrap_variance(mixed) > 0


def test_report_variance_on_the_committed_runs() -> None:
    from pathlib import Path

    from aakit.experiment.variance import variance_table

    repo = Path(__file__).resolve().parents[1]
    from aakit.experiment.results import load_results

    index = load_results(repo / "results", "synthetic", repo / "experiments" / "grids", "v1")  # version 1's suite
    t = variance_table(repo / "results", "synthetic", 1, repo / "experiments" / "grids", index=index)
    got = {r["component"]: r for r in t.long.to_dict("records")}
    assert got["seed"]["n"] == 5 and got["row"]["n"] == 2  # 3 trained rows (rfpc re-reads) x 6 seeds
    assert got["seed"]["share"] > 0.5  # version 1 of the benchmark: the seed dominates (issue 14's audit)
    assert sum(got[c]["share"] for c in ("row", "seed", "within seed")) == pytest.approx(1.0)
