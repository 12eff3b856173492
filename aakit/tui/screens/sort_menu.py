"""The sort menu: the sortable columns in a small list (modal)."""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import OptionList

from aakit.tui.model.listing import SORT_KEYS
from aakit.tui.widgets.keys import KeyOptionList
from aakit.tui.widgets.tables import RUN_COLUMNS

#: What the sort menu lists: each sort key and its column's header.
SORT_LABELS: dict[str, str] = {
    key: {"name": "run"}.get(key, label)
    for key, label in ((c.key, c.label) for c in RUN_COLUMNS) if key in SORT_KEYS
}


class SortMenu(ModalScreen[str | None]):
    """A small list of the sort keys: enter picks one, escape keeps the order as it is."""

    BINDINGS = [Binding("escape,q,s", "cancel", "Cancel", show=True)]

    def __init__(self, current: str, reverse: bool) -> None:
        super().__init__()
        self.current = current
        self.reverse = reverse

    def compose(self) -> ComposeResult:
        arrow = "▼" if self.reverse else "▲"
        options = [f"{label}  {arrow}" if key == self.current else label for key, label in SORT_LABELS.items()]
        menu = KeyOptionList(*options, id="sort-menu")
        menu.border_title = "sort by"
        yield menu

    def on_mount(self) -> None:
        menu = self.query_one(KeyOptionList)
        keys = list(SORT_LABELS)
        menu.highlighted = keys.index(self.current) if self.current in keys else 0
        menu.focus()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(list(SORT_LABELS)[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)
