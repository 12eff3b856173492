"""Where the spread of a table's numbers comes from (``aakit report --variance``; issue 14).

For the rows x seeds of one table (the seeds every row has), val mIoU (points) is split the
two-way way, ``y_rs = m + row_r + seed_s + e_rs``:

* **row** — the methods' effects (what the table is about);
* **seed** — what a seed does to every row alike (shared pre-training, data order,
  augmentation); pairing by seed removes it;
* **within seed** — the residual ``e``: what is left of a row-vs-row difference inside one seed,
  the noise of a paired comparison (the variance of a paired difference is about twice it);
* **evaluation set** — how much of a run's number is the choice of val images: the variance of
  its mIoU over image-level bootstrap resamples (runs that stored per-image confusion
  matrices, ``eval/*-confusions.npz``; issue 14), averaged over those runs. It is part of the
  within-seed residual, not added to it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aakit.experiment.claims import Seeded, per_seed
from aakit.experiment.results import ResultsIndex, load_results
from aakit.experiment.tables import Block, ReportTable
from aakit.metrics import mean_iou
from aakit.runs import read_confusions

VARIANCE_COLUMNS = ["component", "variance", "sd", "share", "n"]


def two_way(values: np.ndarray) -> dict[str, float]:
    """Sums of squares of a complete rows x seeds matrix: ``row``, ``seed``, ``within seed``, ``total``."""
    m = values.mean()
    row = values.mean(axis=1, keepdims=True) - m
    seed = values.mean(axis=0, keepdims=True) - m
    resid = values - m - row - seed
    r, s = values.shape
    return {"row": float(s * (row**2).sum()), "seed": float(r * (seed**2).sum()),
            "within seed": float((resid**2).sum()), "total": float(((values - m) ** 2).sum())}


def bootstrap_variance(per_image: np.ndarray, draws: int = 200, seed: int = 0) -> float:
    """Variance (points^2) of the mIoU of ``per_image`` (N, C, C) confusions over image resamples."""
    rng = np.random.default_rng(seed)
    n = len(per_image)
    values = [100 * mean_iou(per_image[rng.integers(0, n, n)].sum(0)) for _ in range(draws)]
    return float(np.var(values, ddof=1))


def _complete(rows: dict[str, Seeded]) -> tuple[list[str], list[int], np.ndarray]:
    names = [r for r, v in rows.items() if v]
    seeds = sorted(set.intersection(*(set(rows[r]) for r in names))) if names else []
    return names, seeds, np.array([[rows[r][s][0] for s in seeds] for r in names], dtype=float)


def _eval_variance(results: Path, rows: dict[str, Seeded], seeds: list[int]) -> tuple[float | None, int]:
    found = []
    for vals in rows.values():
        for s in seeds:
            run = Path(results) / "runs" / vals[s][1]
            for f in sorted((run / "eval").glob("val-*-confusions.npz")):
                conf = read_confusions(f)
                if conf and "plain" in conf and len(conf["plain"]) > 1:
                    found.append(bootstrap_variance(conf["plain"]))
                    break
    return (float(np.mean(found)) if found else None), len(found)


def variance_table(results: Path = Path("results"), preset: str = "synthetic", table: int = 1,
                   grids_dir: Path | None = None, *, index: ResultsIndex | None = None) -> ReportTable:
    """The components of :mod:`this module <aakit.experiment.variance>` for one table (the rows
    read with the ``val`` metric: Table 1's rfpc row re-reads the runs of another row)."""
    index = load_results(results, preset, grids_dir) if index is None else index
    trained = {row for row, g in index.rows(table).items() if g.runs and all(m == "val" for _, m in g.runs)}
    rows = {row: v for (t, row), v in per_seed(results, preset, grids_dir, index=index).items()
            if t == table and row in trained}  # a row that re-reads other rows' runs (rfpc) is no training
    names, seeds, values = _complete(rows)
    out: list[dict[str, object]] = []
    if len(names) >= 2 and len(seeds) >= 2:
        ss = two_way(values)
        dof = {"row": len(names) - 1, "seed": len(seeds) - 1, "within seed": (len(names) - 1) * (len(seeds) - 1)}
        for comp in ("row", "seed", "within seed"):
            var = ss[comp] / dof[comp]
            out.append({"component": comp, "variance": var, "sd": var**0.5, "share": ss[comp] / ss["total"],
                        "n": dof[comp]})
        ev, k = _eval_variance(results, {r: rows[r] for r in names}, seeds)
        out.append({"component": "evaluation set", "variance": ev, "sd": None if ev is None else ev**0.5,
                    "share": None, "n": k})
    df = pd.DataFrame(out, columns=VARIANCE_COLUMNS)
    body = [[str(r["component"]), _f(r["variance"], 2), _f(r["sd"], 2), _f(r["share"], 2, pct=True), str(r["n"])]
            for r in out]
    notes = [f"Table {table}: {len(names)} rows x {len(seeds)} seeds (the seeds every row has), val mIoU in points; "
             "variance = mean square (sum of squares / degrees of freedom), share = of the total sum of squares; "
             "evaluation set = image-bootstrap variance of a run's mIoU (200 draws) averaged over the n runs that "
             "stored per-image confusions, part of the within-seed component"]
    return ReportTable(0, f"Where the spread of Table {table} comes from", preset, df,
                       [Block(["component", "variance", "sd", "share", "n"], body, align="lrrrr")], notes,
                       label="Variance")


def _f(x: object, digits: int, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "—"
    return f"{100 * float(x):.0f} %" if pct else f"{float(x):.{digits}f}"
