"""The paired comparisons a grid file declares (``compare:``), decided on its stored runs.

The paper's claims (:mod:`aakit.experiment.claims`) are fixed comparisons of its tables; a grid
of one's own (a pilot, an ablation of a new loss) names its comparisons beside its rows::

    compare:
      - {winner: bon-AA-cam, other: bon-SA, text: "AA (V: CAM) beats SA", paper_effect: 3.2}

``aakit report --compare NAME`` reads ``results/grids/NAME/grid.json`` (the rows, seeds and
hashes that really ran; its ``compare:``, or else the grid file it names) and the finished runs,
pairs the two rows' runs by seed and decides each comparison by the claims' rule: a 95 %
t-interval of the mean per-seed difference (supported / opposite / smaller than the paper's /
inconclusive), and "not engaged here" where the grid's stored mechanism
(``results/grids/NAME/mechanism.json``, :mod:`aakit.experiment.mechanisms`) finds the two rows'
objectives less than 1 % apart at their start.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from aakit import yamlio
from aakit.errors import AakitError
from aakit.experiment.claims import (
    ENGAGED_NOTE,
    UNIT,
    Seeded,
    _count,
    _interval,
    _paired,
    _seeds,
    _signed,
    compare,
    judged,
    unmeasured,
)
from aakit.experiment.costs import costs_table
from aakit.experiment.gridstate import GridState, parse_comparisons, read_grid_state, read_grid_states
from aakit.experiment.mechanisms import mechanism_index, share_text
from aakit.experiment.results import ResultsIndex, load_results
from aakit.experiment.tables import Block, ReportTable, fmt_num, fmt_ours, mean_std, nan_to_none


class CompareError(AakitError):
    """A grid that cannot be compared: not run here, or no ``compare:``."""


def grid_comparisons_of(state: GridState) -> list[dict[str, Any]]:
    """The state's ``compare:`` (stored in grid.json, else read from the grid file it names)."""
    rows = {p.row for p in state.points if p.row is not None}
    items, where = state.compare, str(state.path)
    if items is None and state.file:
        try:
            head = yamlio.safe_load(Path(state.file).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            head = None
        items, where = (head.get("compare") if isinstance(head, dict) else None), state.file
    out = parse_comparisons(items, where, rows, CompareError)
    if not out:
        raise CompareError(f"{state.path}: grid {state.name} declares no compare: (add one to its grid file)")
    return out


def row_values(state: GridState, index: ResultsIndex) -> dict[str, Seeded]:
    """Row -> {seed: (val mIoU in %, run name, mIoU as stored)} of the grid's finished runs."""
    out: dict[str, Seeded] = {}
    for p in state.points:
        if p.row is None or p.seed is None or not index.runs.get(p.hash or ""):
            continue
        run = index.runs[p.hash][0]  # type: ignore[index]
        v = run.miou(p.metric)
        if v is not None:
            out.setdefault(p.row, {})[p.seed] = (v, run.name, (run.block(p.metric) or {}).get("miou"))
    return out


def _state(results: Path, name: str) -> GridState:
    path = Path(results) / "grids" / name / "grid.json"
    if not path.is_file():
        raise CompareError(f"--compare {name}: no {path} (run the grid first: aakit grid FILE)")
    state = read_grid_state(path)
    if state.error:
        raise CompareError(f"--compare {name}: {state.error}")
    return state


def evaluate_comparisons(results: Path, name: str, *, state: GridState | None = None,
                         items: list[dict[str, Any]] | None = None,
                         runs: ResultsIndex | None = None) -> tuple[pd.DataFrame, dict[str, Seeded]]:
    """Each comparison of grid ``name`` with its paired statistics, and the rows' values
    (``state`` and its ``items``; ``runs``, every run of ``results`` unfiltered: already read,
    else read here)."""
    state = _state(results, name) if state is None else state
    items = grid_comparisons_of(state) if items is None else items
    values = row_values(state, load_results(results) if runs is None else runs)
    mechanisms = mechanism_index(results, [state.name])
    rows = [item | judged(compare(values.get(item["winner"], {}), values.get(item["other"], {}), item["paper_effect"]),
                          mechanisms.get((state.name, item["winner"], item["other"])))
            for item in items]
    return pd.DataFrame(rows), values


def comparisons_json(results: Path, name: str) -> list[dict[str, Any]]:
    """As :func:`aakit.experiment.claims.claims_json`, one object per comparison of the grid."""
    df, _ = evaluate_comparisons(results, name)
    return [{
        "comparison": r.text, "winner_row": r.winner, "other_row": r.other, "unit": UNIT,
        "paper_effect": nan_to_none(r.paper_effect), "n": int(r.paired), "mean_diff": nan_to_none(r.paired_mean),
        "sd": nan_to_none(r.paired_std), "ci_low": nan_to_none(r.ci_low), "ci_high": nan_to_none(r.ci_high),
        "mde": nan_to_none(r.mde), "seeds_needed": _count(r.seeds_needed), "verdict": r.outcome,
        "interval_verdict": r.interval_outcome, "mechanism": unmeasured(r.mechanism), "pairs": r.pairs,
    } for r in df.itertuples(index=False)]


def comparisons_table(results: Path, name: str, *, state: GridState | None = None,
                      items: list[dict[str, Any]] | None = None) -> ReportTable:
    """The grid's rows (mean ± std over seeds) and its comparisons, as a report table (``state``,
    ``items``: as :func:`evaluate_comparisons`)."""
    state = _state(results, name) if state is None else state
    df, values = evaluate_comparisons(results, name, state=state, items=items)
    rows_block = []
    for row, seeded in values.items():
        m, s = mean_std([v[0] for v in seeded.values()])
        rows_block.append([row, fmt_ours(m, s, len(seeded)), ", ".join(str(k) for k in sorted(seeded))])
    comps = [[r.text, f"{r.winner} vs {r.other}", f"{r.wins}/{r.paired}",
              _paired(nan_to_none(r.paired_mean), nan_to_none(r.paired_std)),
              _interval(nan_to_none(r.ci_low), nan_to_none(r.ci_high)), fmt_num(nan_to_none(r.mde)),
              _seeds(r.seeds_needed), _signed(nan_to_none(r.paper_effect)), share_text(r.mechanism), str(r.outcome)]
             for r in df.itertuples(index=False)]
    cost = costs_table(results, state.preset or "synthetic", grids={name},
                       index=load_results(results, state.preset, suite=state.suite))  # the grid's own suite
    blocks = [Block(["row", "val mIoU", "seeds"], rows_block, caption="Rows", align="lrl"),
              Block(["comparison", "rows", "seeds won", "paired Δ", "95 % CI", "detectable", "seeds for ±1", "Δ paper",
                     "grad share", "verdict"], comps, caption="Comparisons", align="llrrrrrrrl"),
              *[dataclasses.replace(b, caption="Cost") for b in cost.blocks]]
    notes = ["val mIoU in %, mean ± std over seeds; paired Δ = mean ± std of the per-seed differences (winner − "
             "other, same seed); 95 % CI = Student-t interval of that mean; detectable = the smallest difference "
             "these seeds find with 80 % power; seeds for ±1 = the seeds a 95 % CI of ±1.0 point would take at this "
             "paired std; verdicts as for the paper's claims (aakit report --claims)", ENGAGED_NOTE]
    title = state.description or f"Comparisons of grid {name}"
    return ReportTable(0, title, "grid", df, blocks, notes + cost.notes, label=f"Grid {name}")


def comparison_grids(results: Path, preset: str, suite: str | None) -> list[tuple[GridState, list[dict[str, Any]]]]:
    """Every grid of ``preset`` and ``suite`` that ran and declares ``compare:`` (a pilot, a
    question of ours beside the paper's tables), by grid name, with its comparisons."""
    out = []
    for state in read_grid_states(Path(results)):
        if state.error is not None or state.preset != preset or state.suite != suite:
            continue
        try:
            out.append((state, grid_comparisons_of(state)))
        except CompareError:
            continue
    return out


def suite_comparison_tables(results: Path, preset: str, suite: str | None) -> list[ReportTable]:
    """:func:`comparisons_table` of each of :func:`comparison_grids`."""
    return [comparisons_table(results, state.name, state=state, items=items)
            for state, items in comparison_grids(results, preset, suite)]
