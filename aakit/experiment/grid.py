"""Ablation grids: one YAML per paper table, resumable, shared by many workers and machines.

A grid file names a base config, the seeds, and either explicit rows or axes to cross; each
point says which paper table/row (and which metric of the run) it fills::

    name: synthetic-table1            # default: the file's stem
    base: ../synthetic/full.yaml      # relative to this file
    preset: synthetic
    seeds: [0, 1, 2]                  # a row may list its own: {table, row, set, seeds: [0, ..., 19]}
    set: {train.epochs: 6}            # optional, applied to every point
    order: seeds                      # optional: run seed 0 of every row first (default: rows)
    compare:                          # optional: paired comparisons for aakit report --compare
      - {winner: CLS+CE+AA, other: CLS+CE, text: AA improves the baseline}
    suite: v2                         # optional: the report reads one suite at a time (--suite)
    description: what the grid asks   # optional: the title of its comparisons in the report
    rows:
      - {table: 1, row: CLS+CE, set: {loss.affinity: none, loss.label_reassign: false}}
      - {table: 1, row: CLS+CE+AA+LR+rfpc, set: {}, metric: val_rfpc}

    # or: table: 4, row: "gamma={loss.gamma}", axes: {loss.gamma: [0, 0.5, 1, 2, 5]}

A point's config = base, then the grid's ``set``, the point's ``set``, ``train.seed = seed``,
then the command line's ``--set``. Its identity is that config's hash (``Config.hash()``), the
same hash that names the run directory ``results/runs/<name>-<hash>/``. Points with equal
hashes (Table 1's "+AA+LR" and "+AA+LR+rfpc" rows are one training evaluated twice) are one
unit of work.

How the work is handed out (several processes, several machines, crashes)
------------------------------------------------------------------------
The units are handed out through an Optuna study ``grid-<name>`` on a shared storage (default:
the journal file ``results/studies/grid-<name>.log``; ``--storage postgresql://...`` for
machines). Optuna's GridSampler would pick a random unvisited cell, which two workers can both
pick, and it never revisits a cell whose trial stayed RUNNING after a ``kill -9``. So each
worker *claims* a unit itself, with a trial:

1. Done units are skipped: a finished ``summary.json`` with that hash under ``results/runs``
   (finished runs are never redone), or a COMPLETE trial of the unit (finished elsewhere).
2. To claim a free unit the worker creates a RUNNING trial carrying ``point = <hash>`` and its
   identity (host, pid, session, heartbeat) in one storage operation. Storages number trials in
   the order they are created, so it then re-reads the unit's trials: if a live RUNNING trial
   with a *smaller* number (or a COMPLETE one) exists, it lost the race, marks its own trial FAIL
   (``outcome = "duplicate"``) and moves on. Two workers can never both see themselves first.
3. The winner trains (``train(...)``, resuming an unfinished run directory of the same hash
   from its checkpoint), refreshing the trial's heartbeat; the trial ends COMPLETE with the
   metric as its value, or FAIL with ``outcome = "error"`` (or ``"interrupted"`` on Ctrl-C).
4. A worker killed midway leaves its trial RUNNING. It counts as free again as soon as its
   process is seen gone (same host: at once) or its heartbeat is older than ``grace`` seconds
   (other hosts); the next worker marks it FAIL (``outcome = "stale"``) and takes the unit.
5. Failed units run again on the next invocation; within one invocation (its ``session``) a
   unit that failed is not retried, so a broken config cannot loop.

Every worker rewrites ``results/grids/<name>/grid.json`` (atomically) after each unit, for the
TUI and the report::

    {"name", "file", "preset", "storage", "study", "updated",
     "points": [{"id", "table", "row", "params", "seed", "hash", "metric", "run", "state"}]}

with ``state`` one of ``done | running | missing | failed``.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence, Unpack

from optuna.trial import FrozenTrial, TrialState

from aakit.config import Config, ConfigError, apply_overrides, from_dict
from aakit.data.identity import require_data_root
from aakit.errors import AakitError
from aakit.experiment import studies
from aakit.experiment.gridstate import parse_comparisons
from aakit.experiment.launch import Cluster, describe_jobs
from aakit.experiment.lifecycle import (
    Claim,
    Job,
    Lifecycle,
    Say,
    UnitFailed,
    WorkerSpec,
    metric_value,
    one_line,
    printer,
)
from aakit.experiment.specfile import SpecFile, read_spec_file
from aakit.experiment.workers import Launch, RunOptions, check_workers
from aakit.files import atomic_write_json, read_json
from aakit.runs import run_dir_name, safe_name

GRID_KEYS = {"name", "base", "preset", "seeds", "set", "table", "metric", "rows", "axes", "row", "description",
             "order", "compare", "suite"}
ORDERS = ("rows", "seeds")
ROW_KEYS = {"table", "row", "set", "metric", "seeds"}
STATES = ("done", "running", "missing", "failed")


class GridError(AakitError):
    """A grid file that cannot be used (missing file, bad key, no points, bad value)."""


# ----------------------------------------------------------------------------- the grid
@dataclass
class GridPoint:
    """One cell of one paper table for one seed."""

    id: str
    table: int
    row: str
    params: dict[str, Any]
    seed: int
    metric: str
    config: Config
    overrides: list[str]

    @functools.cached_property
    def hash(self) -> str:
        """The config hash: the point's identity and the suffix of its run directory."""
        return self.config.hash()

    @property
    def run_name(self) -> str:
        return self.config.name


@dataclass
class Grid:
    """A loaded and expanded grid file."""

    name: str
    file: Path
    preset: str
    points: list[GridPoint]
    compare: list[dict[str, Any]] = field(default_factory=list)  # the file's compare: (checked)
    suite: str | None = None  # the report suite its tables belong to (aakit report --suite)
    description: str | None = None  # one line on what the grid asks (the report's title for its comparisons)

    def units(self) -> list[GridPoint]:
        """One point per distinct config hash (the work to do), in file order."""
        seen: dict[str, GridPoint] = {}
        for p in self.points:
            seen.setdefault(p.hash, p)
        return list(seen.values())


def format_value(value: Any) -> str:
    """How a parameter value appears in row labels: lists as ``4-8-12``, floats as ``0.5``."""
    if isinstance(value, (list, tuple)):
        return "-".join(format_value(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


SEED_RELATIVE = re.compile(r"^\{seed\}(?:\s*\+\s*(\d+))?$")


def seed_relative(values: dict[str, Any], seed: int, where: str) -> dict[str, Any]:
    """A ``set:`` value ``"{seed}"`` or ``"{seed} + N"`` is the point's seed (plus N), for the keys
    that take one source of noise from train.seed (``train.init_seed: "{seed} + 1000"``)."""
    out = dict(values)
    for k, v in values.items():
        if isinstance(v, str) and "{seed}" in v:
            m = SEED_RELATIVE.match(v.strip())
            if m is None:
                raise GridError(f"{where}: {k} = {v!r}: a seed-relative value is \"{{seed}}\" or \"{{seed}} + N\"")
            out[k] = seed + int(m.group(1) or 0)
    return out


def override_strings(values: dict[str, Any]) -> list[str]:
    """``{"loss.gamma": 0.5}`` -> ``["loss.gamma=0.5"]`` (JSON values, which YAML parses back)."""
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


def _fill_template(template: str, params: dict[str, Any], where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in params:
            raise GridError(f"{where}: row template names {{{key}}}, which is not an axis")
        return format_value(params[key])

    return re.sub(r"\{([A-Za-z0-9_.]+)\}", sub, template)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GridError(f"{where} should be a mapping of dotted keys to values")
    for k in value:
        if not isinstance(k, str) or not k:
            raise GridError(f"{where}: key {k!r} should be a dotted config key")
    return dict(value)


class _Row(NamedTuple):
    """A row of a grid file, before its checks: table, row label, parameters (its set:), metric,
    and its own seeds (None: the grid's)."""

    table: Any
    row: Any
    params: dict[str, Any]
    metric: Any
    seeds: list[int] | None = None


def load_grid(path: str | Path, overrides: Sequence[str] = ()) -> Grid:
    """Read, check and expand a grid file.

    Args:
        path: the grid YAML.
        overrides: ``--set`` items applied last to every point.

    Raises:
        GridError: one line naming the file and the key, row or value at fault.
    """
    head = read_spec_file(path, kind="grid", keys=GRID_KEYS, shape="base:, seeds:, rows: or axes:", error=GridError)
    seeds = _seeds(head)
    common = _mapping(head.spec.get("set"), f"{head.path}: set:")
    rows = _rows(head.spec, head.path)
    points = _expand(head, rows, seeds, common, overrides)
    every_seed = list(dict.fromkeys(seeds + [s for r in rows for s in r.seeds or []]))
    points = _ordered(points, head, every_seed)
    presets = {p.config.preset for p in points}
    if len(presets) > 1:
        raise GridError(f"{head.path}: points mix presets {sorted(presets)}; set preset: in the grid file")
    compare = comparisons(head.spec, head.path, {p.row for p in points})
    suite = head.spec.get("suite")
    if suite is not None and (not isinstance(suite, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", suite)):
        raise GridError(f"{head.path}: suite: should be a name (letters, digits, _ . -), got {suite!r}")
    description = head.spec.get("description")
    if description is not None and (not isinstance(description, str) or not description.strip()):
        raise GridError(f"{head.path}: description: should be a line of text, got {description!r}")
    return Grid(name=head.name, file=head.path, preset=presets.pop(), points=points, compare=compare, suite=suite,
                description=" ".join(description.split()) if description else None)


def comparisons(spec: dict[str, Any], path: Path, rows: set[str] | None = None) -> list[dict[str, Any]]:
    """The grid file's ``compare:`` list, checked (:func:`aakit.experiment.gridstate.parse_comparisons`)."""
    return parse_comparisons(spec.get("compare"), str(path), rows, GridError)


def _ordered(points: list[GridPoint], head: SpecFile, seeds: list[int]) -> list[GridPoint]:
    """``order: rows`` (default): every seed of a row, row after row; ``order: seeds``: every row
    of a seed, seed after seed, so an unfinished grid holds whole seeds, i.e. paired comparisons."""
    order = head.spec.get("order", "rows")
    if order not in ORDERS:
        raise GridError(f"{head.path}: order: should be one of {', '.join(ORDERS)}, got {order!r}")
    if order == "rows":
        return points
    return sorted(points, key=lambda p: seeds.index(p.seed))  # stable: rows keep their order


def _seeds(head: SpecFile) -> list[int]:
    """The grid's ``seeds:`` (default: the base config's train.seed)."""
    return _seed_list(head.spec.get("seeds", [head.base.get("train", {}).get("seed", 0)]), f"{head.path}: seeds:")


def _seed_list(seeds: Any, where: str) -> list[int]:
    """A checked list of seeds: integers, at least one, none twice."""
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise GridError(f"{where} should be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise GridError(f"{where} {seeds!r} repeats a seed")
    return seeds


def _rows(spec: dict[str, Any], path: Path) -> list[_Row]:
    """The grid's rows: its explicit rows:, or the crossing of its axes:."""
    if ("rows" in spec) == ("axes" in spec):
        raise GridError(f"{path}: needs exactly one of rows: (explicit points) or axes: (crossed)")
    table, metric = spec.get("table"), spec.get("metric", "val")
    if "rows" in spec:
        rows = _explicit_rows(spec["rows"], path, table, metric)
    else:
        rows = _crossed_rows(spec, path, table, metric)
    if not rows:
        raise GridError(f"{path}: the grid has no points (empty rows: or an empty axis)")
    return rows


def _explicit_rows(rows: Any, path: Path, table: Any, metric: Any) -> list[_Row]:
    """``rows: [{table, row, set, metric, seeds}, ...]`` (table, metric and seeds default to the
    grid's; a row's own ``seeds:`` replaces the grid's for that row: list them all, e.g. 0-19 where
    one comparison needs more seeds than the rest)."""
    if not isinstance(rows, list):
        raise GridError(f"{path}: rows: should be a list of {{table, row, set, metric}}")
    out = []
    for i, r in enumerate(rows):
        where = f"{path}: rows[{i}]"
        if not isinstance(r, dict):
            raise GridError(f"{where} should be a mapping with table, row, set")
        bad = sorted(set(r) - ROW_KEYS)
        if bad:
            raise GridError(f"{where}: unknown key {bad[0]!r} (known: {', '.join(sorted(ROW_KEYS))})")
        seeds = _seed_list(r["seeds"], f"{where}.seeds:") if "seeds" in r else None
        out.append(_Row(r.get("table", table), r.get("row"), _mapping(r.get("set"), f"{where}.set"),
                        r.get("metric", metric), seeds))
    return out


def _crossed_rows(spec: dict[str, Any], path: Path, table: Any, metric: Any) -> list[_Row]:
    """``axes: {key: [values]}`` crossed, each combination labelled by the ``row:`` template."""
    axes = _mapping(spec["axes"], f"{path}: axes:")
    for k, v in axes.items():
        if not isinstance(v, list):
            raise GridError(f"{path}: axes: {k} should be a list of values")
    if not axes or not all(axes.values()):
        return []
    template = str(spec.get("row") or ", ".join(f"{k}={{{k}}}" for k in axes))
    combos = (dict(zip(axes.keys(), combo)) for combo in itertools.product(*axes.values()))
    return [_Row(table, _fill_template(template, params, str(path)), params, metric) for params in combos]


def _expand(head: SpecFile, rows: list[_Row], seeds: list[int], common: dict[str, Any],
            overrides: Sequence[str]) -> list[GridPoint]:
    """Every row for every seed, as points (each checked against the config schema)."""
    points: list[GridPoint] = []
    ids: set[str] = set()
    for row in rows:
        _check_row(row, head.path)
        for seed in row.seeds or seeds:
            point = _point(head, row, seed, common, overrides)
            if point.id in ids:
                raise GridError(f"{head.path}: table {row.table} row {row.row!r} seed {seed} appears twice")
            ids.add(point.id)
            points.append(point)
    return points


def _check_row(row: _Row, path: Path) -> None:
    if not isinstance(row.table, int) or isinstance(row.table, bool) or not 0 <= row.table <= 6:
        raise GridError(f"{path}: row {row.row!r}: table should be 1..6 (a paper table) or 0 (none), "
                        f"got {row.table!r}")
    if not isinstance(row.row, str) or not row.row:
        raise GridError(f"{path}: a point of table {row.table} has no row: label")
    if not isinstance(row.metric, str) or not row.metric:
        raise GridError(f"{path}: row {row.row!r}: metric should name a summary metrics key like val")


def _point(head: SpecFile, row: _Row, seed: int, common: dict[str, Any], overrides: Sequence[str]) -> GridPoint:
    """One row for one seed: base, the grid's set:, the row's, the seed, the preset, then ``--set``."""
    values = {**seed_relative({**common, **row.params}, seed, f"{head.path}: row {row.row!r}"), "train.seed": seed}
    if head.spec.get("preset") is not None:
        values["preset"] = head.spec["preset"]
    try:
        data = apply_overrides(apply_overrides(head.base, values), list(overrides))
        data["name"] = safe_name(f"{head.name}-{row.row}-s{seed}")
        cfg = from_dict(data, f"{head.path} (row {row.row!r}, seed {seed})")
    except ConfigError as e:
        raise GridError(str(e)) from None
    return GridPoint(safe_name(f"t{row.table}-{row.row}-s{seed}"), row.table, row.row, dict(row.params), seed,
                     row.metric, cfg, override_strings(values) + list(overrides))


def grid_file(table: int, preset: str, root: Path = Path("experiments/grids")) -> Path:
    """The shipped grid of a paper table: ``experiments/grids[/voc]/table<N>.yaml``."""
    return (Path(root) / "voc" if preset == "voc" else Path(root)) / f"table{table}.yaml"


def state_path(results: Path, name: str) -> Path:
    return Path(results) / "grids" / name / "grid.json"


# ----------------------------------------------------------------------------- run dirs
def is_finished_run(d: Path, config_hash: str) -> bool:
    """Whether run directory ``d`` holds a finished run of this hash (its summary says so)."""
    summary = read_json(Path(d) / "summary.json")
    return (isinstance(summary, dict) and summary.get("status") == "finished"
            and summary.get("hash", config_hash) == config_hash)


def find_finished_run(results: Path, config_hash: str) -> Path | None:
    """A run directory of this hash whose summary says finished, or None."""
    runs = Path(results) / "runs"
    if not runs.is_dir():
        return None
    return next((d for d in sorted(runs.glob(f"*-{config_hash}")) if is_finished_run(d, config_hash)), None)


def find_resumable_run(results: Path, config_hash: str, preferred: str) -> Path | None:
    """An unfinished run directory of this hash with a checkpoint (the preferred name first)."""
    runs = Path(results) / "runs"
    if not runs.is_dir():
        return None
    cands = [d for d in runs.glob(f"*-{config_hash}") if (d / "checkpoints" / "last.pt").is_file()]
    cands.sort(key=lambda d: (d.name != preferred, d.name))
    return cands[0] if cands else None


# ----------------------------------------------------------------------------- state
def _trials_by_point(trials: list[FrozenTrial]) -> dict[str, list[FrozenTrial]]:
    out: dict[str, list[FrozenTrial]] = {}
    for t in trials:
        h = t.user_attrs.get("point")
        if isinstance(h, str):
            out.setdefault(h, []).append(t)
    return out


def point_states(grid: Grid, results: Path, trials: list[FrozenTrial], grace: float) -> list[dict[str, Any]]:
    """The grid.json ``points`` list: each point with its run and state."""
    by_point = _trials_by_point(trials)
    out = []
    cache: dict[str, tuple[str | None, str]] = {}
    for p in grid.points:
        h = p.hash
        if h not in cache:
            ts = sorted(by_point.get(h, []), key=lambda t: t.number)
            finished = find_finished_run(results, h)
            complete = [t for t in ts if t.state == TrialState.COMPLETE]
            live = [t for t in ts if studies.is_live(t, grace)]
            tried = [t for t in ts if t.user_attrs.get("outcome") not in ("duplicate",)]
            run = finished.name if finished else None
            if finished or complete:
                state = "done"
                run = run or complete[-1].user_attrs.get("run")
            elif live:
                state, run = "running", live[0].user_attrs.get("run")
            elif tried and tried[-1].state == TrialState.FAIL and tried[-1].user_attrs.get("outcome") == "error":
                state, run = "failed", tried[-1].user_attrs.get("run")
            else:
                state = "missing"
            cache[h] = (run, state)
        run, state = cache[h]
        out.append({
            "id": p.id, "table": p.table, "row": p.row, "params": p.params, "seed": p.seed,
            "hash": h, "metric": p.metric, "run": run, "state": state,
        })
    return out


def write_state(grid: Grid, results: Path, points: list[dict[str, Any]], storage: str, study: str) -> Path:
    """Atomically write ``results/grids/<name>/grid.json``; left as it is when nothing but the
    time would change (a status query leaves a committed grid.json clean)."""
    path = state_path(results, grid.name)
    state = {
        "name": grid.name, "file": str(grid.file), "preset": grid.preset, "storage": storage,
        "study": study, "updated": time.time(), "points": points, "compare": grid.compare,
        **({"suite": grid.suite} if grid.suite else {}),
        **({"description": grid.description} if grid.description else {}),
    }
    old = read_json(path)
    if isinstance(old, dict) and {**old, "updated": None} == json.loads(json.dumps({**state, "updated": None})):
        return path
    atomic_write_json(path, state)
    return path


def grid_status(
    grid_path: str | Path,
    *,
    overrides: Sequence[str] = (),
    results: Path = Path("results"),
    storage: str | None = None,
    grace: float = 600.0,
    write: bool = True,
) -> list[dict[str, Any]]:
    """Each point's state without running anything (also refreshes grid.json when ``write``)."""
    grid = load_grid(grid_path, overrides)
    default = studies.default_storage_path(results, "grid", grid.name)
    study_name = f"grid-{grid.name}"
    if not write and storage is None and not default.exists():
        return point_states(grid, results, [], grace)  # nothing ran yet: create no file
    st = studies.open_storage(storage, default, read_only=not write)  # --dry-run: a torn journal is warned of
    study = studies.get_or_create_study(st, study_name, direction="maximize")
    points = point_states(grid, results, study.get_trials(deepcopy=False), grace)
    if write:
        write_state(grid, results, points, studies.describe_storage(storage, default), study_name)
    return points


# ----------------------------------------------------------------------------- running
@dataclass
class GridResult:
    """What one ``run_grid`` call did."""

    name: str
    ran: list[str] = field(default_factory=list)  # run dir names trained (or finished) here
    failed: list[tuple[str, str]] = field(default_factory=list)  # (point id, one-line error)
    points: list[dict[str, Any]] = field(default_factory=list)  # final grid.json points
    job_ids: list[str] = field(default_factory=list)  # --launcher: the submitit jobs (SLURM: submitted only)
    jobs: Path | None = None  # --launcher: their folder (job files, logs)

    def counts(self) -> dict[str, int]:
        c = {s: 0 for s in STATES}
        for p in self.points:
            c[p["state"]] += 1
        return c


@dataclass
class _PointReport:
    """A grid point's trial: each epoch's val mIoU as an intermediate value, the point's metric
    from the finished run's summary as its value (no pruning)."""

    lc: Lifecycle
    claim: Claim
    metric: str

    def on_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        miou = record.get("miou")
        if isinstance(miou, (int, float)):
            with contextlib.suppress(Exception):  # a missed value must not stop the training
                self.lc.storage.set_trial_intermediate_value(self.claim.trial_id, int(epoch), float(miou))

    def value(self, run_dir: Path) -> float:
        summary = read_json(run_dir / "summary.json")
        if not isinstance(summary, dict) or summary.get("status") != "finished":
            raise UnitFailed(f"{run_dir.name} ended without a finished summary.json")
        value = metric_value(summary, self.metric)
        return 0.0 if value is None else value

    def complete(self, value: float, run: str) -> None:
        self.lc.finish(self.claim, TrialState.COMPLETE, value, attrs={"outcome": "done", "run": run})

    def prune(self) -> None:
        self.lc.finish(self.claim, TrialState.PRUNED)


def _grid_worker(
    spec: WorkerSpec, grid_path: str, overrides: list[str], *, worker_index: int = 0,
    log: Say | None = None,
) -> dict[str, Any]:
    """One worker's loop: claim a free point, train it, repeat until nothing is left to take."""
    grid = load_grid(grid_path, overrides)
    lc = Lifecycle.open(spec, studies.default_storage_path(spec.results, "grid", grid.name), f"grid-{grid.name}")
    say = log or printer(f"{grid.name} w{worker_index}")
    attempted: set[str] = set()  # units done, or tried in this worker: not claimed again
    ran: list[str] = []
    failed: list[tuple[str, str]] = []
    in_a_row = 0  # this worker's points failed since its last success
    _refresh_state(grid, lc, say)
    while (claimed := _claim_next(grid, lc, attempted)) is not None:
        unit, claim = claimed
        job = _job(unit, lc, claim)
        _refresh_state(grid, lc, say)
        say(f"{unit.row} seed {unit.seed} ({unit.hash}){' resuming' if job.resume else ''} [trial {claim.number}]")
        try:
            outcome = lc.run_unit(claim, job, _PointReport(lc, claim, unit.metric))
        finally:
            _refresh_state(grid, lc, say)
        if outcome.state == "done" and outcome.run is not None:
            ran.append(outcome.run)
            in_a_row = 0
            continue
        failed.append((unit.id, outcome.message))
        say(f"FAILED {unit.row} seed {unit.seed}: {outcome.message}")
        in_a_row += 1
        if in_a_row >= spec.max_failures:
            say(f"stopping this worker: {in_a_row} points in a row failed (the last: {outcome.message}); "
                f"the points left stay missing: mend the cause and run the grid again (--max-failures N)")
            break
    _refresh_state(grid, lc, say)
    return {"ran": ran, "failed": failed}


def _refresh_state(grid: Grid, lc: Lifecycle, say: Say) -> None:
    """Rewrite grid.json from the study: a view, so a failure is said, never raised."""
    results = lc.spec.results
    try:
        points = point_states(grid, results, lc.trials(), lc.spec.grace)
        write_state(grid, results, points, lc.where, lc.study.study_name)
    except Exception as e:  # noqa: BLE001 - the state file must never stop the work
        say(f"could not write grid.json: {one_line(e)}")


def _claim_next(grid: Grid, lc: Lifecycle, attempted: set[str]) -> tuple[GridPoint, Claim] | None:
    """Free the points of dead workers, then claim the first free point (None: nothing left)."""
    lc.recover_stale()
    by_point = _trials_by_point(lc.trials())
    for unit in grid.units():
        if not _is_free(unit, by_point.get(unit.hash, []), lc, attempted):
            continue
        claim = _claim_point(lc, unit)
        if claim is not None:
            attempted.add(unit.hash)
            return unit, claim
    return None


def _is_free(unit: GridPoint, trials: list[FrozenTrial], lc: Lifecycle, attempted: set[str]) -> bool:
    """May ``unit`` be claimed now? Adds it to ``attempted`` once it is done, or failed in this
    invocation (its ``session``: the next invocation retries it, so a broken config cannot loop)."""
    if unit.hash in attempted:
        return False
    if find_finished_run(lc.spec.results, unit.hash) is not None \
            or any(t.state == TrialState.COMPLETE for t in trials):
        attempted.add(unit.hash)
        return False
    if any(lc.is_live(t) for t in trials):
        return False  # another worker has it
    if any(t.state == TrialState.FAIL and t.user_attrs.get("outcome") == "error"
           and t.user_attrs.get("session") == lc.spec.session for t in trials):
        attempted.add(unit.hash)
        return False
    return True


def _claim_point(lc: Lifecycle, unit: GridPoint) -> Claim | None:
    """Claim ``unit`` with a trial; keep it only if no earlier live claim (nor a COMPLETE one) exists.

    Storages number trials in creation order, so of two workers racing for a unit exactly one
    sees itself first; the other marks its trial FAIL (``outcome = "duplicate"``).
    """
    claim = lc.claim({"point": unit.hash, "table": unit.table, "row": unit.row, "seed": unit.seed,
                      "id": unit.id})
    for t in lc.trials():
        if t.user_attrs.get("point") != unit.hash or t._trial_id == claim.trial_id:
            continue
        if t.state == TrialState.COMPLETE or (t.number < claim.number and lc.is_live(t)):
            lc.fail(claim, "duplicate")
            return None
    return claim


def _job(unit: GridPoint, lc: Lifecycle, claim: Claim) -> Job:
    """What a claimed point trains: its config, resuming an unfinished run of the same hash."""
    expected = run_dir_name(unit.run_name, unit.hash)
    resume = find_resumable_run(lc.spec.results, unit.hash, expected)
    lc.set_run(claim, resume.name if resume else expected)
    return Job(unit.config, unit.run_name, list(unit.overrides), resume)


def run_grid(grid_path: str | Path, *, overrides: Sequence[str] = (), **options: Unpack[RunOptions]) -> GridResult:
    """Run every missing or failed point of a grid (``aakit grid GRID.yaml``).

    Args:
        grid_path: the grid YAML.
        overrides: ``--set`` items applied to every point (they change the hashes).
        options: where and how the points run (see :class:`~aakit.experiment.workers.RunOptions`;
            the storage defaults to ``results/studies/grid-<name>.log``).

    Returns:
        What ran, what failed, and the final state of every point.

    Raises:
        GridError: a bad grid file or option; StorageError: a storage that cannot be opened;
        AakitError: the data of the points missing (only when the engine trains).
    """
    check_workers(options, GridError)
    grid = load_grid(grid_path, overrides)  # check everything before starting any process
    if options.get("train") is None:  # the engine trains: its data must be there (a fake trainer needs none)
        for cfg in {p.config.data.root: p.config for p in grid.points}.values():
            require_data_root(cfg.data.root, cfg.preset, where=f"{grid_path}: data.root")
    launch = Launch.prepare(options, "grid", grid.name, f"grid-{grid.name}")
    out = GridResult(grid.name)
    done = launch.dispatch(_grid_worker, (str(grid_path), list(overrides)))
    out.ran, out.failed, out.job_ids, out.jobs = done.ran, done.failed, list(done.job_ids), done.jobs
    spec = launch.spec
    out.points = grid_status(grid_path, overrides=overrides, results=spec.results, storage=spec.storage,
                             grace=spec.grace)
    return out


def format_points(points: list[dict[str, Any]]) -> str:
    """One line per point: state, id, hash, run directory."""
    width = max((len(p["id"]) for p in points), default=0)
    return "\n".join(f"{p['state']:<8} {p['id']:<{width}} {p['hash']} {p['run'] or '-'}" for p in points)


def cli_run(
    grid_file: Path,
    *,
    overrides: list[str],
    workers: int,
    gpus: str | None,
    storage: str | None,
    results: Path,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
    cluster: Cluster | None = None,
    status: bool = False,
    max_failures: int = 3,
) -> GridResult | None:
    """What ``aakit grid`` does (the CLI's thin wrapper calls this); the result, None for --dry-run
    and --status (which writes grid.json from the runs and the journal, and runs nothing: the
    report then reads the points' real hashes on a machine without the data set).

    ``cluster`` (``--launcher``): the workers run as submitit jobs; with SLURM this returns once
    they are submitted, and the counts are the state at that moment.
    """
    if dry_run and status:
        raise GridError("--dry-run writes nothing and --status writes grid.json: give one of them")
    if dry_run or status:
        points = grid_status(grid_file, overrides=overrides, results=results, storage=storage, write=status)
        echo(format_points(points))
        if status:
            echo(f"wrote {state_path(results, load_grid(grid_file, overrides).name)}")
        return None
    here = workers == 1 and cluster is None  # in this process: the progress bar and lines here
    out = run_grid(grid_file, overrides=overrides, results=results, storage=storage, workers=workers,
                   gpus=gpus, progress=here or cluster is not None, log=echo if here else None, launcher=cluster,
                   max_failures=max_failures)
    if cluster is not None:
        echo(describe_jobs(cluster, out.job_ids, out.jobs))
    c = out.counts()
    echo(f"grid {out.name}: ran {len(out.ran)} run(s) now; points done {c['done']}, running elsewhere "
         f"{c['running']}, missing {c['missing']}, failed {c['failed']} "
         f"(state: {state_path(results, out.name)})")
    for pid, msg in out.failed:
        echo(f"  failed {pid}: {msg}")
    return out
