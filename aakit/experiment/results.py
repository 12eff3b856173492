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

Reading a run is mostly parsing its ``config.yaml`` (pure-Python YAML: tens of milliseconds a
run, hundreds of runs). What :func:`read_runs` learnt of a finished run (its summary and
config) is kept, keyed by the run directory and the ``(size, mtime_ns, inode)`` of each file it
read (``config.yaml``, ``status.json``, ``summary.json``) and by the code that reads them
(:class:`RunCache`): in memory for the process (one report reads the runs several times), and,
when asked (``cache=``; ``aakit report`` gives ``results/.cache``), in a JSON file that later
processes reuse. A changed, added or removed file changes the key, so the run is read afresh; a
file written in the last two seconds is never trusted to the cache (its mtime could still be
shared by a second write); a corrupt run, or one without summary.json, is always read afresh.
"""
from __future__ import annotations

import functools
import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from aakit import yamlio
from aakit.errors import AakitError
from aakit.experiment.gridstate import GridState, read_grid_states
from aakit.files import atomic_write_text, read_json
from aakit.runs import is_run_dir, load_run


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

    def left_out(self, table: int, keys: Callable[[int, str], list[str]] | None = None) -> list[str]:
        """Why a point of ``table`` counts fewer runs than it could: one line per run left out.

        A point whose run directory exists but is unfinished or corrupt; a point with several
        finished runs (the first counts); a run whose summary lacks a metric of the table
        (``keys(table, metric)``: the summary keys that count, default :func:`table_keys`). A point
        never run is not listed: the table shows it (``runs`` column, ``missing``).
        """
        keys = table_keys if keys is None else keys
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
                for key in keys(table, p.metric):
                    if found[0].block(key) is None:
                        lacking.setdefault(key, []).append(f"{head}; s{p.seed} {found[0].name}: no '{key}' "
                                                           "metrics in summary.json")
            for key, lines in lacking.items():  # none of the row's runs has it: one line, not one per run
                out += lines if len(lines) < len(g.runs) else [
                    f"{head}; none of its {len(lines)} runs has '{key}' metrics in summary.json "
                    f"(not evaluated: aakit eval RUN --split {key.split('_')[0]})"]
        return out


# ----------------------------------------------------------------------------- the run cache
CACHE_FILE = "runs.json"  # in the cache directory (aakit report: results/.cache)
_CACHE_VERSION = 1
_READ_FILES = ("config.yaml", "status.json", "summary.json")  # what load_run(with_records=False) reads
_RACY_NS = 2_000_000_000  # a file this recent may be rewritten within its mtime's tick: not cached
_MEMO_ROOTS = 8  # results directories remembered in memory by one process
Signature = list  # per file of _READ_FILES: [size, mtime_ns, inode], or None where absent


def _signature(run: Path) -> Signature | None:
    """The key of what a run's files hold; None where one cannot be stat'ed (read it afresh)."""
    out: Signature = []
    for name in _READ_FILES:
        try:
            st = (run / name).stat()
        except FileNotFoundError:
            out.append(None)
            continue
        except OSError:
            return None
        out.append([st.st_size, st.st_mtime_ns, st.st_ino])
    return out


def _racy(sig: Signature, now_ns: int) -> bool:
    return any(f is not None and f[1] >= now_ns - _RACY_NS for f in sig)


def _plain(x: Any) -> bool:
    """Whether JSON gives ``x`` back as it is (YAML may hold int keys, dates, sets: those runs
    are not cached)."""
    if isinstance(x, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_plain(v) for v in x)
    return x is None or isinstance(x, (str, int, float, bool))


@functools.lru_cache(maxsize=1)
def reader_fingerprint() -> str:
    """A digest of the code that reads a run (:mod:`aakit.runs`, :mod:`aakit.files`,
    :mod:`aakit.yamlio`, this module): a cache written by other code is not used."""
    import aakit.files
    import aakit.runs
    import aakit.yamlio

    h = hashlib.sha256(f"aakit run cache {_CACHE_VERSION}".encode())
    for module in (aakit.runs, aakit.files, aakit.yamlio):
        h.update(Path(str(module.__file__)).read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:20]


class RunCache:
    """The finished runs already read: run directory name -> ``{"sig", "summary", "config"}``.

    ``file``: where it is kept between processes (None: in memory only). Unreadable, of another
    version or of other code: it starts empty. Written atomically, only when it changed; a
    directory that cannot be written leaves it in memory.
    """

    def __init__(self, file: Path | None = None, entries: dict[str, dict[str, Any]] | None = None) -> None:
        self.file = file
        self.entries: dict[str, dict[str, Any]] = entries or {}
        self.changed = False

    @classmethod
    def load(cls, file: Path) -> RunCache:
        try:
            data = json.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return cls(file)
        ok = (isinstance(data, dict) and data.get("version") == _CACHE_VERSION
              and data.get("reader") == reader_fingerprint() and isinstance(data.get("runs"), dict))
        return cls(file, data["runs"] if ok else None)

    def get(self, name: str, sig: Signature) -> dict[str, Any] | None:
        entry = self.entries.get(name)
        if isinstance(entry, dict) and entry.get("sig") == sig and isinstance(entry.get("summary"), dict) \
                and isinstance(entry.get("config"), dict):
            return entry
        return None

    def put(self, name: str, sig: Signature, summary: dict[str, Any], config: dict[str, Any]) -> None:
        if _plain(summary) and _plain(config):
            self.entries[name] = {"sig": sig, "summary": summary, "config": config}
            self.changed = True

    def drop(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            self.changed = True

    def keep_only(self, names: set[str]) -> None:
        """Forget the runs no longer there."""
        gone = set(self.entries) - names
        for name in gone:
            del self.entries[name]
        self.changed |= bool(gone)

    def save(self) -> None:
        if self.file is None or not self.changed:
            return
        text = json.dumps({"version": _CACHE_VERSION, "reader": reader_fingerprint(), "runs": self.entries},
                          separators=(",", ":"))
        try:
            atomic_write_text(self.file, text)
            self.changed = False
        except OSError:  # a read-only results directory: the report is made all the same
            pass


_MEMO: OrderedDict[str, RunCache] = OrderedDict()  # runs directory -> what this process read of it


def forget_runs() -> None:
    """Drop what this process remembers of the runs it read (the cache files stay)."""
    _MEMO.clear()


def _run_cache(runs: Path, cache: Path | None) -> RunCache:
    key = str(runs.resolve())
    memo = _MEMO.get(key)
    file = None if cache is None else Path(cache) / CACHE_FILE
    if memo is None:
        memo = RunCache.load(file) if file is not None else RunCache()
    elif file is not None and memo.file != file:  # read in memory before; now kept in a file too
        kept = RunCache.load(file)
        kept.entries.update(memo.entries)
        kept.changed = bool(memo.entries)
        memo = kept
    _MEMO[key] = memo
    _MEMO.move_to_end(key)
    while len(_MEMO) > _MEMO_ROOTS:
        _MEMO.popitem(last=False)
    return memo


# ----------------------------------------------------------------------------- reading runs
def _hash_of(d: Path, summary: Mapping[str, Any] | None) -> str:
    return str((summary or {}).get("hash") or d.name.rsplit("-", 1)[-1])


def _finished_or_not(d: Path, summary: Mapping[str, Any], config: Mapping[str, Any]) -> RunRecord | DroppedRun:
    if summary.get("status") != "finished":
        return DroppedRun(d, _hash_of(d, summary), f"summary.json says status {summary.get('status')!r}")
    return RunRecord(d, summary, config)


def read_runs(results: Path, cache: Path | None = None) -> tuple[dict[str, list[RunRecord]], list[DroppedRun], int]:
    """The finished runs under ``results/runs`` by config hash, the others (with why), and how many were seen.

    A corrupt run directory (no config.yaml; status.json or summary.json not a JSON object) fills
    no cell even if its summary says finished. ``cache``: a directory where what was read is
    kept for later processes (see :class:`RunCache`); what this process read is reused either way.
    """
    finished: dict[str, list[RunRecord]] = {}
    dropped: list[DroppedRun] = []
    seen = 0
    runs = Path(results) / "runs"
    memo = _run_cache(runs, cache) if runs.is_dir() else RunCache()
    now = time.time_ns()
    names: set[str] = set()
    for d in sorted(runs.iterdir()) if runs.is_dir() else []:
        if not is_run_dir(d):
            continue
        seen += 1
        names.add(d.name)
        sig = _signature(d)
        entry = memo.get(d.name, sig) if sig is not None else None
        if entry is not None:
            got = _finished_or_not(d, entry["summary"], entry["config"])
        else:
            memo.drop(d.name)  # changed (or never kept): read afresh, kept again below if it may be
            info = load_run(d, with_records=False)
            summary = info.summary
            h = _hash_of(d, summary)
            if info.problem:
                got = DroppedRun(d, h, f"corrupt: {info.problem}", corrupt=True)
            elif summary is None:
                got = DroppedRun(d, h, f"no summary.json (status: {info.status})")
            else:
                got = _finished_or_not(d, summary, info.config)
                if sig is not None and not _racy(sig, now) and sig == _signature(d):  # unchanged while read
                    memo.put(d.name, sig, summary, info.config)
        if isinstance(got, RunRecord):
            finished.setdefault(_hash_of(d, got.summary), []).append(got)
        else:
            dropped.append(got)
    memo.keep_only(names)
    memo.save()
    return finished, dropped, seen


def load_results(results: Path, preset: str | None = None, grids_dir: Path | None = None,
                 suite: str | None = None, *, cache: Path | None = None) -> ResultsIndex:
    """The runs under ``results/runs`` and (for a ``preset``) the grid points of its ``suite``, read once
    (``cache``: see :func:`read_runs`)."""
    runs, dropped, seen = read_runs(results, cache)
    points, notes = collect_points(results, preset, grids_dir, suite) if preset is not None else ([], [])
    return ResultsIndex(Path(results), preset, runs, dropped, seen, points, notes)
