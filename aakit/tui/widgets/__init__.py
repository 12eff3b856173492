"""Widgets of the TUI, by area: keys, cells, tables, plots, panels.

Widgets only display what they are given (attributes go down): none of them reads a file.
Each keeps the data it was last given in a public attribute (``RunsTable.row_names``,
``CurvePlot.series``, ``TextPanel.lines``, ``LoadPanel.load``) so tests can check what is
shown without reading pixels.

* :mod:`~aakit.tui.widgets.keys` - the j/k/g/G bindings (one table of them) and the boxes that use them;
* :mod:`~aakit.tui.widgets.cells` - coloured statuses and bars;
* :mod:`~aakit.tui.widgets.tables` - tables whose columns fit the width (runs, grids, studies, diffs);
* :mod:`~aakit.tui.widgets.plots` - curve plots, stacked or side by side as room allows;
* :mod:`~aakit.tui.widgets.panels` - text lines and the host's load.
"""
from __future__ import annotations

from aakit.tui.widgets.cells import STATUS_STYLES, progress_bar, status_text  # noqa: F401
from aakit.tui.widgets.keys import TABLE_KEYS, KeyOptionList, KeyScroll, vim_keys  # noqa: F401
from aakit.tui.widgets.panels import LoadPanel, TextPanel, usage_bar  # noqa: F401
from aakit.tui.widgets.plots import MIN_PLOT_COLS, CurvePlot, PlotRow, PlotStack  # noqa: F401
from aakit.tui.widgets.tables import (  # noqa: F401
    RUN_COLUMNS,
    FittedTable,
    KeyedTable,
    RunsTable,
    cut_cell,
    run_cells,
)
