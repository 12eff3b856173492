"""The one reader of Optuna's journal files for display (the TUI's *Grids & studies* tab).

Beside :mod:`aakit.experiment.gridstate` (grid.json): each ``results/studies/*.log`` becomes
:class:`StudyInfo` records (trials, best trial, a torn last record as a warning), read only when
the file changed. Optuna is imported only when a journal file exists (its import is slow).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

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
        paired = frozen.user_attrs.get("objective") == "paired"
        if len(directions) == 1 and any(t.state == TrialState.COMPLETE.name for t in trials):
            best, value = _best(storage, sid, paired, frozen.user_attrs.get("metric") or "val", file)
            best_number, best_values, best_params = best.number, (value,), dict(best.params)
        out.append(StudyInfo(
            name=frozen.study_name, file=file, directions=directions, trials=trials,
            best_number=best_number, best_values=best_values, best_params=best_params,
            paired=paired,
            confirmation=confirmation_text(frozen.user_attrs.get("confirmation")),
        ))
    return out


def _best(storage: Any, sid: int, paired: bool, metric: str, file: Path) -> tuple[Any, float]:
    """Optuna's best trial; of a paired study, the confirmation's best (its value re-paired within
    one start where the runs under the journal's ``results/`` allow it)."""
    if not paired:
        best = storage.get_best_trial(sid)
        return best, float(best.values[0])
    from aakit.experiment.paired import ranked_trials  # scipy: only for a paired study

    return ranked_trials(storage.get_all_trials(sid, deepcopy=False), file.parent.parent, metric)[0]


def confirmation_text(c: Any) -> str | None:
    """``"confirmed #3: +0.40 [-1.10, +1.90] pt, 5 seeds"`` (a paired study's ``confirmation``), and
    ``", 2 across two starts"`` where pairs did not share their pre-trained start."""
    if not isinstance(c, dict) or c.get("ci_low") is None:
        return None
    apart = c.get("start_mismatches") or 0
    return (f"confirmed #{c.get('trial')}: {c['mean_diff']:+.2f} [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}] pt, "
            f"{len(c.get('pairs') or [])} seeds" + (f", {apart} across two starts" if apart else ""))


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
