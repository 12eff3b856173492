"""The dashboard's screens, one module each (the app, :mod:`aakit.tui.app`, pushes them).

* :mod:`~aakit.tui.screens.base` - :class:`AakitScreen`, the screens' view of the app (:class:`Dashboard`);
* :mod:`~aakit.tui.screens.main` - tabs *Runs* and *Grids & studies*;
* :mod:`~aakit.tui.screens.run` - one run: curves, config, logs, errors, mechanism, load;
* :mod:`~aakit.tui.screens.compare` - two or more runs overlaid, config differences;
* :mod:`~aakit.tui.screens.sort_menu` - the sort menu (modal);
* :mod:`~aakit.tui.screens.help` - the keys and the statuses (modal).
"""
from __future__ import annotations

from aakit.tui.screens.base import AakitScreen, Dashboard  # noqa: F401
from aakit.tui.screens.compare import CompareScreen  # noqa: F401
from aakit.tui.screens.help import HELP, HelpScreen  # noqa: F401
from aakit.tui.screens.main import MainScreen  # noqa: F401
from aakit.tui.screens.run import RunScreen, run_title  # noqa: F401
from aakit.tui.screens.sort_menu import SORT_LABELS, SortMenu  # noqa: F401
