"""How the dashboard fits a terminal of any size: which columns, which plots (no Textual).

Pure functions of sizes, so the rules are tested without running the app:

* :func:`fit_columns` - a table's columns by priority: the low-priority ones are dropped
  first when the terminal is narrow; a column that may be cut is cut (its cells then end with
  an ellipsis, :func:`ellipsize`) only when the columns that must stay do not fit otherwise.
* :func:`fit_plots` - the plots that fit a height: a plot is hidden rather than squashed.
* :func:`parse_size` - ``"80x24"`` for ``aakit tui --export ... --size``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from aakit.errors import AakitError

#: The ellipsis that ends a cut cell.
ELLIPSIS = "…"

#: Fewest rows a plot is drawn in (title, axes and tick labels take five of them).
MIN_PLOT_ROWS = 8

#: Narrowest and widest sizes ``--size`` accepts (columns x rows).
MIN_SIZE = (40, 12)
MAX_SIZE = (1000, 500)


@dataclass(frozen=True)
class Column:
    """A table column and how it gives way when the table is narrow.

    Attributes:
        key: the column's key.
        label: its header.
        priority: 0 first; the highest numbers are dropped first.
        keep: shown at any width (cut to ``min_width`` if need be, then scrolled).
        min_width: > 0 if the column may be cut down to this width (cells end with "…").
        optional: dropped when none of its cells has content (a column of "-" or blanks).
    """

    key: str
    label: str
    priority: int
    keep: bool = False
    min_width: int = 0
    optional: bool = False


def fit_columns(
    columns: Sequence[Column], natural: Mapping[str, int], available: int, padding: int = 2
) -> dict[str, int]:
    """The columns shown in ``available`` cells and their widths, in ``columns`` order.

    Args:
        columns: the columns, in display order.
        natural: each column's width without cutting (its widest cell or its label);
            a column missing here is not shown.
        available: cells of width for the whole row.
        padding: cells each column adds around its content.

    Columns are taken by priority: those with ``keep`` always, the others when they fit at
    their natural width beside the ones already taken (a narrower column of lower priority
    may fill a gap a wider one left). Only when the kept columns alone are too wide are the
    columns with a ``min_width`` cut, widest first, no further than their ``min_width``.
    """
    taken: list[Column] = []
    used = 0
    for c in sorted((c for c in columns if c.key in natural), key=lambda c: (not c.keep, c.priority)):
        cost = natural[c.key] + padding
        if c.keep or used + cost <= available:
            taken.append(c)
            used += cost
    widths = {c.key: natural[c.key] for c in taken}
    over = used - available
    for c in sorted((c for c in taken if c.min_width), key=lambda c: -widths[c.key]):
        if over <= 0:
            break
        cut = min(over, max(0, widths[c.key] - c.min_width))
        widths[c.key] -= cut
        over -= cut
    return {c.key: widths[c.key] for c in columns if c.key in widths}


def ellipsize(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, ending with an ellipsis if it was cut."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ELLIPSIS if width > 0 else ""


def fit_plots(height: int, plots: Sequence[str], min_rows: int = MIN_PLOT_ROWS) -> dict[str, int]:
    """The plots shown in ``height`` rows and the rows of each (first ones first).

    A plot gets at least ``min_rows`` rows or is not shown; the rows are shared out evenly,
    the first plot taking what does not divide.
    """
    n = min(len(plots), max(0, height) // min_rows)
    if n == 0:
        return {}
    share, extra = divmod(height, n)
    return {p: share + (extra if i == 0 else 0) for i, p in enumerate(plots[:n])}


_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


class SizeError(AakitError):
    """A ``--size`` that is not ``WIDTHxHEIGHT`` within :data:`MIN_SIZE` and :data:`MAX_SIZE`."""


def parse_size(text: str) -> tuple[int, int]:
    """``"80x24"`` -> ``(80, 24)`` (columns, rows).

    Raises:
        SizeError: not ``WxH``, or outside :data:`MIN_SIZE` .. :data:`MAX_SIZE`.
    """
    m = _SIZE.match(text or "")
    if not m:
        raise SizeError(f"--size {text!r}: expected WIDTHxHEIGHT in characters, e.g. 80x24")
    w, h = int(m.group(1)), int(m.group(2))
    (wmin, hmin), (wmax, hmax) = MIN_SIZE, MAX_SIZE
    if not (wmin <= w <= wmax and hmin <= h <= hmax):
        raise SizeError(f"--size {text}: from {wmin}x{hmin} to {wmax}x{hmax}")
    return w, h
