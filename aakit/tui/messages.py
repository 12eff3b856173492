"""The dashboard's custom messages: the poller (a worker thread) posts them up to the app."""
from __future__ import annotations

from textual.message import Message

from aakit.tui.model.poll import Snapshot


class SnapshotReady(Message):
    """The poller read the results directory (posted from the worker thread)."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class PollFailed(Message):
    """The poller hit an unexpected error; it keeps polling."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error
