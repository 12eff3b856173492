"""Deprecated: the TUI's data layer moved to :mod:`aakit.tui.model` (one module a job) and the
Optuna study reader to :mod:`aakit.experiment.studystate`. This shim re-exports the old names
for one release; import from the new modules.
"""
from __future__ import annotations

from aakit.experiment.gridstate import GRID_STATES, GridState, read_grid_state, read_grid_states  # noqa: F401
from aakit.experiment.studystate import StudyInfo, StudyReader, TrialInfo, confirmation_text, read_study_storage  # noqa: F401
from aakit.tui.model.configdiff import config_diff, flatten  # noqa: F401
from aakit.tui.model.curves import EMA_WEIGHT, downsample, ema, estimate_eta, smooth_series  # noqa: F401
from aakit.tui.model.fmt import fmt_duration, fmt_float, fmt_miou, fmt_progress  # noqa: F401
from aakit.tui.model.grids import read_grid, read_grids  # noqa: F401
from aakit.tui.model.listing import SORT_DESCENDING, SORT_KEYS, best_run, filter_rows, sort_rows  # noqa: F401
from aakit.tui.model.load import DeviceLoad, SystemLoad, _nvml, _reset_nvml, read_system_load  # noqa: F401
from aakit.tui.model.poll import ResultsDirError, ResultsModel, Snapshot  # noqa: F401
from aakit.tui.model.rows import (  # noqa: F401
    LOSS_LABELS,
    RunDetail,
    RunRow,
    Series,
    integer as _int,
    loss_label,
    loss_names,
    number as _num,
)
from aakit.tui.model.tracker import RunTracker, _FileCache  # noqa: F401
