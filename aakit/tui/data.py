"""The TUI's data layer: gather what the screens show from run directories, grids, studies.

Nothing here imports Textual, and nothing here talks to the engine: everything is read from
files (``aakit.runs`` defines the run-directory format, :mod:`aakit.experiment.gridstate` reads
``grid.json`` for the TUI and the report alike). The app calls
:meth:`ResultsModel.poll` in a worker thread and hands the returned, immutable
:class:`Snapshot` to the UI thread; tests call the same functions directly.

Reading a growing ``metrics.jsonl`` costs O(new bytes): each run keeps a
:class:`aakit.runs.JsonlTail` that remembers its byte offset and holds back a last line until
its newline arrives, so a record being written is never parsed half-way. A complete line that
is not JSON becomes an error string, shown by the UI; it never raises.
"""
from __future__ import annotations

import dataclasses
import math
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from aakit.config import key_hyperparameters
from aakit.errors import AakitError
from aakit.experiment.gridstate import GRID_STATES, GridState, read_grid_state, read_grid_states  # noqa: F401
from aakit.runlist import mechanism_lines
from aakit.runs import JsonlTail, iter_run_dirs, read_config, read_status, read_summary, run_status

#: Labels of the loss terms (a term not listed is labelled with its name in capitals). Which
#: terms a run has is read from the run: see :func:`loss_names`.
LOSS_LABELS: dict[str, str] = {"cls": "CLS", "ce": "CE", "aa": "AA", "lr": "LR", "total": "total"}

Series = tuple[tuple[float, ...], tuple[float, ...]]  # (x values, y values)


def loss_names(details: Iterable[RunDetail]) -> tuple[str, ...]:
    """The loss terms the runs recorded (the names in their step records' ``losses``, as the
    engine's loss table wrote them), in order of first appearance, ``total`` left out."""
    names: dict[str, None] = {}
    for d in details:
        names.update((k, None) for k in d.loss_series if k != "total")
    return tuple(names)


def loss_label(name: str) -> str:
    """How a loss term is labelled on screen."""
    return LOSS_LABELS.get(name, name.upper())


class ResultsDirError(AakitError):
    """The results directory given to the TUI does not exist or is not a directory."""


# ----------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class RunRow:
    """One line of the runs table: what is known about a run right now.

    Attributes:
        name: the run directory's name.
        path: the run directory.
        status: running / finished / failed / interrupted / stale / corrupt (see ``problem``).
        epoch, epochs: the last epoch seen and the planned number of epochs.
        step, steps_total: the last iteration logged and the planned total.
        progress: fraction done in [0, 1].
        eta: seconds left (running runs only), estimated from recent step times.
        losses: the last step's losses by term name, and ``total``.
        lr: the last step's learning rate.
        best_miou: the best validation mIoU over epochs (0..1), else summary.json's.
        hparams: ``aakit.config.key_hyperparameters`` of the run's config.
        errors: number of malformed metrics lines seen.
        updated: unix time of the newest metrics record.
        host: the host written in status.json.
        problem: why the run directory is corrupt (``"no config.yaml"``...), else None.
    """

    name: str
    path: Path
    status: str
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    steps_total: int | None = None
    progress: float = 0.0
    eta: float | None = None
    losses: Mapping[str, float] = field(default_factory=dict)
    lr: float | None = None
    best_miou: float | None = None
    hparams: Mapping[str, Any] = field(default_factory=dict)
    errors: int = 0
    updated: float | None = None
    host: str | None = None
    problem: str | None = None

    def search_text(self) -> str:
        """The text a filter is matched against: name, status, host, hyperparameters, problem."""
        hp = " ".join(f"{k}={v}" for k, v in self.hparams.items())
        return f"{self.name} {self.status} {self.host or ''} {hp} {self.problem or ''}".lower()


@dataclass(frozen=True)
class RunDetail:
    """Everything the run view and the compare view draw for one run.

    Attributes:
        row: the run's table row.
        loss_series: per loss term recorded (e.g. ``cls``, ``ce``, ``aa``, ``lr``) and ``total``: (steps, values).
        lr_series: learning rate per step.
        miou_series: ``"mIoU"`` and ``"pseudo mIoU"`` per epoch, in percent.
        config: the resolved config (config.yaml).
        logs: the last log lines, formatted ``HH:MM:SS message``.
        errors: the malformed-line messages of metrics.jsonl.
        status_info: status.json.
        mechanism: the last mechanism record as text lines (:func:`aakit.runlist.mechanism_lines`).
    """

    row: RunRow
    loss_series: Mapping[str, Series]
    lr_series: Series
    miou_series: Mapping[str, Series]
    config: Mapping[str, Any]
    logs: tuple[str, ...]
    errors: tuple[str, ...]
    status_info: Mapping[str, Any]
    mechanism: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- small helpers
def _num(value: Any) -> float | None:
    """``value`` as a finite float, or None (bools, strings, NaN and inf are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _int(value: Any) -> int | None:
    f = _num(value)
    return int(f) if f is not None else None


def downsample(xs: Sequence[float], ys: Sequence[float], max_points: int) -> Series:
    """At most ``max_points`` points: consecutive points are averaged in equal buckets.

    Averaging (rather than striding) keeps the shape of a noisy per-step loss curve and
    smooths it a little, which is what one wants to see in a terminal-sized plot.
    """
    n = min(len(xs), len(ys))
    if n <= max_points:
        return tuple(float(x) for x in xs[:n]), tuple(float(y) for y in ys[:n])
    out_x: list[float] = []
    out_y: list[float] = []
    for b in range(max_points):
        lo, hi = b * n // max_points, (b + 1) * n // max_points
        out_x.append(sum(xs[lo:hi]) / (hi - lo))
        out_y.append(sum(ys[lo:hi]) / (hi - lo))
    return tuple(out_x), tuple(out_y)


#: Weight of the past in the smoothed loss curves (:func:`ema`), as TensorBoard's slider.
EMA_WEIGHT = 0.9


def ema(ys: Sequence[float], weight: float = EMA_WEIGHT) -> tuple[float, ...]:
    """The exponential moving average of ``ys`` (``weight`` of the past), debiased.

    Debiased as TensorBoard's smoothing (and Adam's moments): the average starts from zero
    and is divided by ``1 - weight ** (i + 1)``, so the first points are not pulled down.
    """
    out: list[float] = []
    acc = 0.0
    for i, y in enumerate(ys):
        acc = weight * acc + (1 - weight) * float(y)
        out.append(acc / (1 - weight ** (i + 1)))
    return tuple(out)


def smooth_series(series: Mapping[str, Series], weight: float = EMA_WEIGHT) -> dict[str, Series]:
    """Each ``(xs, ys)`` with its ``ys`` replaced by their :func:`ema`."""
    return {k: (xs, ema(ys, weight)) for k, (xs, ys) in series.items()}


def estimate_eta(
    points: Sequence[tuple[float, float]], steps_total: int | None, now: float | None = None
) -> float | None:
    """Seconds left, from the speed over the recent ``(step, time)`` points.

    The speed is measured over the last points only (up to 50), so a run that slowed down
    (another job on the GPU) is not judged by its early pace. Time elapsed since the last
    record is subtracted, clamped at zero.
    """
    if not steps_total or len(points) < 2:
        return None
    recent = points[-50:]
    (s0, t0), (s1, t1) = recent[0], recent[-1]
    if t1 <= t0 or s1 <= s0:
        return None
    rate = (s1 - s0) / (t1 - t0)
    left = max(0.0, steps_total - s1) / rate
    if now is not None:
        left -= max(0.0, now - t1)
    return max(0.0, left)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"loss": {"gamma": 2}}`` -> ``{"loss.gamma": 2}`` (lists are kept as values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


_MISSING = object()


def config_diff(configs: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, list[Any]]]:
    """The dotted keys whose values differ between configs, with each config's value.

    Args:
        configs: run name -> config dict (order kept).

    Returns:
        ``[(key, [value of run 1, value of run 2, ...]), ...]`` sorted by key; a key absent
        from a config has the value None.
    """
    flats = [flatten(c) for c in configs.values()]
    keys = sorted(set().union(*flats)) if flats else []
    out: list[tuple[str, list[Any]]] = []
    for k in keys:
        values = [f.get(k, _MISSING) for f in flats]
        if any(v != values[0] for v in values[1:]):
            out.append((k, [None if v is _MISSING else v for v in values]))
    return out


# ----------------------------------------------------------------------------- filter / sort
def filter_rows(rows: Iterable[RunRow], text: str) -> list[RunRow]:
    """Rows whose :meth:`RunRow.search_text` contains every word of ``text`` (any case)."""
    words = text.lower().split()
    return [r for r in rows if all(w in r.search_text() for w in words)]


#: Sortable columns: key -> function of a row giving the value (None sorts last).
SORT_KEYS: dict[str, Any] = {
    "name": lambda r: r.name,
    "status": lambda r: r.status,
    "progress": lambda r: r.progress,
    "eta": lambda r: r.eta,
    "cls": lambda r: r.losses.get("cls"),
    "ce": lambda r: r.losses.get("ce"),
    "aa": lambda r: r.losses.get("aa"),
    "lr": lambda r: r.losses.get("lr"),
    "best_miou": lambda r: r.best_miou,
    "lambda_aa": lambda r: r.hparams.get("lambda_aa"),
    "lambda_lr": lambda r: r.hparams.get("lambda_lr"),
    "margin_aa": lambda r: r.hparams.get("margin_aa"),
    "gamma": lambda r: r.hparams.get("gamma"),
    "dilations": lambda r: r.hparams.get("dilations"),
    "errors": lambda r: r.errors,
}


#: Keys whose highest values are the best: chosen from the sort menu, they sort highest first.
SORT_DESCENDING = frozenset({"best_miou", "progress"})


def sort_rows(rows: Iterable[RunRow], key: str = "name", reverse: bool = False) -> list[RunRow]:
    """Rows sorted by a column of :data:`SORT_KEYS`; missing values go last either way."""
    get = SORT_KEYS.get(key, SORT_KEYS["name"])
    rows = list(rows)
    present = [r for r in rows if get(r) is not None]
    missing = [r for r in rows if get(r) is None]
    # Mixed types in one column (e.g. a number and a string) are compared as text.
    try:
        present.sort(key=lambda r: (get(r), r.name), reverse=reverse)
    except TypeError:
        present.sort(key=lambda r: (str(get(r)), r.name), reverse=reverse)
    return present + sorted(missing, key=lambda r: r.name)


def best_run(rows: Iterable[RunRow]) -> RunRow | None:
    """The run with the highest best mIoU, or None when no run has one yet."""
    scored = [r for r in rows if r.best_miou is not None]
    return max(scored, key=lambda r: (r.best_miou, r.name)) if scored else None


# ----------------------------------------------------------------------------- formatting
def fmt_duration(seconds: float | None) -> str:
    """``3725`` -> ``"1h02m"``, ``200`` -> ``"3m20s"``, None -> ``"-"``."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def fmt_float(value: Any) -> str:
    """A compact number: ``0.1234``, ``12.35``, ``1.20e-05``; ``-`` for a missing value."""
    v = _num(value)
    if v is None:
        return "-" if value is None else str(value)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
        return f"{v:.2e}"
    return f"{v:.4g}"


def fmt_miou(value: float | None) -> str:
    """mIoU in 0..1 shown in percent with one decimal."""
    return "-" if value is None else f"{100 * value:.1f}"


def fmt_progress(row: RunRow) -> str:
    """``"e3/8 1200/2400"``: the epoch and the iteration out of their totals."""
    parts = []
    if row.epoch is not None:
        parts.append(f"e{row.epoch}/{row.epochs if row.epochs is not None else '?'}")
    if row.step is not None:
        parts.append(f"{row.step}/{row.steps_total if row.steps_total else '?'}")
    return " ".join(parts) or "-"


# ----------------------------------------------------------------------------- one run
class _FileCache:
    """Re-read a small file only when its (mtime, size) changed."""

    def __init__(self, path: Path, reader: Any) -> None:
        self.path = path
        self._reader = reader
        self._sig: tuple[float, int] | None = None
        self.value: Any = None

    def get(self) -> tuple[Any, bool]:
        """(value, changed since the last call)."""
        try:
            st = self.path.stat()
            sig: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except OSError:
            sig = None
        if sig == self._sig:
            return self.value, False
        self._sig = sig
        self.value = self._reader(self.path) if sig is not None else None
        return self.value, True


class RunTracker:
    """Follows one run directory; :meth:`update` reads only what changed.

    Only the worker thread calls :meth:`update`; the UI receives frozen :class:`RunRow` /
    :class:`RunDetail` copies, so no lock is needed.
    """

    def __init__(self, path: Path, max_logs: int = 200) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._tail = JsonlTail(self.path / "metrics.jsonl")
        # each value: (content, problem) as read by aakit.runs, or None while the file is absent
        self._config = _FileCache(self.path / "config.yaml", read_config)
        self._status = _FileCache(self.path / "status.json", read_status)
        self._summary = _FileCache(self.path / "summary.json", read_summary)
        self._max_logs = max_logs
        self._reset_records()
        self.version = 0  # bumped whenever something the UI shows changed
        self._detail: tuple[int, int, RunDetail] | None = None

    def _reset_records(self) -> None:
        self.step_points: list[tuple[float, float]] = []  # (step, time) for the ETA
        self.loss_x: dict[str, list[float]] = {}
        self.loss_y: dict[str, list[float]] = {}
        self.lr_x: list[float] = []
        self.lr_y: list[float] = []
        self.epochs: list[dict[str, Any]] = []
        self.mechanism: dict[str, Any] | None = None  # the last "mechanism" record
        self.last_step: dict[str, Any] | None = None
        self.logs: deque[str] = deque(maxlen=self._max_logs)
        self.errors: deque[str] = deque(maxlen=self._max_logs)  # the latest messages ...
        self.error_count = 0  # ... and how many there were in all
        self.updated: float | None = None

    # -- reading
    def update(self) -> list[str]:
        """Read new metrics lines and changed files; returns the new error messages."""
        metrics = self.path / "metrics.jsonl"
        try:
            if metrics.stat().st_size < self._tail.offset:  # truncated or replaced
                self._reset_records()
        except OSError:
            pass
        records, errors = self._tail.poll()
        for rec in records:
            self._add(rec)
        self.errors.extend(errors)
        self.error_count += len(errors)
        changed = bool(records or errors)
        for cache in (self._config, self._status, self._summary):
            changed |= cache.get()[1]
        if changed:
            self.version += 1
        return errors

    def _add(self, rec: dict[str, Any]) -> None:
        kind = rec.get("kind")
        t = _num(rec.get("time"))
        if t is not None:
            self.updated = t if self.updated is None else max(self.updated, t)
        if kind == "step":
            self.last_step = rec
            step = _num(rec.get("step"))
            if step is None:
                return
            if t is not None:
                self.step_points.append((step, t))
                if len(self.step_points) > 200:  # only the recent pace matters for the ETA
                    del self.step_points[:100]
            losses = rec.get("losses")
            if isinstance(losses, dict):
                for k, v in losses.items():
                    y = _num(v)
                    if y is not None:
                        self.loss_x.setdefault(k, []).append(step)
                        self.loss_y.setdefault(k, []).append(y)
            lr = _num(rec.get("lr"))
            if lr is not None:
                self.lr_x.append(step)
                self.lr_y.append(lr)
        elif kind == "epoch":
            self.epochs.append(rec)
        elif kind == "mechanism":
            self.mechanism = rec
        elif kind == "log":
            stamp = time.strftime("%H:%M:%S", time.localtime(t)) if t is not None else "--:--:--"
            self.logs.append(f"{stamp} {rec.get('message', '')}")

    # -- views
    @property
    def config(self) -> dict[str, Any]:
        return self._config.value[0] if self._config.value else {}

    @property
    def status_info(self) -> dict[str, Any]:
        return self._status.value[0] if self._status.value else {}

    @property
    def problem(self) -> str | None:
        """Why the run directory is corrupt (as :func:`aakit.runs.load_run` says), else None."""
        found = [self._config.value[1] if self._config.value else "no config.yaml"]
        found += [c.value[1] for c in (self._status, self._summary) if c.value]
        return "; ".join(p for p in found if p) or None

    def row(self, stale_after: float = 600.0, now: float | None = None) -> RunRow:
        """The run's table row as of ``now``."""
        now = time.time() if now is None else now
        info = self.status_info
        problem = self.problem
        status = "corrupt" if problem else str(run_status(info, self.path / "metrics.jsonl", stale_after))
        last = self.last_step or {}
        last_epoch = self.epochs[-1] if self.epochs else {}
        step = _int(last.get("step"))
        steps_total = _int(last.get("steps_total"))
        # The newest epoch number from either kind of record; the planned number from the
        # records, else from the config.
        seen = [e for e in (_int(last.get("epoch")), _int(last_epoch.get("epoch"))) if e is not None]
        epoch = max(seen) if seen else None
        train = self.config.get("train")
        epochs = (
            _int(last.get("epochs"))
            or _int(last_epoch.get("epochs"))
            or (_int(train.get("epochs")) if isinstance(train, dict) else None)
        )
        # Progress: iterations if known, else epochs; a finished run is done.
        if status == "finished":
            progress = 1.0
        elif step is not None and steps_total:
            progress = min(1.0, max(0.0, step / steps_total))
        elif epoch is not None and epochs:
            progress = min(1.0, max(0.0, epoch / epochs))
        else:
            progress = 0.0
        eta = estimate_eta(self.step_points, steps_total, now) if status == "running" else None
        raw_losses = last.get("losses") if isinstance(last.get("losses"), dict) else {}
        losses = {k: v for k, v in ((k, _num(x)) for k, x in raw_losses.items()) if v is not None}
        mious = [m for m in (_num(e.get("miou")) for e in self.epochs) if m is not None]
        best = max(mious) if mious else self._summary_miou()
        return RunRow(
            name=self.name,
            path=self.path,
            status=status,
            epoch=epoch,
            epochs=epochs,
            step=step,
            steps_total=steps_total,
            progress=progress,
            eta=eta,
            losses=losses,
            lr=_num(last.get("lr")),
            best_miou=best,
            hparams=self._hparams(),
            errors=self.error_count,
            updated=self.updated,
            host=info.get("host") if isinstance(info.get("host"), str) else None,
            problem=problem,
        )

    def _hparams(self) -> dict[str, Any]:
        try:
            return key_hyperparameters(self.config) if self.config else {}
        except (AttributeError, TypeError):  # a config.yaml of the wrong shape
            return {}

    def _summary_miou(self) -> float | None:
        summary = self._summary.value[0] if self._summary.value else None
        try:
            return _num(summary["metrics"]["val"]["miou"])  # type: ignore[index]
        except (KeyError, TypeError):
            return None

    def detail(self, row: RunRow, max_points: int = 1000) -> RunDetail:
        """Curves, config, logs and errors (cached until the run changes)."""
        if self._detail and self._detail[:2] == (self.version, max_points):
            return dataclasses.replace(self._detail[2], row=row)  # only the row moved on
        loss_series = {
            k: downsample(self.loss_x[k], self.loss_y[k], max_points) for k in self.loss_x
        }
        miou_series: dict[str, Series] = {}
        for key, label in (("miou", "mIoU"), ("pseudo_miou", "pseudo mIoU")):
            pts = [(_num(e.get("epoch")), _num(e.get(key))) for e in self.epochs]
            pts = [(x, 100 * y) for x, y in pts if x is not None and y is not None]
            if pts:
                miou_series[label] = (tuple(p[0] for p in pts), tuple(p[1] for p in pts))
        d = RunDetail(
            row=row,
            loss_series=loss_series,
            lr_series=downsample(self.lr_x, self.lr_y, max_points),
            miou_series=miou_series,
            config=self.config,
            logs=tuple(self.logs),
            errors=tuple(self.errors),
            status_info=dict(self.status_info),
            mechanism=tuple(mechanism_lines(self.mechanism)) if self.mechanism else (),
        )
        self._detail = (self.version, max_points, d)
        return d


# ----------------------------------------------------------------------------- grids
# A grid is read by the report's reader of grid.json (aakit.experiment.gridstate); the TUI
# refines each point's recorded state with its run's live status.

#: How a run's live status refines a grid point's recorded state.
_RUN_TO_GRID = {
    "finished": "done",
    "running": "running",
    "stale": "stale",
    "failed": "failed",
    "interrupted": "failed",
    "corrupt": "corrupt",
}


def _live(grid: GridState, run_status_by_name: Mapping[str, str] | None) -> GridState:
    """``grid`` with the state of each point whose run directory is known replaced by the run's."""
    statuses = run_status_by_name or {}
    points = tuple(
        dataclasses.replace(p, state=_RUN_TO_GRID.get(statuses[p.run], p.state))
        if p.run and p.run in statuses else p
        for p in grid.points
    )
    return dataclasses.replace(grid, points=points)


def read_grid(path: Path, run_status_by_name: Mapping[str, str] | None = None) -> GridState:
    """Read one ``grid.json`` (:func:`aakit.experiment.gridstate.read_grid_state`); never raises.

    The file's ``state`` of a point is the experiment manager's word; when the point's run
    directory is known (``run_status_by_name``), its live status wins, so a point whose run
    finished a second ago shows ``done`` before the manager rewrites the file.
    """
    return _live(read_grid_state(path), run_status_by_name)


def read_grids(results: Path, run_status_by_name: Mapping[str, str] | None = None) -> list[GridState]:
    """Every ``results/grids/*/grid.json``, sorted by directory name (see :func:`read_grid`)."""
    return [_live(g, run_status_by_name) for g in read_grid_states(results)]


# ----------------------------------------------------------------------------- studies
@dataclass(frozen=True)
class TrialInfo:
    """One Optuna trial: number, state name, objective values and parameters."""

    number: int
    state: str
    values: tuple[float, ...] | None
    params: Mapping[str, Any]


@dataclass(frozen=True)
class StudyInfo:
    """One Optuna study of a journal file; ``error`` if the file could not be read."""

    name: str
    file: Path
    directions: tuple[str, ...] = ()
    trials: tuple[TrialInfo, ...] = ()
    best_number: int | None = None
    best_values: tuple[float, ...] | None = None
    best_params: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    warning: str | None = None  # e.g. a torn last record of the journal (read as far as it is whole)
    paired: bool = False  # objective: paired: values are paired differences in points, not an mIoU
    confirmation: str | None = None  # a paired study's confirmation on fresh seeds, in short

    def fmt_value(self, value: float | None) -> str:
        """A trial's value: a paired difference in points (``+0.42 pt``) or an mIoU in percent."""
        if not self.paired:
            return fmt_miou(value)
        return "-" if value is None else f"{value:+.2f} pt"

    @property
    def state_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out


def read_study_storage(storage: Any, file: Path) -> list[StudyInfo]:
    """All studies of an Optuna storage, with their trials and best trial.

    For a single objective the best trial is Optuna's; for several objectives the trials of
    the Pareto front are not ranked, so no best is given.
    """
    from optuna.trial import TrialState

    out = []
    for frozen in storage.get_all_studies():
        sid = frozen._study_id
        directions = tuple(d.name.lower() for d in frozen.directions)
        trials = tuple(
            TrialInfo(
                number=t.number,
                state=t.state.name,
                values=tuple(t.values) if t.values is not None else None,
                params=dict(t.params),
            )
            for t in storage.get_all_trials(sid, deepcopy=False)
        )
        best_number = best_values = None
        best_params: dict[str, Any] = {}
        if len(directions) == 1 and any(t.state == TrialState.COMPLETE.name for t in trials):
            best = storage.get_best_trial(sid)
            best_number, best_values, best_params = best.number, tuple(best.values), dict(best.params)
        attrs = frozen.user_attrs
        out.append(StudyInfo(
            name=frozen.study_name, file=file, directions=directions, trials=trials,
            best_number=best_number, best_values=best_values, best_params=best_params,
            paired=attrs.get("objective") == "paired", confirmation=confirmation_text(attrs.get("confirmation")),
        ))
    return out


def confirmation_text(c: Any) -> str | None:
    """``"confirmed #3: +0.40 [-1.10, +1.90] pt, 5 seeds"`` (a paired study's ``confirmation``)."""
    if not isinstance(c, dict) or c.get("ci_low") is None:
        return None
    return (f"confirmed #{c.get('trial')}: {c['mean_diff']:+.2f} [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}] pt, "
            f"{len(c.get('pairs') or [])} seeds")


class StudyReader:
    """Reads ``results/studies/*.log`` Optuna journal files, re-reading a file only when it grew.

    A ``JournalStorage`` replays its log incrementally, so one storage object is kept per file.
    Optuna is imported only when a journal file exists (its import is slow).
    """

    def __init__(self, results: Path) -> None:
        self.root = Path(results) / "studies"
        self._storages: dict[Path, Any] = {}
        self._sig: dict[Path, tuple[float, int]] = {}
        self._cache: dict[Path, list[StudyInfo]] = {}

    def read(self) -> list[StudyInfo]:
        files = sorted(self.root.glob("*.log")) if self.root.is_dir() else []
        out: list[StudyInfo] = []
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            sig = (st.st_mtime, st.st_size)
            if self._sig.get(f) != sig:
                self._sig[f] = sig
                self._cache[f] = self._read_file(f)
            out.extend(self._cache[f])
        return out

    def _read_file(self, f: Path) -> list[StudyInfo]:
        from aakit.experiment.journal import JournalError, inspect_journal

        try:  # the dashboard only reads: a torn journal is shown, the next grid or search recovers it
            torn = inspect_journal(f)
        except JournalError as e:
            return [StudyInfo(name=f.stem, file=f, error=str(e))]
        studies = self._read_studies(f)
        if torn is None:
            return studies
        warning = f"{torn.what()}: the next aakit grid or search on it recovers it"
        return [dataclasses.replace(st, warning=warning) for st in studies]

    def _read_studies(self, f: Path) -> list[StudyInfo]:
        try:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            storage = self._storages.get(f)
            if storage is None:
                storage = optuna.storages.JournalStorage(
                    optuna.storages.journal.JournalFileBackend(str(f))
                )
                self._storages[f] = storage
            return read_study_storage(storage, f)
        except Exception as e:  # a torn or foreign file must not stop the dashboard
            self._storages.pop(f, None)
            return [StudyInfo(name=f.stem, file=f, error=f"{f.name}: {type(e).__name__}: {e}")]


# ----------------------------------------------------------------------------- system load
@dataclass(frozen=True)
class DeviceLoad:
    """Load of one device: utilisation in percent, memory in bytes."""

    name: str
    util: float | None
    mem_used: float | None
    mem_total: float | None


@dataclass(frozen=True)
class SystemLoad:
    """The load of this host: GPUs (kind ``gpu``) when NVML answers, else CPU and RAM."""

    kind: str
    host: str
    devices: tuple[DeviceLoad, ...]
    note: str = ""


_nvml_lock = threading.Lock()
_nvml_state: dict[str, Any] = {"tried": False, "module": None, "why": ""}


def _nvml() -> Any | None:
    """The initialised ``pynvml`` module, or None when absent or without a driver (tried once)."""
    with _nvml_lock:
        if not _nvml_state["tried"]:
            _nvml_state["tried"] = True
            try:
                import pynvml  # nvidia-ml-py: optional
            except ImportError:
                _nvml_state["why"] = "nvidia-ml-py not installed"
                return None
            try:
                pynvml.nvmlInit()
                _nvml_state["module"] = pynvml
            except Exception:  # NVMLError: no driver, no GPU
                _nvml_state["why"] = "no NVIDIA driver or GPU"
        return _nvml_state["module"]


def _reset_nvml() -> None:
    """Forget the NVML probe (tests swap a fake ``pynvml`` in)."""
    with _nvml_lock:
        _nvml_state.update(tried=False, module=None, why="")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_system_load() -> SystemLoad:
    """GPU utilisation and memory through NVML when a GPU exists, else CPU and RAM (psutil)."""
    host = socket.gethostname()
    nv = _nvml()
    if nv is not None:
        try:
            devices = []
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                util = nv.nvmlDeviceGetUtilizationRates(h)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                devices.append(DeviceLoad(
                    name=f"GPU{i} {_text(nv.nvmlDeviceGetName(h))}",
                    util=float(util.gpu), mem_used=float(mem.used), mem_total=float(mem.total),
                ))
            if devices:
                return SystemLoad(kind="gpu", host=host, devices=tuple(devices))
            note = "no GPU found"
        except Exception as e:  # a GPU that stops answering: show the CPU instead
            note = f"NVML error: {e}"
    else:
        note = f"CPU only: {_nvml_state['why']}" if _nvml_state["why"] else "CPU only"
    import psutil

    vm = psutil.virtual_memory()
    cpu = DeviceLoad(
        name=f"CPU x{os.cpu_count() or '?'}",
        util=float(psutil.cpu_percent(interval=None)),
        mem_used=float(vm.total - vm.available),
        mem_total=float(vm.total),
    )
    return SystemLoad(kind="cpu", host=host, devices=(cpu,), note=note)


# ----------------------------------------------------------------------------- the whole model
@dataclass(frozen=True)
class Snapshot:
    """Everything the dashboard shows at one instant (immutable, safe to pass between threads).

    Attributes:
        time: when it was taken.
        rows: one row per run directory, by name.
        details: the detail of the runs asked for (``watched``).
        grids, studies: the grids and Optuna studies.
        load: the host's load.
        new_errors: malformed-line messages first seen by this poll (``run: message``).
    """

    time: float
    rows: tuple[RunRow, ...]
    details: Mapping[str, RunDetail]
    grids: tuple[GridState, ...]
    studies: tuple[StudyInfo, ...]
    load: SystemLoad | None
    new_errors: tuple[str, ...] = ()

    def row(self, name: str) -> RunRow | None:
        return next((r for r in self.rows if r.name == name), None)


class ResultsModel:
    """Reads a results directory incrementally; :meth:`poll` returns a :class:`Snapshot`.

    Args:
        results: ``results/`` (runs under ``runs/``, grids under ``grids/``, studies under
            ``studies/``) or a directory holding run directories directly.
        stale_after: seconds without new metrics after which a running run is stale.
        max_points: most points per curve handed to the plots.
        with_load: read the host's load (the tests of other parts turn it off).
    """

    def __init__(
        self,
        results: Path,
        stale_after: float = 600.0,
        max_points: int = 1000,
        with_load: bool = True,
    ) -> None:
        self.results = Path(results)
        if not self.results.is_dir():
            raise ResultsDirError(f"{self.results}: results directory not found")
        self.stale_after = stale_after
        self.max_points = max_points
        self.with_load = with_load
        self._runs: dict[str, RunTracker] = {}
        self._studies = StudyReader(self.results)

    def poll(self, watched: Iterable[str] = ()) -> Snapshot:
        """Read what changed since the last poll; details only for the ``watched`` run names."""
        now = time.time()
        paths = {p.name: p for p in iter_run_dirs(self.results)}
        for gone in set(self._runs) - set(paths):
            del self._runs[gone]
        new_errors: list[str] = []
        rows: list[RunRow] = []
        for name in sorted(paths):
            tracker = self._runs.get(name)
            if tracker is None:
                tracker = self._runs[name] = RunTracker(paths[name])
            try:
                new_errors.extend(f"{name}: {e}" for e in tracker.update())
                rows.append(tracker.row(self.stale_after, now))
            except Exception as e:  # one odd run directory must not hide all the others
                message = f"{name}: cannot read: {type(e).__name__}: {e}"
                if message not in tracker.errors:
                    tracker.errors.append(message)
                    tracker.error_count += 1
                    new_errors.append(message)
                rows.append(RunRow(name=name, path=paths[name], status="unreadable",
                                   errors=tracker.error_count))
        by_name = {r.name: r for r in rows}
        details: dict[str, RunDetail] = {}
        for n in watched:
            if n in by_name and by_name[n].status != "unreadable":
                try:
                    details[n] = self._runs[n].detail(by_name[n], self.max_points)
                except Exception as e:  # shown as the run's error; the others go on
                    new_errors.append(f"{n}: cannot draw: {type(e).__name__}: {e}")
        status_by_name = {r.name: r.status for r in rows}
        return Snapshot(
            time=now,
            rows=tuple(rows),
            details=details,
            grids=tuple(read_grids(self.results, status_by_name)),
            studies=tuple(self._studies.read()),
            load=read_system_load() if self.with_load else None,
            new_errors=tuple(new_errors),
        )
