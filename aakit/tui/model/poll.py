"""The whole model: :class:`ResultsModel` polls a results directory into a :class:`Snapshot`."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from aakit.errors import AakitError
from aakit.experiment.gridstate import GridState
from aakit.experiment.studystate import StudyInfo, StudyReader
from aakit.runs import iter_run_dirs
from aakit.tui.model.grids import read_grids
from aakit.tui.model.load import SystemLoad, read_system_load
from aakit.tui.model.rows import RunDetail, RunRow
from aakit.tui.model.tracker import RunTracker


class ResultsDirError(AakitError):
    """The results directory given to the TUI does not exist or is not a directory."""


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
