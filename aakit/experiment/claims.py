"""The paper's claims about its ablations, tested on stored runs: reproduced or not.

Each claim says that one row of an ablation table beats one or more others on val mIoU
(Tables 1-4). For every comparison we take the per-seed values of both rows (the same runs
``aakit report`` puts in the table) and decide:

* **reproduced** — our mean difference is in the paper's direction and larger than the seeds'
  spread (the larger of the two rows' standard deviations over seeds, n - 1);
* **not reproduced** — the difference is larger than that spread, the other way;
* **inconclusive** — the difference is within the spread (or a row has fewer than two seeds,
  so there is no spread to compare with).

A claim with several comparisons (Table 3: max beats mean *and* min) is reproduced when every
comparison is, not reproduced when any is, inconclusive otherwise. ``wins`` counts the seeds
where the claimed winner is ahead of the other row with the same seed (paired runs share the
pre-training, the data order and the augmentation), and ``paired Δ`` is the mean ± std of those
per-seed differences: the verdict uses the rows' spread, which is the stricter test when, as
here, a seed moves every row the same way; the paired columns show what the seeds agree on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from aakit.experiment.published import load_published
from aakit.experiment.results import ResultsIndex, load_results
from aakit.experiment.tables import Block, ReportTable, fmt_num, fmt_ours, mean_std, nan_to_none, paper_of

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN = "reproduced", "not reproduced", "inconclusive", "not run"
CLAIM_COLUMNS = ["claim", "table", "winner", "other", "winner_mean", "winner_std", "winner_n", "other_mean",
                 "other_std", "other_n", "diff", "spread", "wins", "paired", "paired_mean", "paired_std", "paper_diff",
                 "outcome", "claim_outcome"]


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


def per_seed(results: Path, preset: str, grids_dir: Path | None = None, *, index: ResultsIndex | None = None,
             dropped: list[str] | None = None) -> dict[tuple[int, str], dict[int, float]]:
    """(table, row) -> {seed: val mIoU in %} of the finished runs that fill that row.

    ``index``: the runs and grid points of ``preset`` already read (default: read them here).
    ``dropped`` (if given) receives a line per run left out or counted oddly: those of
    :meth:`aakit.experiment.results.ResultsIndex.left_out`, a run without ``seed`` in its summary
    (it is given the next free number) and a second run with the same seed (it replaces the first).
    """
    index = load_results(results, preset, grids_dir) if index is None else index
    out: dict[tuple[int, str], dict[int, float]] = {}
    notes: list[str] = []
    for table in sorted({c.table for c in CLAIMS}):
        notes += index.left_out(table)
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
                vals[seed], by[seed] = v, run.path.name
    if dropped is not None:
        dropped += notes
    return out


def compare(a: dict[int, float], b: dict[int, float]) -> dict[str, float | int | str | None]:
    """One comparison: ``a`` (the claimed winner) against ``b``, by the rule of this module."""
    ma, sa = mean_std(list(a.values()))
    mb, sb = mean_std(list(b.values()))
    common = sorted(set(a) & set(b))
    pm, ps = mean_std([a[s] - b[s] for s in common])
    row: dict[str, float | int | str | None] = {
        "paired_mean": pm, "paired_std": ps,
        "winner_mean": ma, "winner_std": sa, "winner_n": len(a), "other_mean": mb, "other_std": sb,
        "other_n": len(b), "wins": sum(a[s] > b[s] for s in common), "paired": len(common),
        "diff": None, "spread": None,
    }
    if ma is None or mb is None:
        row["outcome"] = NOT_RUN
        return row
    diff = ma - mb
    row["diff"] = diff
    if sa is None or sb is None:
        row["outcome"] = INCONCLUSIVE
        return row
    spread = max(sa, sb)
    row["spread"] = spread
    row["outcome"] = REPRODUCED if diff > spread else NOT_REPRODUCED if diff < -spread else INCONCLUSIVE
    return row


def combine(outcomes: list[str]) -> str:
    """A claim's outcome from its comparisons'."""
    if NOT_RUN in outcomes:
        return NOT_RUN
    if NOT_REPRODUCED in outcomes:
        return NOT_REPRODUCED
    return REPRODUCED if all(o == REPRODUCED for o in outcomes) else INCONCLUSIVE


def evaluate_claims(results: Path = Path("results"), preset: str = "synthetic", grids_dir: Path | None = None, *,
                    index: ResultsIndex | None = None, dropped: list[str] | None = None) -> pd.DataFrame:
    """Every comparison of every claim, one row each (columns :data:`CLAIM_COLUMNS`).

    ``dropped`` (if given) receives the runs left out, and why (see :func:`per_seed`).
    """
    values = per_seed(results, preset, grids_dir, index=index, dropped=dropped)
    pub = load_published(results=results)
    rows = []
    for c in CLAIMS:
        comps = []
        for other in c.others:
            r = compare(values.get((c.table, c.winner), {}), values.get((c.table, other), {}))
            pw, _ = paper_of(pub, c.table, c.winner, "val")
            po, _ = paper_of(pub, c.table, other, "val")
            r |= {"claim": c.key, "table": c.table, "winner": c.winner, "other": other,
                  "paper_diff": None if pw is None or po is None else pw - po}
            comps.append(r)
        verdict = combine([str(r["outcome"]) for r in comps])
        rows += [r | {"claim_outcome": verdict} for r in comps]
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def _signed(x: float | None) -> str:
    return "—" if nan_to_none(x) is None else f"{x:+.1f}"


def _paired(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:+.1f} ± {std:.1f}" if std is not None else f"{mean:+.1f}"


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
            _signed(nan_to_none(r.diff)), fmt_num(nan_to_none(r.spread)), f"{r.wins}/{r.paired}",
            _paired(nan_to_none(r.paired_mean), nan_to_none(r.paired_std)), _signed(nan_to_none(r.paper_diff)),
            str(r.outcome), str(r.claim_outcome),
        ])
    header = ["claim", "comparison", "winner (val)", "other (val)", "Δ ours", "spread", "seeds won",
              "paired Δ", "Δ paper", "comparison outcome", "claim outcome"]
    notes = ["val mIoU in %, mean ± std over seeds; Δ = claimed winner − other; spread = the larger std; "
             "reproduced: Δ > spread; not reproduced: Δ < −spread; inconclusive: within the spread "
             "or fewer than 2 seeds; seeds won = paired seeds where the winner is ahead; paired Δ = mean ± std "
             "of the per-seed differences"]
    return ReportTable(0, "The paper's ablation claims, tested", preset, df, [Block(header, out, align="llrrrrrrrll")],
                       notes, label="Claims", dropped=dropped)
