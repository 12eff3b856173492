"""One run directory, followed incrementally: its table row and its detail.

Reading a growing ``metrics.jsonl`` costs O(new bytes): each run keeps a
:class:`aakit.runs.JsonlTail` that remembers its byte offset and holds back a last line until
its newline arrives, so a record being written is never parsed half-way. A complete line that
is not JSON becomes an error string, shown by the UI; it never raises.
"""
from __future__ import annotations

import dataclasses
import time
from collections import deque
from pathlib import Path
from typing import Any

from aakit.config import key_hyperparameters
from aakit.runlist import mechanism_lines
from aakit.runs import JsonlTail, learning_rate, read_config, read_status, read_summary, run_status
from aakit.tui.model.curves import downsample, estimate_eta
from aakit.tui.model.rows import RunDetail, RunRow, Series, integer, number

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
        t = number(rec.get("time"))
        if t is not None:
            self.updated = t if self.updated is None else max(self.updated, t)
        if kind == "step":
            self.last_step = rec
            step = number(rec.get("step"))
            if step is None:
                return
            if t is not None:
                self.step_points.append((step, t))
                if len(self.step_points) > 200:  # only the recent pace matters for the ETA
                    del self.step_points[:100]
            losses = rec.get("losses")
            if isinstance(losses, dict):
                for k, v in losses.items():
                    y = number(v)
                    if y is not None:
                        self.loss_x.setdefault(k, []).append(step)
                        self.loss_y.setdefault(k, []).append(y)
            lr = number(learning_rate(rec))
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
        step = integer(last.get("step"))
        steps_total = integer(last.get("steps_total"))
        # The newest epoch number from either kind of record; the planned number from the
        # records, else from the config.
        seen = [e for e in (integer(last.get("epoch")), integer(last_epoch.get("epoch"))) if e is not None]
        epoch = max(seen) if seen else None
        train = self.config.get("train")
        epochs = (
            integer(last.get("epochs"))
            or integer(last_epoch.get("epochs"))
            or (integer(train.get("epochs")) if isinstance(train, dict) else None)
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
        losses = {k: v for k, v in ((k, number(x)) for k, x in raw_losses.items()) if v is not None}
        mious = [m for m in (number(e.get("miou")) for e in self.epochs) if m is not None]
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
            lr=number(learning_rate(last)),
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
            return number(summary["metrics"]["val"]["miou"])  # type: ignore[index]
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
            pts = [(number(e.get("epoch")), number(e.get(key))) for e in self.epochs]
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
