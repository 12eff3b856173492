"""The grids as the TUI shows them: ``grid.json`` refined by each point's run's live status.

A grid is read by the report's reader of grid.json (:mod:`aakit.experiment.gridstate`); the TUI
refines each point's recorded state with its run's live status.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

from aakit.experiment.gridstate import GridState, read_grid_state, read_grid_states

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
