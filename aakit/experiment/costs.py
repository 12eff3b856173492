"""What each grid cost: its units, the runs it trained itself, and their wall time.

Read from the run directories only (``summary.json`` ``wall_time_s``, ``provenance.json``
``created``/``host``/``init``), so a fresh clone reports the same costs without training. A grid
*trains* the runs whose directory carries its name (``<grid>-<row>-s<seed>-<hash>``); units it
shares with another grid (Table 3's "max" is Table 1's "+AA") count as *reused*, and cost it
nothing. A classification pre-training run that grid runs start from (``model.pretrained``)
gets its own line: every grid of the preset shares it.

``compute`` is the sum of the runs' wall times (one process at a time here); ``span`` is first
start to last end, which includes any pause between sittings of a resumable grid.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from aakit.experiment.results import ResultsIndex, RunRecord, load_results
from aakit.experiment.tables import Block, ReportTable

COST_COLUMNS = ["grid", "units", "done", "trained", "reused", "compute_s", "span_s", "hosts"]
_INIT_RUN = re.compile(r"runs/([^/]+)/checkpoints/")


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _times(run: RunRecord) -> tuple[float | None, float | None, str, str]:
    prov = run.provenance
    start, wall = prov.get("created"), run.summary.get("wall_time_s")
    end = start + wall if isinstance(start, (int, float)) and isinstance(wall, (int, float)) else None
    return start, end, str(prov.get("host") or "?"), str(prov.get("init") or "")


def _untimed(grid: str, run: RunRecord, start: float | None) -> list[str]:
    """What of a run's time the costs cannot count, one line each."""
    head = f"Grid costs {grid}: {run.path.name}"
    out = [] if isinstance(run.summary.get("wall_time_s"), (int, float)) else [
        f"{head}: no wall_time_s in summary.json, its compute counted as 0 s"]
    if start is None:
        out.append(f"{head}: no 'created' in provenance.json, left out of the span")
    return out


def grid_costs(results: Path = Path("results"), preset: str = "synthetic", grids_dir: Path | None = None, *,
               index: ResultsIndex | None = None, dropped: list[str] | None = None,
               grids: set[str] | None = None) -> pd.DataFrame:
    """One row per grid of ``preset`` (and per shared pre-training run); columns :data:`COST_COLUMNS`.

    ``grids``: the grids to cost; default those filling a paper table (a grid whose points are all
    table 0, such as a pilot, is costed by ``aakit report --compare NAME``).

    ``index``: the runs and grid points of ``preset`` already read (default: read them here).
    ``dropped`` (if given) receives a line per run whose time could not be counted: no
    ``wall_time_s`` in its summary (compute counts 0 s), no ``created`` in its provenance (the
    span leaves it out).
    """
    notes: list[str] = [] if dropped is None else dropped
    index = load_results(results, preset, grids_dir) if index is None else index
    runs = index.runs
    units: dict[str, list[str]] = {}
    if grids is None:
        grids = {p.grid for p in index.points if p.table != 0}
    for p in index.points:
        if p.grid in grids and p.hash not in units.setdefault(p.grid, []):
            units[p.grid].append(p.hash)
    rows: list[dict] = []
    pretrain: set[str] = set()  # run names of the pre-training runs the grids' runs started from
    for grid, hashes in units.items():
        done = [runs[h][0] for h in hashes if runs.get(h)]
        own = [r for r in done if r.path.name.startswith(f"{grid}-")]
        starts, ends, hosts, wall = [], [], set(), 0.0
        for r in own:
            start, end, host, init = _times(r)
            notes += _untimed(grid, r, start)
            wall += float(r.summary.get("wall_time_s") or 0.0)
            starts += [start] if start is not None else []
            ends += [end] if end is not None else []
            hosts.add(host)
            m = _INIT_RUN.search(init)
            if m:
                pretrain.add(m.group(1))
        rows.append({"grid": grid, "units": len(hashes), "done": len(done), "trained": len(own),
                     "reused": len(done) - len(own), "compute_s": wall if own else None,
                     "span_s": max(ends) - min(starts) if starts and ends else None,
                     "hosts": ",".join(sorted(hosts))})
    by_name = {r.path.name: r for rs in runs.values() for r in rs}  # finished runs only
    for name in sorted(pretrain & by_name.keys()):
        r = by_name[name]
        _, _, host, _ = _times(r)
        wall = float(r.summary.get("wall_time_s") or 0.0)
        rows.append({"grid": f"pre-training {name} (shared)", "units": 1, "done": 1, "trained": 1, "reused": 0,
                     "compute_s": wall, "span_s": wall, "hosts": host})
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def costs_table(results: Path = Path("results"), preset: str = "synthetic", grids_dir: Path | None = None, *,
                grids: set[str] | None = None,
                index: ResultsIndex | None = None) -> ReportTable:
    """The grid costs as a report table."""
    dropped: list[str] = []
    df = grid_costs(results, preset, grids_dir, index=index, dropped=dropped, grids=grids)
    out = [[r.grid, f"{r.done}/{r.units}", str(r.trained), str(r.reused),
            _hms(None if pd.isna(r.compute_s) else r.compute_s), _hms(None if pd.isna(r.span_s) else r.span_s),
            r.hosts or "—"] for r in df.itertuples(index=False)]
    header = ["grid", "units done", "trained", "reused", "compute (h:mm:ss)", "span", "hosts"]
    notes = ["compute = sum of the wall times of the runs the grid trained itself; reused = units another grid "
             "trained (same config hash); span = first start to last end, pauses between sittings included"]
    return ReportTable(0, "What each grid cost", preset, df, [Block(header, out, align="lrrrrrl")], notes,
                       label="Grid costs", dropped=dropped)
