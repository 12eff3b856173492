"""The paper's claims about its ablations, tested on stored runs with paired statistics.

Each claim says that one row of an ablation table beats one or more others on val mIoU
(Tables 1-4). Two rows trained with the same seed share the pre-training, the data order and
the augmentation, so each comparison is decided on the per-seed *differences* of the claimed
winner and the other row (the same runs ``aakit report`` puts in the table), by the rule of
:mod:`aakit.experiment.stats`: a 95 % t-interval of the mean difference, and

* **supported** — the interval lies above 0;
* **opposite** — it lies below 0;
* **smaller than the paper's** — it contains 0 but excludes the paper's (positive) effect;
* **inconclusive** — anything else, or fewer than two paired seeds;
* **not engaged here** — the two rows' objectives differ by less than 1 % of the gradient at
  their starting point (their stored mechanism, :mod:`aakit.experiment.mechanisms`, measured by
  ``aakit grid FILE --preflight --store``): whatever the interval says (it is kept, as
  ``interval_verdict``), the seeds compared two trainings that follow the same gradient, so
  they measured seed noise, not the mechanism the claim is about.

``mde`` is the smallest effect the seeds can detect (80 % power). A claim with several
comparisons (Table 3: max beats mean *and* min) is supported when every comparison is,
opposite when any is, not engaged here when any is (and none is opposite), smaller than the
paper's when any is (and none of those), inconclusive otherwise. Until issue 14 the rule compared the rows' unpaired spread.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from aakit.experiment.mechanisms import NOT_ENGAGED, mechanism_index, share_text, start_share_text, trained_words
from aakit.experiment.published import load_published
from aakit.experiment.results import ResultsIndex, load_results
from aakit.experiment.stats import INCONCLUSIVE, OPPOSITE, SMALLER, SUPPORTED, paired_comparison
from aakit.experiment.tables import Block, ReportTable, fmt_num, fmt_ours, mean_std, nan_to_none, paper_of
from aakit.runs import same_start, start_of

NOT_RUN = "not run"
CLAIM_COLUMNS = ["claim", "table", "winner", "other", "winner_mean", "winner_std", "winner_n", "other_mean",
                 "other_std", "other_n", "diff", "wins", "paired", "paired_mean", "paired_std", "ci_low", "ci_high",
                 "mde", "seeds_needed", "paper_diff", "outcome", "claim_outcome", "pairs", "interval_outcome",
                 "mechanism"]


@dataclass(frozen=True)
class Claim:
    """``winner`` beats every row of ``others`` in Table ``table`` (val mIoU)."""

    key: str
    table: int
    text: str
    winner: str
    others: tuple[str, ...]


CLAIMS: tuple[Claim, ...] = (
    Claim("T1-AA", 1, "AA improves the CLS+CE baseline", "CLS+CE+AA", ("CLS+CE",)),
    Claim("T1-LR", 1, "LR improves it further", "CLS+CE+AA+LR", ("CLS+CE+AA",)),
    Claim("T1-rfpc", 1, "rfpc at evaluation adds more", "CLS+CE+AA+LR+rfpc", ("CLS+CE+AA+LR",)),
    *(Claim(f"T2-{d}", 2, f"AA beats SA with dilations {d}", f"AA {d}", (f"SA {d}",))
      for d in ("4-8-12-24-36", "4-8-12-24", "4-8-12", "12-24-36")),
    Claim("T3-max", 3, "max weighting beats mean and min", "max", ("mean", "min")),
    Claim("T4-gamma2", 4, "gamma 2 is the best concentration", "gamma=2",
          ("gamma=0", "gamma=0.5", "gamma=1", "gamma=5")),
)


def _seed(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


UNIT = "val mIoU points (0-100)"  # of every number in claims_json / comparisons_json
Seeded = dict[int, tuple[float, str, float]]  # seed -> (val mIoU in %, run directory name, mIoU as stored)


def per_seed(results: Path, preset: str, grids_dir: Path | None = None, *, index: ResultsIndex | None = None,
             dropped: list[str] | None = None) -> dict[tuple[int, str], Seeded]:
    """(table, row) -> {seed: (val mIoU in %, run name, mIoU as stored)} of the finished runs that
    fill that row.

    ``index``: the runs and grid points of ``preset`` already read (default: read them here).
    ``dropped`` (if given) receives a line per run left out or counted oddly: those of
    :meth:`aakit.experiment.results.ResultsIndex.left_out` (for the val metric: a run not evaluated
    on train is not left out of a claim), a run without ``seed`` in its summary
    (it is given the next free number) and a second run with the same seed (it replaces the first).
    """
    index = load_results(results, preset, grids_dir) if index is None else index
    out: dict[tuple[int, str], Seeded] = {}
    notes: list[str] = []
    for table in sorted({c.table for c in CLAIMS}):
        notes += index.left_out(table, keys=lambda table, metric: [metric])  # the claims read val only
        for row, g in index.rows(table).items():
            vals = out.setdefault((table, row), {})
            by: dict[int, str] = {}
            for run, metric in g.runs:
                v = run.miou(metric)
                if v is None:
                    continue
                seed = _seed(run.summary.get("seed"))
                if seed is None:
                    seed = len(vals)
                    notes.append(f"Claims, Table {table} {row}: {run.path.name} has no seed in summary.json; "
                                 f"counted as seed {seed}")
                elif seed in vals:
                    notes.append(f"Claims, Table {table} {row}: seed {seed} twice: {run.path.name} counts, "
                                 f"{by[seed]} not")
                stored = (run.block(metric) or {}).get("miou")
                vals[seed], by[seed] = (v, run.path.name, stored), run.path.name
    if dropped is not None:
        dropped += notes
    return out


def compare(a: Seeded, b: Seeded, paper_diff: float | None = None) -> dict[str, object]:
    """One comparison: ``a`` (the claimed winner) against ``b``, paired by seed."""
    ma, sa = mean_std([v[0] for v in a.values()])
    mb, sb = mean_std([v[0] for v in b.values()])
    common = sorted(set(a) & set(b))
    diffs = [a[s][0] - b[s][0] for s in common]
    paired = paired_comparison(diffs, paper_diff)
    return {
        "winner_mean": ma, "winner_std": sa, "winner_n": len(a), "other_mean": mb, "other_std": sb,
        "other_n": len(b), "diff": None if ma is None or mb is None else ma - mb,
        "wins": sum(d > 0 for d in diffs), "paired": len(common),
        "paired_mean": nan_to_none(paired.mean_diff), "paired_std": nan_to_none(paired.sd),
        "ci_low": nan_to_none(paired.ci_low), "ci_high": nan_to_none(paired.ci_high), "mde": nan_to_none(paired.mde),
        "seeds_needed": paired.seeds_needed, "outcome": NOT_RUN if not common else paired.verdict,
        "pairs": [{"seed": s, "winner_run": a[s][1], "loser_run": b[s][1], "winner": a[s][0], "loser": b[s][0]}
                  for s in common],  # val mIoU in points, as every difference
    }


def with_starts(results: Path, r: dict[str, object]) -> dict[str, object]:
    """A comparison's pairs each with ``same_start``: whether its two runs began from one
    pre-trained checkpoint (:func:`aakit.runs.start_of`; None where either records none). A seed
    whose rows were trained on two machines (a grid resumed elsewhere) compares two starts."""
    top = Path(results) / "runs"
    pairs = [p | {"same_start": same_start(start_of(top / p["winner_run"]), start_of(top / p["loser_run"]))}
             for p in r["pairs"]]  # type: ignore[attr-defined]
    return r | {"pairs": pairs}


def judged(r: dict[str, object], mechanism: dict[str, object] | None) -> dict[str, object]:
    """A comparison of :func:`compare` with its stored ``mechanism`` (None: not measured): the
    interval's verdict kept as ``interval_outcome``, and ``outcome`` "not engaged here" where the
    mechanism's gradient share is below the threshold (a comparison not run stays not run)."""
    out = r | {"interval_outcome": r["outcome"], "mechanism": mechanism}
    if mechanism is not None and mechanism.get("engaged") is False and r["outcome"] != NOT_RUN:
        out["outcome"] = NOT_ENGAGED
    return out


def combine(outcomes: list[str]) -> str:
    """A claim's outcome from its comparisons' (see the module docstring)."""
    for first in (NOT_RUN, OPPOSITE, NOT_ENGAGED, SMALLER):
        if first in outcomes:
            return first
    return SUPPORTED if all(o == SUPPORTED for o in outcomes) else INCONCLUSIVE


def evaluate_claims(results: Path = Path("results"), preset: str = "synthetic", grids_dir: Path | None = None, *,
                    index: ResultsIndex | None = None, dropped: list[str] | None = None) -> pd.DataFrame:
    """Every comparison of every claim, one row each (columns :data:`CLAIM_COLUMNS`).

    ``dropped`` (if given) receives the runs left out, and why (see :func:`per_seed`).
    """
    index = load_results(results, preset, grids_dir) if index is None else index
    values = per_seed(results, preset, grids_dir, index=index, dropped=dropped)
    mechanisms = mechanism_index(results, {p.grid for p in index.points})
    pub = load_published(results=results)
    rows = []
    for c in CLAIMS:
        comps = []
        for other in c.others:
            pw, _ = paper_of(pub, c.table, c.winner, "val")
            po, _ = paper_of(pub, c.table, other, "val")
            # the paper prints one decimal: 63.2 - 60.0 is 3.2, not 3.200000000000003
            paper_diff = None if pw is None or po is None else round(pw - po, 1)
            r = judged(with_starts(results, compare(values.get((c.table, c.winner), {}),
                                                    values.get((c.table, other), {}), paper_diff)),
                       mechanisms.get((c.table, c.winner, other)))
            r |= {"claim": c.key, "table": c.table, "winner": c.winner, "other": other, "paper_diff": paper_diff}
            comps.append(r)
        verdict = combine([str(r["outcome"]) for r in comps])
        rows += [r | {"claim_outcome": verdict} for r in comps]
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def _count(n: object) -> int | None:
    return None if nan_to_none(n) is None else int(n)  # type: ignore[call-overload]


def _signed(x: float | None) -> str:
    return "—" if nan_to_none(x) is None else f"{x:+.1f}"


def _paired(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:+.1f} ± {std:.1f}" if std is not None else f"{mean:+.1f}"


def _seeds(n: object) -> str:
    """A seed count, or '—' where there is none (fewer than two pairs)."""
    return "—" if nan_to_none(n) is None else str(int(n))  # type: ignore[call-overload]


def _interval(low: float | None, high: float | None) -> str:
    return "—" if low is None or high is None else f"[{low:+.1f}, {high:+.1f}]"


def _in_words(r: object) -> str:
    """One comparison of a claim in a sentence: the paired difference, its interval and how wide
    it is against the +-1.0 aim, and where the paper's effect falls."""
    head = f"{r.winner} vs {r.other}"  # type: ignore[attr-defined]
    n, mean = int(r.paired), nan_to_none(r.paired_mean)  # type: ignore[attr-defined]
    low, high = nan_to_none(r.ci_low), nan_to_none(r.ci_high)  # type: ignore[attr-defined]
    if n == 0 or mean is None:
        return f"{head}: not run"
    if low is None or high is None:
        return f"{head}: {mean:+.1f} points on one seed, no interval"
    half = (high - low) / 2
    width = (f"±{half:.1f}" if half <= 1.0 else
             f"±{half:.1f}: wider than ±1.0; about {_seeds(r.seeds_needed)} seeds would reach it")  # type: ignore[attr-defined]
    text = (f"{head}: {mean:+.1f} points, 95 % CI [{low:+.1f}, {high:+.1f}] ({width}), {n} seeds, "
            f"ahead on {r.wins}")  # type: ignore[attr-defined]
    paper = nan_to_none(r.paper_diff)  # type: ignore[attr-defined]
    if paper is not None:
        where = "inside the interval" if low <= paper <= high else "above it" if paper > high else "below it"
        text += f"; the paper's {paper:+.1f} is {where}"
    return text + tested(r) + straddled(r)


def straddled(r: object) -> str:
    """``"; 2 of 10 pairs began from different pre-trained checkpoints"``, or ``""``."""
    apart = sum(p.get("same_start") is False for p in getattr(r, "pairs", None) or [])
    return (f"; {apart} of {len(r.pairs)} pairs began from different pre-trained checkpoints (a pre-training "  # type: ignore[attr-defined]
            f"trained again on another processor), which their differences hold too" if apart else "")


def tested(r: object) -> str:
    """What a comparison tested, from its stored mechanism: ``""`` where none is stored."""
    mech = getattr(r, "mechanism", None)
    if not isinstance(mech, dict) or mech.get("grad_share") is None:
        return ""
    at = "at the untrained start" if mech.get("own_start") is False else "at their start"
    share, later = start_share_text(mech), trained_words(mech)  # the start's share; a trained network's
    if r.outcome == NOT_ENGAGED:  # type: ignore[attr-defined]
        return (f"; {at} the two objectives differ by {share} of the gradient{later}, below "
                f"{100 * float(mech.get('threshold') or 0.01):.0f} %: not engaged, so the interval (by itself "
                f"{r.interval_outcome}) measures seed noise, not the mechanism")  # type: ignore[attr-defined]
    return f"; {at} the two objectives differ by {share} of the gradient{later}"


def claims_in_words(df: pd.DataFrame) -> list[list[str]]:
    """One row per claim: ``[claim, "verdict: comparison; comparison"]`` (see :func:`_in_words`)."""
    text = {c.key: c.text for c in CLAIMS}
    rows = []
    for c in CLAIMS:
        comps = [r for r in df.itertuples(index=False) if r.claim == c.key]
        if not comps:
            continue
        verdict = str(comps[0].claim_outcome)
        said = NOT_RUN if all(int(r.paired) == 0 for r in comps) else f"{verdict}: " + "; ".join(map(_in_words, comps))
        rows.append([f"T{c.table}: {text[c.key]}", said])
    return rows


def claims_table(results: Path = Path("results"), preset: str = "synthetic", grids_dir: Path | None = None, *,
                 index: ResultsIndex | None = None) -> ReportTable:
    """The claims as a report table (rendered like Tables 1-6: rich, md, latex, csv)."""
    dropped: list[str] = []
    df = evaluate_claims(results, preset, grids_dir, index=index, dropped=dropped)
    text = {c.key: c.text for c in CLAIMS}
    out = []
    for r in df.itertuples(index=False):
        out.append([
            f"T{r.table}: {text[r.claim]}", f"{r.winner} vs {r.other}",
            fmt_ours(nan_to_none(r.winner_mean), nan_to_none(r.winner_std), int(r.winner_n)),
            fmt_ours(nan_to_none(r.other_mean), nan_to_none(r.other_std), int(r.other_n)),
            f"{r.wins}/{r.paired}", _paired(nan_to_none(r.paired_mean), nan_to_none(r.paired_std)),
            _interval(nan_to_none(r.ci_low), nan_to_none(r.ci_high)), fmt_num(nan_to_none(r.mde)),
            _seeds(r.seeds_needed), _signed(nan_to_none(r.paper_diff)), share_text(r.mechanism), str(r.outcome),
            str(r.claim_outcome),
        ])
    header = ["claim", "comparison", "winner (val)", "other (val)", "seeds won", "paired Δ", "95 % CI",
              "detectable", "seeds for ±1", "Δ paper", "grad share", "comparison verdict", "claim verdict"]
    notes = ["val mIoU in %, mean ± std over seeds; paired Δ = mean ± std of the per-seed differences "
             "(claimed winner − other, same seed); 95 % CI = Student-t interval of that mean; detectable = the "
             "smallest difference these seeds find with 80 % power; seeds for ±1 = the seeds a 95 % CI of ±1.0 point "
             "would take at this paired std; supported: CI above 0; opposite: CI below 0; "
             "smaller than the paper's: CI contains 0 but lies below Δ paper; inconclusive: otherwise or fewer "
             "than 2 paired seeds; seeds won = paired seeds where the winner is ahead", ENGAGED_NOTE]
    words = Block(["claim", "verdict in words"], claims_in_words(df), caption="In words", align="ll")
    return ReportTable(0, "The paper's ablation claims, tested", preset, df,
                       [Block(header, out, align="llrrrrrrrrrll"), words], notes, label="Claims", dropped=dropped)


ENGAGED_NOTE = ("grad share = how much the two rows' objectives differ at their starting point, |grad winner − grad "
                "other| / the larger norm, w.r.t. the network's outputs, stored with the grid (aakit grid FILE "
                "--preflight --store; '—' = not measured; 'x / y trained': y = the largest share of the same two "
                "configs at a trained run's weights, aakit grid FILE --preflight --at RUN --store); not engaged here: "
                "below 1 % at the start and at every trained point measured, so the seeds compared two "
                "trainings on the same gradient and the interval, kept, measures seed noise, not the mechanism")


def unmeasured(mechanism: object) -> dict[str, object]:
    """A comparison's ``mechanism`` in the JSON: the stored one, or one saying it is not measured."""
    if isinstance(mechanism, dict):
        return mechanism
    return {"grad_share": None, "engaged": None,
            "reason": "not measured: its grid has no mechanism.json (aakit grid FILE --preflight --store)"}


def claims_json(results: Path = Path("results"), preset: str = "synthetic", grids_dir: Path | None = None, *,
                index: ResultsIndex | None = None, dropped: list[str] | None = None) -> list[dict[str, object]]:
    """One object per comparison: ``claim``, ``comparison``, ``unit``, ``paper_effect``, ``n``,
    ``mean_diff``, ``sd``, ``ci_low``, ``ci_high``, ``mde``, ``seeds_needed`` (for a CI of +-1.0),
    ``verdict``, ``claim_verdict`` and ``pairs`` (each ``seed``, ``winner_run``, ``loser_run``, the
    val mIoU of ``winner`` and ``loser``, and ``same_start``: :func:`with_starts`), ``interval_verdict`` (the interval's own, which
    ``verdict`` replaces with "not engaged here") and ``mechanism`` (what the comparison could
    test: ``grad_share``, ``grad_cos``, ``engaged``, ``threshold``, where and at which weights it
    was measured, and its own ``unit``). Every other number is in one unit, val mIoU points
    (0-100, ``unit``): ``mean_diff`` is the mean of ``winner - loser`` over the pairs;
    ``paper_effect`` is rounded as the paper prints it (one decimal)."""
    df = evaluate_claims(results, preset, grids_dir, index=index, dropped=dropped)
    return [{
        "claim": r.claim, "table": int(r.table), "comparison": f"{r.winner} vs {r.other}", "unit": UNIT,
        "paper_effect": nan_to_none(r.paper_diff), "n": int(r.paired), "mean_diff": nan_to_none(r.paired_mean),
        "sd": nan_to_none(r.paired_std), "ci_low": nan_to_none(r.ci_low), "ci_high": nan_to_none(r.ci_high),
        "mde": nan_to_none(r.mde), "seeds_needed": _count(r.seeds_needed), "verdict": r.outcome,
        "claim_verdict": r.claim_outcome, "interval_verdict": r.interval_outcome, "mechanism": unmeasured(r.mechanism),
        "pairs": r.pairs,
    } for r in df.itertuples(index=False)]


VERDICT_ORDER = (SUPPORTED, OPPOSITE, SMALLER, INCONCLUSIVE, NOT_ENGAGED, NOT_RUN)


def claims_tally(df: pd.DataFrame) -> str:
    """``9 claims: 3 supported, 0 opposite, ...`` (each claim once, by its verdict)."""
    verdicts = [str(df[df["claim"] == c.key]["claim_outcome"].iloc[0]) for c in CLAIMS if (df["claim"] == c.key).any()]
    counts = ", ".join(f"{sum(v == o for v in verdicts)} {o}" for o in VERDICT_ORDER)
    return f"{len(verdicts)} claims: {counts}"


def claims_verdicts(claims: ReportTable) -> ReportTable:
    """The short view of :func:`claims_table` (what ``aakit report`` shows first): per claim its
    verdict, then per comparison the paired seeds, the mean paired difference, its 95 % interval
    and the paper's difference; the claim's verdict and text on its first comparison only."""
    df = claims.long
    text = {c.key: c.text for c in CLAIMS}
    rows: list[list[str]] = []
    for c in CLAIMS:
        first = True
        for r in df[df["claim"] == c.key].itertuples(index=False):
            rows.append([
                str(r.claim_outcome) if first else "", f"T{r.table}: {text[c.key]}" if first else "",
                f"{r.winner} vs {r.other}", str(int(r.paired)), _signed(nan_to_none(r.paired_mean)),
                _interval(nan_to_none(r.ci_low), nan_to_none(r.ci_high)), _signed(nan_to_none(r.paper_diff)),
                share_text(r.mechanism),
            ])
            first = False
    header = ["verdict", "claim", "comparison", "seeds", "paired Δ", "95 % CI", "paper's Δ", "grad share"]
    notes = ["paired Δ = mean over the seeds of (claimed winner − other, same seed), val mIoU points; 95 % CI = "
             "Student-t interval of that mean; supported: CI above 0; opposite: CI below 0; smaller than the "
             "paper's: CI contains 0 but lies below the paper's Δ; inconclusive: otherwise or fewer than 2 paired "
             "seeds; not run: no paired seeds. A claim with several comparisons: supported if every one is, "
             "opposite if any is, not engaged here if any is, smaller than the paper's if any is", ENGAGED_NOTE,
             claims_tally(df)]
    return ReportTable(0, "The paper's ablation claims, tested", claims.preset, df,
                       [Block(header, rows, align="lllrrrrr")], notes, label="Verdicts", dropped=claims.dropped)
