"""``results/grids/<name>/grid.json`` as read: the one reader of the file, for the report and the TUI.

:func:`aakit.experiment.grid.write_state` writes the file after each unit of a grid::

    {"name", "file", "preset", "storage", "study", "updated",
     "points": [{"id", "table", "row", "params", "seed", "hash", "metric", "run", "state"}],
     "compare": [{"winner", "other", "text", "paper_effect"}],   (the grid file's compare:)
     "suite": "v2",   (the grid file's suite:, absent when it has none)
     "description": "..."}   (the grid file's description:, absent when it has none)

:func:`read_grid_state` turns it into a :class:`GridState` and never raises: an unreadable file
is a state with an ``error``. A point keeps what it has; a point without table, row, seed or
hash (:attr:`GridPointState.complete` false) fills no report cell, but the TUI still lists it.

This module imports neither optuna nor torch, nor :mod:`aakit.experiment.grid` (which imports
optuna): the TUI's data layer reads grids through it, and the grid manager may use it too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from aakit import yamlio
from aakit.files import read_json

COMPARE_KEYS = frozenset({"winner", "other", "text", "paper_effect"})

#: Grid point states, in display order: the grid manager writes the first four; "stale" and
#: "corrupt" come from a point's run when a reader knows the run's live status.
GRID_STATES: tuple[str, ...] = ("done", "running", "missing", "failed", "stale", "corrupt")


@dataclass(frozen=True)
class GridPointState:
    """One point of a grid.json: its parameters, run directory name, state, and the cell it fills.

    ``table``, ``row``, ``seed`` and ``hash`` are None when the file lacks them (or they are not
    numbers where numbers are due); ``metric`` defaults to ``val``.
    """

    id: str
    params: Mapping[str, Any] = field(default_factory=dict)
    run: str | None = None
    state: str = "missing"
    table: int | None = None
    row: str | None = None
    seed: int | None = None
    hash: str | None = None
    metric: str = "val"

    @property
    def complete(self) -> bool:
        """It names its table, row, seed and config hash: what a report cell needs."""
        return None not in (self.table, self.row, self.seed, self.hash)


@dataclass(frozen=True)
class GridState:
    """A grid as its grid.json says (``error`` if unreadable; ``malformed``: entries not objects)."""

    name: str
    path: Path
    preset: str | None = None
    points: tuple[GridPointState, ...] = ()
    error: str | None = None
    malformed: int = 0
    file: str | None = None  # the grid file, as the grid manager was given it
    compare: Any = None  # its compare: as stored (check with parse_comparisons)
    suite: str | None = None  # the report suite it fills (grid file's suite:); None = the default one
    description: str | None = None  # the grid file's description: (one line on what it asks)

    @property
    def counts(self) -> dict[str, int]:
        """Number of points in each state of :data:`GRID_STATES` (plus any other state seen)."""
        out = {s: 0 for s in GRID_STATES}
        for p in self.points:
            out[p.state] = out.get(p.state, 0) + 1
        return out


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _point(p: Mapping[str, Any], i: int) -> GridPointState:
    return GridPointState(
        id=str(p.get("id", i)),
        params=p["params"] if isinstance(p.get("params"), dict) else {},
        run=p["run"] if isinstance(p.get("run"), str) else None,
        state=str(p.get("state") or "missing"),
        table=_int(p.get("table")),
        row=str(p["row"]) if "row" in p else None,
        seed=_int(p.get("seed")),
        hash=str(p["hash"]) if "hash" in p else None,
        metric=str(p.get("metric") or "val"),
    )


def _suite(data: Mapping[str, Any]) -> str | None:
    """grid.json's ``suite``; a grid.json written before suites existed: its grid file's ``suite:``."""
    if "suite" in data:
        return data["suite"] if isinstance(data["suite"], str) else None
    file = data.get("file")
    if isinstance(file, str) and Path(file).is_file():
        try:
            head = yamlio.safe_load(Path(file).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return None
        if isinstance(head, dict) and isinstance(head.get("suite"), str):
            return head["suite"]
    return None


def read_grid_state(path: Path) -> GridState:
    """Read one ``grid.json``; never raises (an unreadable file gives a state with ``error``)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("points"), list):
        why = "unreadable JSON" if data is None else "no 'points' list"
        return GridState(name=path.parent.name, path=path, error=f"{path.name}: {why}")
    points = tuple(_point(p, i) for i, p in enumerate(data["points"]) if isinstance(p, dict))
    preset = data.get("preset")
    return GridState(name=str(data.get("name") or path.parent.name), path=path,
                     preset=preset if isinstance(preset, str) else None, points=points,
                     malformed=len(data["points"]) - len(points),
                     file=data["file"] if isinstance(data.get("file"), str) else None, compare=data.get("compare"),
                     suite=_suite(data),
                     description=data["description"] if isinstance(data.get("description"), str) else None)


def read_grid_states(results: Path) -> list[GridState]:
    """Every ``results/grids/*/grid.json``, sorted by directory name."""
    root = Path(results) / "grids"
    if not root.is_dir():
        return []
    return [read_grid_state(d / "grid.json") for d in sorted(root.iterdir()) if (d / "grid.json").is_file()]


def parse_comparisons(items: Any, where: str, rows: set[str] | None,
                      error: type[Exception] = ValueError) -> list[dict[str, Any]]:
    """A grid's ``compare:`` list, checked: each item names two of its rows (``winner``, ``other``),
    with an optional ``text`` and ``paper_effect`` (points of mIoU). Raises ``error``, one line."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise error(f"{where}: compare: should be a list of {{winner:, other:}}")
    out = []
    for i, item in enumerate(items):
        at = f"{where}: compare[{i}]"
        if not isinstance(item, dict) or not {"winner", "other"} <= set(item):
            raise error(f"{at}: should be a mapping with winner: and other: (row labels)")
        if unknown := sorted(set(item) - COMPARE_KEYS):
            raise error(f"{at}: unknown key {unknown[0]!r} (known: {', '.join(sorted(COMPARE_KEYS))})")
        for k in ("winner", "other"):
            if rows is not None and str(item[k]) not in rows:
                raise error(f"{at}: {k}: {item[k]!r} is not a row of this grid")
        effect = item.get("paper_effect")
        if effect is not None and (isinstance(effect, bool) or not isinstance(effect, (int, float))):
            raise error(f"{at}: paper_effect: should be a number (mIoU points), got {effect!r}")
        out.append({"winner": str(item["winner"]), "other": str(item["other"]),
                    "text": str(item.get("text") or f"{item['winner']} beats {item['other']}"),
                    "paper_effect": None if effect is None else float(effect)})
    return out
