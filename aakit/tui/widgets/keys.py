"""The vim-style keys (j/k/g/G) of the dashboard's lists and scrolling boxes, in one table.

Each widget kind names its own actions for down, up, top and bottom; :func:`vim_keys` binds
j/k/g/G to them, so the keys are written once.
"""
from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import OptionList


def vim_keys(
    down: str, up: str, top: str, bottom: str, labels: tuple[str, str, str, str] = ("Down", "Up", "Top", "Bottom")
) -> list[Binding]:
    """j/k/g/G bound to the actions ``down``, ``up``, ``top``, ``bottom`` (not shown in the footer)."""
    return [Binding(key, action, label, show=False)
            for key, action, label in zip("jkgG", (down, up, top, bottom), labels)]


#: j/k/g/G in a table: down, up, top, bottom (as the arrows, ctrl+home and ctrl+end).
TABLE_KEYS = vim_keys("cursor_down", "cursor_up", "scroll_top", "scroll_bottom")


class KeyOptionList(OptionList):
    """An option list that also moves with j/k (down/up) and g/G (first/last)."""

    BINDINGS = vim_keys("cursor_down", "cursor_up", "first", "last", ("Down", "Up", "First", "Last"))


class KeyScroll(VerticalScroll):
    """A scrolling box that also scrolls with j/k and jumps with g/G."""

    BINDINGS = vim_keys("scroll_down", "scroll_up", "scroll_home", "scroll_end")
