"""Paired statistics over seeds: the verdict rule of the claims (issue 14).

Two rows of an ablation table trained with the same seed share the pre-training, the data
order and the augmentation, so the seed moves both the same way; the per-seed *difference*
is what the comparison is about. For a claim "A beats B" with paired differences
``d_s = A_s - B_s`` over n seeds:

* ``mean_diff`` and a two-sided 95 % Student-t interval ``mean +- t_{0.975, n-1} sd / sqrt(n)``;
* ``mde``, the smallest effect these seeds can detect: with 80 % power at the 5 % level,
  ``(t_{0.975, n-1} + t_{0.8, n-1}) sd / sqrt(n)`` (a plain planning figure, not a test);
* ``seeds_needed``, how many seeds would give an interval of +-1.0 point at this sd (the
  smallest n with ``t_{0.975, n-1} sd / sqrt(n) <= 1``; another planning figure: the sd of a
  few seeds is itself uncertain);
* the verdict, from the interval alone:
  - **supported**: the interval lies above 0 (A ahead);
  - **opposite**: it lies below 0 (B ahead);
  - **smaller than the paper's**: it contains 0 but lies entirely below the paper's effect
    (the paper's gain is excluded; only for a positive paper effect);
  - **inconclusive**: anything else (or fewer than two pairs).

Pure functions of numbers, nothing read from disk.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy import stats as sps

SUPPORTED, OPPOSITE, SMALLER, INCONCLUSIVE = "supported", "opposite", "smaller than the paper's", "inconclusive"
VERDICTS = (SUPPORTED, OPPOSITE, SMALLER, INCONCLUSIVE)


@dataclass(frozen=True)
class PairedResult:
    """The paired comparison of two rows over seeds (differences in the units given)."""

    n: int
    mean_diff: float
    sd: float
    ci_low: float
    ci_high: float
    mde: float
    verdict: str
    seeds_needed: int | None = None  # seeds for a 95 % interval of +-1.0 at this sd (None: n < 2)


def t_interval(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, sd, low, high)`` of a Student-t interval of the mean; NaN bounds for n < 2."""
    n = len(diffs)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = sum(diffs) / n
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def min_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The paired effect a two-sided t-test at ``alpha`` finds with ``power`` (NaN if n < 2)."""
    if n < 2 or math.isnan(sd):
        return math.nan
    q = float(sps.t.ppf(1 - alpha / 2, n - 1)) + float(sps.t.ppf(power, n - 1))
    return q * sd / math.sqrt(n)


def seeds_for_halfwidth(sd: float, halfwidth: float = 1.0, level: float = 0.95, most: int = 10_000) -> int | None:
    """The fewest seeds whose Student-t interval at ``level`` is within +-``halfwidth`` for paired
    differences of standard deviation ``sd``; None if ``sd`` is unknown (NaN) or over ``most``."""
    if math.isnan(sd):
        return None
    for n in range(2, most + 1):
        if float(sps.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n) <= halfwidth:
            return n
    return None


def verdict(low: float, high: float, paper_effect: float | None) -> str:
    """The verdict of an interval ``[low, high]`` for a claimed positive effect."""
    if math.isnan(low) or math.isnan(high):
        return INCONCLUSIVE
    if low > 0:
        return SUPPORTED
    if high < 0:
        return OPPOSITE
    if paper_effect is not None and paper_effect > 0 and high < paper_effect:
        return SMALLER
    return INCONCLUSIVE


def paired_comparison(diffs: Sequence[float], paper_effect: float | None, level: float = 0.95) -> PairedResult:
    """Everything the claims table says about one comparison (see the module docstring)."""
    mean, sd, low, high = t_interval(diffs, level)
    return PairedResult(n=len(diffs), mean_diff=mean, sd=sd, ci_low=low, ci_high=high,
                        mde=min_detectable_effect(sd, len(diffs)), verdict=verdict(low, high, paper_effect),
                        seeds_needed=seeds_for_halfwidth(sd))
