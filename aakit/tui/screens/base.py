"""What every screen of the dashboard shares: its typed view of the app.

The screens do not import the app (:mod:`aakit.tui.app` imports them): they see it through
:class:`Dashboard`, the few attributes and calls they use, so the dependency points one way.
"""
from __future__ import annotations

from collections import deque
from typing import Iterable, Protocol, cast

from textual.screen import Screen

from aakit.tui.model.curves import smooth_series
from aakit.tui.model.poll import Snapshot
from aakit.tui.model.rows import Series


class Dashboard(Protocol):
    """The app as the screens use it (:class:`aakit.tui.app.AakitTui` is one)."""

    snapshot: Snapshot | None  # the latest snapshot, None before the first poll
    errors: deque[str]  # the latest malformed-line messages, oldest first
    smooth: bool  # loss curves drawn as their exponential moving average (key e)

    def start_poller(self) -> None: ...
    def set_watched(self, names: Iterable[str]) -> None: ...
    def mark_loaded(self) -> None: ...
    def open_run(self, name: str) -> None: ...
    def open_compare(self, names: list[str]) -> None: ...


class AakitScreen(Screen[None]):
    """A screen of the dashboard: :attr:`aakit` is its app, typed (``self.app`` is a plain App)."""

    @property
    def aakit(self) -> Dashboard:
        """The dashboard app this screen belongs to."""
        return cast(Dashboard, self.app)


def smoothed(series: dict[str, Series], smooth: bool) -> dict[str, Series]:
    """``series`` smoothed (:func:`aakit.tui.model.curves.smooth_series`) when ``smooth`` is on."""
    return smooth_series(series) if smooth else series
