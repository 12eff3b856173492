"""The noise floor of a grid's pairs (``aakit report --variance --compare NAME``; issue 30).

A noise grid (``experiments/grids/v2/noise.yaml``) pairs each reference run with a run that
differs from it by ONE source of noise (its ``compare:``: winner = the changed run, other = the
reference, paired by seed). For each pair ``p`` and class ``c`` (background included) let
``d_pc`` be the difference of the two runs' val IoU in points, and ``D_p = mean_c d_pc`` the
difference of their mIoU. Per source:

* **paired sd** — the sample standard deviation of ``D_p`` over the pairs (n - 1):
  :func:`paired_sd`; the noise a paired comparison of two methods carries from that source;
* **class share** — which classes carry it: ``D_p - mean D = (1/C) sum_c (d_pc - mean_p d_pc)``,
  so the sum of squares of ``D`` splits exactly over the classes,
  ``share_c = sum_p (D_p - mean D)(d_pc - mean_p d_pc) / (C sum_p (D_p - mean D)^2)``
  (:func:`class_shares`; the shares add up to 1, a class that moves against the rest has a
  negative share), with each class's own rms difference ``sqrt(mean_p d_pc^2)`` beside it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aakit.experiment.comparisons import _state, grid_comparisons_of
from aakit.experiment.results import ResultsIndex, load_results
from aakit.experiment.tables import Block, ReportTable

NOISE_COLUMNS = ["source", "winner", "other", "pairs", "mean_diff", "paired_sd", "seeds", "class_shares", "class_rms"]


def paired_sd(diffs: np.ndarray) -> float | None:
    """Sample sd (n - 1) of the per-pair differences; None below 2 pairs."""
    d = np.asarray(diffs, dtype=float)
    return float(d.std(ddof=1)) if len(d) >= 2 else None


def class_shares(class_diffs: np.ndarray) -> np.ndarray | None:
    """Per class, its share of the sum of squares of the mIoU differences (pairs x classes
    ``d_pc`` in); None below 2 pairs or when the mIoU differences do not vary."""
    d = np.asarray(class_diffs, dtype=float)
    if d.ndim != 2 or len(d) < 2:
        return None
    big = d.mean(axis=1)
    dev_big, dev = big - big.mean(), d - d.mean(axis=0, keepdims=True)
    ss = float((dev_big**2).sum())
    if ss == 0.0:
        return None
    return (dev_big[:, None] * dev).sum(axis=0) / (d.shape[1] * ss)


def _class_iou(index: ResultsIndex, hash_: str | None, metric: str) -> np.ndarray | None:
    runs = index.runs.get(hash_ or "")
    if not runs:
        return None
    block = runs[0].block(metric) or {}
    iou = block.get("iou")
    return 100 * np.asarray(iou, dtype=float) if isinstance(iou, list) and iou else None


def _rows_by_seed(state: Any, index: ResultsIndex) -> dict[str, dict[int, np.ndarray]]:
    out: dict[str, dict[int, np.ndarray]] = {}
    for p in state.points:
        if p.row is None or p.seed is None:
            continue
        iou = _class_iou(index, p.hash, p.metric)
        if iou is not None:
            out.setdefault(p.row, {})[p.seed] = iou
    return out


def class_names(state: Any, index: ResultsIndex) -> list[str] | None:
    """The class names of the data set the grid's first finished run read (its meta.json), or None."""
    from aakit.data.voc import load_info
    from aakit.errors import AakitError

    for p in state.points:
        runs = index.runs.get(p.hash or "")
        root = (runs[0].config.get("data") or {}).get("root") if runs else None
        if isinstance(root, str):
            try:
                return list(load_info(root).class_names)
            except (AakitError, OSError, ValueError):
                return None
    return None


def noise_pairs(results: Path, name: str, *, index: ResultsIndex | None = None) -> pd.DataFrame:
    """One line per ``compare:`` item of grid ``name``: its pairs, mean difference, paired sd
    (points), the seeds paired, and per class the share and rms difference."""
    state = _state(results, name)
    index = load_results(results) if index is None else index
    rows = _rows_by_seed(state, index)
    out: list[dict[str, Any]] = []
    for item in grid_comparisons_of(state):
        a, b = rows.get(item["winner"], {}), rows.get(item["other"], {})
        seeds = sorted(s for s in set(a) & set(b) if len(a[s]) == len(b[s]))
        d = np.array([a[s] - b[s] for s in seeds]) if seeds else np.zeros((0, 0))
        big = d.mean(axis=1) if seeds else np.zeros(0)
        shares = class_shares(d)
        out.append({"source": item.get("text") or f"{item['winner']} vs {item['other']}",
                    "winner": item["winner"], "other": item["other"], "pairs": len(seeds),
                    "mean_diff": float(big.mean()) if seeds else None, "paired_sd": paired_sd(big), "seeds": seeds,
                    "class_shares": None if shares is None else shares.tolist(),
                    "class_rms": np.sqrt((d**2).mean(axis=0)).tolist() if seeds else None})
    return pd.DataFrame(out, columns=NOISE_COLUMNS)


def _top(shares: list[float] | None, names: list[str], k: int = 3) -> str:
    if not shares:
        return "—"
    order = np.argsort(shares)[::-1][:k]
    return ", ".join(f"{names[c]} {100 * shares[c]:.0f} %" for c in order)


def noise_floor_table(results: Path, name: str, *, index: ResultsIndex | None = None, preset: str = "synthetic") -> ReportTable:
    """:func:`noise_pairs` as a report table: one row per source, then the class shares."""
    index = load_results(results) if index is None else index
    df = noise_pairs(results, name, index=index)
    k = max((len(s) for s in df["class_shares"] if s), default=0)
    known = class_names(_state(results, name), index) or []
    names = known if len(known) == k else [f"c{c}" for c in range(k)]

    def num(x: Any, fmt: str) -> str:
        return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, fmt)

    body = [[r.source, str(r.pairs), num(r.mean_diff, "+.2f"), num(r.paired_sd, ".2f"), _top(r.class_shares, names)]
            for r in df.itertuples(index=False)]
    per_class = [[names[c], *[num(s[c] * 100, ".0f") if s else "—" for s in df["class_shares"]]] for c in range(k)]
    blocks = [Block(["source", "pairs", "mean Δ", "paired sd", "classes with the largest share"], body, align="lrrrl")]
    if k:
        blocks.append(Block(["class", *df["winner"].tolist()], per_class, caption="Share of each class (%)"))
    notes = [f"grid {name}: each source's pairs differ from their reference by that source only, paired by seed; "
             "Δ = val mIoU difference in points, paired sd = sample sd of Δ over the pairs; class share = the "
             "class's part of the sum of squares of Δ (they add up to 100 %, background included)"]
    return ReportTable(0, f"Noise floor of grid {name}", preset, df, blocks, notes, label="Noise floor")
