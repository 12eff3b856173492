"""The aakit dashboard: a Textual app that watches a results directory (the App only).

Laid out as Textualize's toolong and posting: the app owns the poller and the navigation;
each screen lives in its own module under :mod:`aakit.tui.screens` (main, run, compare, sort
menu, help), the widgets by area under :mod:`aakit.tui.widgets`, the custom messages in
:mod:`aakit.tui.messages`, the headless exporters in :mod:`aakit.tui.export`, and what is shown
is read, without Textual, by :mod:`aakit.tui.model`.

Screens:

* **main** - tab *Runs*: the runs table (sortable, filterable, live) and a summary line;
  tab *Grids & studies*: each grid's points by state, each Optuna study's trials and best.
* **run** - one run: loss curves (CLS, CE, AA, LR), per-epoch mIoU / pseudo-label mIoU,
  the config, the last log lines, malformed-line errors and the host's load.
* **compare** - two or more marked runs: curves overlaid, config differences.
* **help** - the keys.

Data flow (as in dolphie / toolong): one thread worker polls the files with
:class:`aakit.tui.model.poll.ResultsModel` and posts a :class:`~aakit.tui.messages.SnapshotReady`
message up to the app; the app pushes the snapshot down into the screens' widgets. The UI thread
never reads a file, so a slow disk or a huge metrics file cannot freeze the interface. The worker
reads details (curves, logs) only for the runs currently on screen (:attr:`AakitTui.watched`).
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from pathlib import Path
from typing import Iterable

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.worker import get_current_worker

from aakit.tui.messages import PollFailed, SnapshotReady
from aakit.tui.model.poll import ResultsModel, Snapshot
# The screens, importable from here as before the split (``from aakit.tui.app import RunScreen``).
from aakit.tui.screens import (  # noqa: F401
    SORT_LABELS,
    CompareScreen,
    HelpScreen,
    MainScreen,
    RunScreen,
    SortMenu,
    run_title,
)


class AakitTui(App[None]):
    """The dashboard over one results directory.

    Args:
        results: the results directory (``runs/``, ``grids/``, ``studies/`` inside).
        refresh: seconds between two polls of the files.
        stale_after: seconds without new metrics after which a running run is stale.

    Raises:
        ResultsDirError: ``results`` is not a directory.
    """

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses elsewhere work too
    TITLE = "aakit"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(self, results: Path, refresh: float = 1.0, stale_after: float = 600.0) -> None:
        super().__init__()
        self.results = Path(results)
        self.refresh_interval = refresh
        self.model = ResultsModel(self.results, stale_after=stale_after)
        self.sub_title = str(self.results)
        self.snapshot: Snapshot | None = None
        self.errors: deque[str] = deque(maxlen=500)  # latest malformed-line messages, oldest first
        self.watched: frozenset[str] = frozenset()  # runs whose details the poller reads
        self.smooth = False  # loss curves drawn as their exponential moving average (key e)
        self.main = MainScreen()
        self._wake = threading.Event()
        self._loaded = asyncio.Event()

    def get_default_screen(self) -> Screen[None]:
        return self.main

    def start_poller(self) -> None:
        """Start the poller (once the main screen can show what it reads)."""
        self._poll_files()

    # -- the poller (worker thread)
    @work(thread=True, exclusive=True, group="poller", name="poller")
    def _poll_files(self) -> None:
        """Poll the results directory every ``refresh`` seconds until the app exits."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            self._wake.clear()
            try:
                message: Message = SnapshotReady(self.model.poll(self.watched))
            except Exception as e:  # keep the dashboard alive; show what went wrong
                message = PollFailed(f"{type(e).__name__}: {e}")
            try:
                self.post_message(message)
            except RuntimeError:  # the event loop closed under us: the app is gone
                return
            deadline = time.monotonic() + self.refresh_interval
            # Short waits, so that both cancellation and a wake-up are seen quickly.
            while not worker.is_cancelled and not self._wake.is_set() and time.monotonic() < deadline:
                worker.cancelled_event.wait(0.05)

    def poll_now(self) -> None:
        """Ask the poller for a fresh snapshot now (after the watched runs changed)."""
        self._wake.set()

    def set_watched(self, names: Iterable[str]) -> None:
        self.watched = frozenset(names)
        self.poll_now()

    # -- snapshots go down
    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        snap = message.snapshot
        self.snapshot = snap
        self.errors.extend(snap.new_errors)
        # One toast per poll, however many bad lines arrived (a binary file may hold thousands).
        if snap.new_errors:
            n = len(snap.new_errors)
            more = f"\n(and {n - 1} more)" if n > 1 else ""
            self.notify(snap.new_errors[0] + more, title="malformed metrics line", severity="error")
        self.main.poll_error = None
        try:
            self.main.update_snapshot(snap)
            if isinstance(self.screen, (RunScreen, CompareScreen)) and self.screen.ready:
                self.screen.update_snapshot(snap)
        except NoMatches:  # a screen being torn down as the app exits: nothing to draw on
            pass

    def mark_loaded(self) -> None:
        """The main screen has drawn a snapshot (see :meth:`wait_loaded`)."""
        self._loaded.set()

    def on_poll_failed(self, message: PollFailed) -> None:
        self.main.poll_error = message.error
        if self.main.ready:
            self.main._show_summary()
        self._loaded.set()  # nothing more will come for now: do not keep a waiter hanging

    async def wait_loaded(self, timeout: float = 30.0) -> None:
        """Wait until the first snapshot is on screen (or the first poll failed)."""
        await asyncio.wait_for(self._loaded.wait(), timeout)

    # -- navigation
    def open_run(self, name: str) -> None:
        self.push_screen(RunScreen(name))
        self.set_watched([name])

    def open_compare(self, names: list[str]) -> None:
        self.push_screen(CompareScreen(names))
        self.set_watched(names)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())


def run_tui(results: Path, *, refresh: float = 1.0, stale_after: float = 600.0) -> None:
    """Run the dashboard in this terminal until the user quits.

    Raises:
        ResultsDirError: ``results`` is not a directory.
    """
    AakitTui(Path(results), refresh=refresh, stale_after=stale_after).run()
