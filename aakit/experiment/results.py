"""The stored results as one model: which runs finished, which were left out and why, and which
run fills which table cell.

:func:`load_results` reads a results directory once into a :class:`ResultsIndex`:

* ``runs`` — the finished runs (``summary.json`` with status finished) by config hash, each a
  :class:`RunRecord` (directory, summary, config);
* ``dropped`` — the other run directories, each a :class:`DroppedRun` with the reason
  (unfinished, no summary, corrupt: see :func:`aakit.runs.load_run`); ``seen`` counts all;
* ``points`` — the grid points of one preset as :class:`TablePoint` (table, row, seed, config
  hash, metric, grid): from ``results/grids/<name>/grid.json`` where a grid has run (read by
  :mod:`aakit.experiment.gridstate`), else expanded from the grid files under
  ``experiments/grids``; ``notes`` names grid files that could not be read.

The tables (:mod:`~aakit.experiment.report`), the claims, the grid costs and the figures read
this model; none of them reads run directories or grid files to fill a cell. This module
imports none of them, nor torch; optuna only through :func:`aakit.experiment.grid.load_grid`,
when a grid file has to be expanded.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from aakit import yamlio
from aakit.errors import AakitError
from aakit.experiment.gridstate import GridState, read_grid_states
from aakit.runs import is_run_dir, load_run, read_json


# ----------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class RunRecord:
    """A finished run: its directory, summary.json, config.yaml (and provenance.json, when asked)."""

    path: Path
    summary: Mapping[str, Any]
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @functools.cached_property
    def provenance(self) -> Mapping[str, Any]:
        """provenance.json (``created``, ``host``, ``init``...), read when first asked; {} if unreadable."""
        data = read_json(self.path / "provenance.json")
        return data if isinstance(data, dict) else {}

    def block(self, key: str) -> dict[str, Any] | None:
        """The summary's metrics block ``key`` (``val``, ``train_rfpc``...), if it is one."""
        b = (self.summary.get("metrics") or {}).get(key)
        return b if isinstance(b, dict) else None

    def miou(self, key: str) -> float | None:
        """The mIoU of metrics block ``key`` in %, if it has a number."""
        b = self.block(key)
        v = b.get("miou") if b else None
        return 100.0 * float(v) if isinstance(v, (int, float)) else None


@dataclass(frozen=True)
class DroppedRun:
    """A run directory that fills no cell, and why (``corrupt``: see :func:`aakit.runs.load_run`)."""

    path: Path
    hash: str
    reason: str
    corrupt: bool = False


def train_key(metric: str) -> str:
    """The train-split twin of a val metric key: ``val_rfpc`` -> ``train_rfpc``."""
    return "train" + metric[3:] if metric.startswith("val") else "train_" + metric


def test_key(metric: str) -> str:
    """The test-split twin of a val metric key (present only if someone evaluated on test)."""
    return "test" + metric[3:] if metric.startswith("val") else "test_" + metric


def protocol_of(block: Mapping[str, Any]) -> str:
    """``ss``, ``msf+crf``, ``ss+rfpc``... of one metrics block."""
    text = str(block.get("protocol") or "?")
    if block.get("crf"):
        text += "+crf"
    if block.get("rfpc"):
        text += "+rfpc"
    return text


def table_keys(table: int, metric: str) -> list[str]:
    """The summary keys a point's run must have for its cells of ``table`` (test: never expected)."""
    return [train_key(metric), metric] if table <= 4 else [metric]


# ----------------------------------------------------------------------------- grid points
@dataclass(frozen=True)
class TablePoint:
    """A grid point as the tables see it: the cell it fills and the config hash that fills it."""

    table: int
    row: str
    seed: int
    hash: str
    metric: str
    grid: str
    ran: bool = False  # from a grid.json (the grid has run), not expanded from its YAML


@dataclass
class RowRuns:
    """The runs that fill one row of a table."""

    expected: int = 0
    runs: list[tuple[RunRecord, str]] = field(default_factory=list)  # (run, metric)
    points: list[TablePoint] = field(default_factory=list)  # the points counted in ``expected``

    def column(self, key: Callable[[str], str] | None = None) -> tuple[list[float | None], list[str]]:
        """Each run's mIoU (%) of metrics block ``key(metric)`` (default: the point's metric itself),
        and the protocols of the blocks found."""
        values: list[float | None] = []
        protocols: list[str] = []
        for run, metric in self.runs:
            name = metric if key is None else key(metric)
            values.append(run.miou(name))
            b = run.block(name)
            if b is not None:
                protocols.append(protocol_of(b))
        return values, protocols


def default_grids_dir() -> Path:
    """``experiments/grids`` of the working directory, else the shipped grids (:mod:`aakit.presets`)."""
    from aakit.presets import presets_root

    local = Path("experiments") / "grids"
    return local if local.is_dir() else presets_root() / "grids"


def _ran_points(states: list[GridState], preset: str,
                suite: str | None = None) -> tuple[list[TablePoint], list[str], set[str]]:
    """The points of the grid.json files of ``preset`` and ``suite``; notes; the names of the
    grids seen (of every suite: their grid files are not expanded again)."""
    points: list[TablePoint] = []
    notes: list[str] = []
    covered: set[str] = set()
    for state in states:
        if state.error is not None or state.preset != preset:
            continue
        covered.add(state.name)
        if state.suite != suite:
            continue
        for p in state.points:
            if p.complete:
                points.append(TablePoint(p.table, p.row, p.seed, p.hash, p.metric,  # type: ignore[arg-type]
                                         state.name, ran=True))
            else:
                notes.append(f"{state.path}: a point without table/row/seed/hash was skipped")
        notes += [f"{state.path}: a point without table/row/seed/hash was skipped"] * state.malformed
    return points, notes, covered


def collect_points(results: Path, preset: str, grids_dir: Path | None = None,
                   suite: str | None = None) -> tuple[list[TablePoint], list[str]]:
    """Every grid point of ``preset`` in ``suite`` (a grid file's ``suite:``; None = the grids
    without one): from grid.json files, else from grid YAMLs. One suite at a time, so that two
    benchmarks (or two studies) filling the same paper table never mix in one report.

    Returns:
        (points, notes): notes name grid files that could not be read.
    """
    from aakit.experiment.grid import load_grid  # imports optuna: only when a grid file is expanded

    points, notes, covered = _ran_points(read_grid_states(Path(results)), preset, suite)
    grids_dir = default_grids_dir() if grids_dir is None else Path(grids_dir)
    for f in sorted(grids_dir.rglob("*.yaml")) if grids_dir.is_dir() else []:
        try:
            head = yamlio.safe_load(f.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            notes.append(f"{f}: not readable YAML, skipped")
            continue
        if not isinstance(head, dict) or head.get("name", f.stem) in covered:
            continue
        if head.get("preset") not in (None, preset) or head.get("suite") != suite:
            continue
        try:
            grid = load_grid(f)
        except AakitError as e:
            notes.append(f"grid skipped: {e}")
            continue
        if grid.preset != preset:
            continue
        covered.add(grid.name)
        points += [TablePoint(p.table, p.row, p.seed, p.hash, p.metric, grid.name) for p in grid.points]
        notes += _absent_data_notes(grid, f)
    return points, notes


def _absent_data_notes(grid: Any, file: Path) -> list[str]:
    """A grid expanded from its file hashes each point with its data set's digest; where that
    data set is absent the hashes cannot be those its runs were made with: say so."""
    from aakit.data.identity import data_digest

    roots = sorted({(p.config.data.root, p.config.data.train_split, p.config.data.val_split) for p in grid.points})
    absent = [r for r, tr, va in roots if data_digest(r, (tr, va)) is None]
    return [f"{file}: grid {grid.name} has not run here and its data set {r} is absent, so its points' hashes "
            f"cannot match its runs (where the data is: aakit grid FILE --status writes its grid.json)" for r in absent]


# ----------------------------------------------------------------------------- the index
@dataclass
class ResultsIndex:
    """A results directory read once: finished runs by hash, the runs left out, the grid points."""

    root: Path
    preset: str | None = None
    runs: dict[str, list[RunRecord]] = field(default_factory=dict)
    dropped: list[DroppedRun] = field(default_factory=list)
    seen: int = 0  # run directories seen, finished or not
    points: list[TablePoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def rows(self, table: int) -> dict[str, RowRuns]:
        """Row -> the finished runs of its points (each config hash counted once per row).

        Where a grid filling this table has run, only the points of grids that ran count (their
        grid.json holds the hashes really used); the grid files' expansions fill the other tables.
        """
        points = [p for p in self.points if p.table == table]
        if any(p.ran for p in points):
            points = [p for p in points if p.ran]
        out: dict[str, RowRuns] = {}
        seen: set[tuple[str, str]] = set()
        for p in points:
            if (p.row, p.hash) in seen:
                continue
            seen.add((p.row, p.hash))
            g = out.setdefault(p.row, RowRuns())
            g.expected += 1
            g.points.append(p)
            if self.runs.get(p.hash):
                g.runs.append((self.runs[p.hash][0], p.metric))
        return out

    def left_out(self, table: int) -> list[str]:
        """Why a point of ``table`` counts fewer runs than it could: one line per run left out.

        A point whose run directory exists but is unfinished or corrupt; a point with several
        finished runs (the first counts); a run whose summary lacks a metric of the table. A point
        never run is not listed: the table shows it (``runs`` column, ``missing``).
        """
        dropped: dict[str, list[DroppedRun]] = {}
        for s in self.dropped:
            dropped.setdefault(s.hash, []).append(s)
        out: list[str] = []
        for row, g in self.rows(table).items():
            head = f"Table {table} {row}: {len(g.runs)}/{g.expected} seeds"
            lacking: dict[str, list[str]] = {}  # metric key -> the lines of the runs without it
            for p in g.points:
                found = self.runs.get(p.hash) or []
                if not found:
                    out += [f"{head}; s{p.seed} {s.path.name}: {s.reason}" for s in dropped.get(p.hash, [])]
                    continue
                if len(found) > 1:
                    out.append(f"{head}; s{p.seed}: {len(found)} finished runs with hash {p.hash}, only "
                               f"{found[0].name} counts, not {', '.join(r.name for r in found[1:])}")
                for key in table_keys(table, p.metric):
                    if found[0].block(key) is None:
                        lacking.setdefault(key, []).append(f"{head}; s{p.seed} {found[0].name}: no '{key}' "
                                                           "metrics in summary.json")
            for key, lines in lacking.items():  # none of the row's runs has it: one line, not one per run
                out += lines if len(lines) < len(g.runs) else [
                    f"{head}; none of its {len(lines)} runs has '{key}' metrics in summary.json "
                    f"(not evaluated: aakit eval RUN --split {key.split('_')[0]})"]
        return out


def read_runs(results: Path) -> tuple[dict[str, list[RunRecord]], list[DroppedRun], int]:
    """The finished runs under ``results/runs`` by config hash, the others (with why), and how many were seen.

    A corrupt run directory (no config.yaml; status.json or summary.json not a JSON object) fills
    no cell even if its summary says finished.
    """
    finished: dict[str, list[RunRecord]] = {}
    dropped: list[DroppedRun] = []
    seen = 0
    runs = Path(results) / "runs"
    for d in sorted(runs.iterdir()) if runs.is_dir() else []:
        if not is_run_dir(d):
            continue
        seen += 1
        info = load_run(d, with_records=False)
        summary = info.summary
        h = str((summary or {}).get("hash") or d.name.rsplit("-", 1)[-1])
        if info.problem:
            dropped.append(DroppedRun(d, h, f"corrupt: {info.problem}", corrupt=True))
        elif summary is None:
            dropped.append(DroppedRun(d, h, f"no summary.json (status: {info.status})"))
        elif summary.get("status") != "finished":
            dropped.append(DroppedRun(d, h, f"summary.json says status {summary.get('status')!r}"))
        else:
            finished.setdefault(h, []).append(RunRecord(d, summary, info.config))
    return finished, dropped, seen


def load_results(results: Path, preset: str | None = None, grids_dir: Path | None = None,
                 suite: str | None = None) -> ResultsIndex:
    """The runs under ``results/runs`` and (for a ``preset``) the grid points of its ``suite``, read once."""
    runs, dropped, seen = read_runs(results)
    points, notes = collect_points(results, preset, grids_dir, suite) if preset is not None else ([], [])
    return ResultsIndex(Path(results), preset, runs, dropped, seen, points, notes)
