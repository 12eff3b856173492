"""Widgets of the TUI: the runs table, curve plots, the load panel and text panels.

Widgets only display what they are given (attributes go down): none of them reads a file.
Each keeps the data it was last given in a public attribute (``RunsTable.row_names``,
``CurvePlot.series``, ``TextPanel.lines``, ``LoadPanel.load``) so tests can check what is
shown without reading pixels.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from rich.errors import MarkupError
from rich.measure import Measurement
from rich.protocol import is_renderable
from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from aakit.tui.data import (
    RunRow,
    Series,
    SystemLoad,
    fmt_duration,
    fmt_float,
    fmt_miou,
    fmt_progress,
)

#: Colour of each run status and grid point state (Rich styles).
STATUS_STYLES: dict[str, str] = {
    "running": "bold green",
    "finished": "bold blue",
    "failed": "bold red",
    "interrupted": "bold magenta",
    "stale": "bold yellow",
    "unreadable": "bold red",
    "corrupt": "bold white on red",
    # grid point states
    "done": "bold blue",
    "missing": "dim",
}


def status_text(status: str) -> Text:
    """A run status, coloured."""
    return Text(status, style=STATUS_STYLES.get(status, ""))


def progress_bar(fraction: float, width: int = 10) -> Text:
    """``███▍      34%``: a bar of eighths of a cell followed by the percentage."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")
    text = Text(bar.ljust(width), style="green")
    # Floor, so that 399/400 reads 99%, never 100% before the end.
    text.append(f" {math.floor(100 * fraction + 1e-9):3d}%", style="")
    return text


def usage_bar(percent: float | None, width: int = 20) -> Text:
    """``[██████······] 52%`` for a utilisation or memory percentage."""
    if percent is None:
        return Text("n/a", style="dim")
    p = min(100.0, max(0.0, percent))
    n = round(p / 100 * width)
    style = "red" if p >= 90 else "yellow" if p >= 70 else "green"
    text = Text("[")
    text.append("█" * n, style=style)
    text.append("·" * (width - n), style="dim")
    text.append(f"] {p:3.0f}%")
    return text


def _gib(n: float | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f}"


# ----------------------------------------------------------------------------- runs table
#: (column key, header label). Keys double as sort keys (see ``aakit.tui.data.SORT_KEYS``).
RUN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("mark", " "),
    ("name", "run"),
    ("status", "status"),
    ("step", "epoch / step"),
    ("progress", "progress"),
    ("eta", "ETA"),
    ("cls", "CLS"),
    ("ce", "CE"),
    ("aa", "AA"),
    ("lr", "LR"),
    ("best_miou", "best mIoU"),
    ("lambda_aa", "λ1"),
    ("lambda_lr", "λ2"),
    ("margin_aa", "m"),
    ("gamma", "γ"),
    ("dilations", "dilations"),
    ("errors", "err"),
)


def run_cells(row: RunRow, marked: bool = False) -> tuple[Any, ...]:
    """The cells of one run, in :data:`RUN_COLUMNS` order."""
    hp = row.hparams
    return (
        Text("●", style="bold cyan") if marked else Text(" "),
        Text(row.name),
        status_text(row.status),
        Text(fmt_progress(row)),
        progress_bar(row.progress),
        Text(fmt_duration(row.eta), justify="right"),
        *(Text(fmt_float(row.losses.get(k)), justify="right") for k in ("cls", "ce", "aa", "lr")),
        Text(fmt_miou(row.best_miou), justify="right", style="bold"),
        *(Text(fmt_float(hp.get(k))) for k in ("lambda_aa", "lambda_lr", "margin_aa", "gamma")),
        Text(str(hp.get("dilations") or "-")),
        Text(f"⚠ {row.errors}", style="bold red") if row.errors else Text(""),
    )


def _cell_renderable(cell: Any) -> Any:
    """What a DataTable draws for ``cell``: strings are markup, other non-renderables ``str()``."""
    if isinstance(cell, str):
        try:
            return Text.from_markup(cell)
        except MarkupError:
            return Text(cell)
    return cell if is_renderable(cell) else Text(str(cell))


def fit_columns(table: DataTable[Any], rows: Iterable[Sequence[Any]]) -> None:
    """Give every column of ``table`` the width of its widest cell (or label), now.

    Call it before the rows change. A DataTable measures new cells only when the app is next
    idle, while its render caches are keyed on an update counter that the measuring does not
    bump: a frame drawn in between (a busy machine) keeps cells cut to the header's width until
    some cell changes. Fixed widths leave nothing to measure later.
    """
    console = table.app.console
    widths = [c.label.cell_len for c in table.ordered_columns]
    for cells in rows:
        for i, cell in enumerate(cells[: len(widths)]):
            renderable = _cell_renderable(cell)
            widths[i] = max(widths[i], Measurement.get(console, console.options, renderable).maximum)
    for column, width in zip(table.ordered_columns, widths):
        column.width, column.auto_width = width, False


class RunsTable(DataTable[Any]):
    """The runs table: one row per run, keyed by the run's name; updated in place."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open run", show=True),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.row_names: list[str] = []  # run names, in display order
        self._cells: dict[str, tuple[Any, ...]] = {}

    def on_mount(self) -> None:
        for key, label in RUN_COLUMNS:
            self.add_column(label, key=key)

    @property
    def cursor_name(self) -> str | None:
        """The run under the cursor, if any."""
        if not self.row_names or not 0 <= self.cursor_row < len(self.row_names):
            return None
        return self.row_names[self.cursor_row]

    def show(self, rows: Sequence[RunRow], marked: Iterable[str] = ()) -> None:
        """Display ``rows`` in this order; only cells that changed are redrawn.

        When the order or the set of rows changes (a new run, a filter, a sort) the table is
        rebuilt and the cursor stays on the run it was on.
        """
        marked = set(marked)
        names = [r.name for r in rows]
        cells = {r.name: run_cells(r, r.name in marked) for r in rows}
        if names == self.row_names and cells == self._cells:
            return  # the usual poll: nothing changed, nothing to measure or draw
        fit_columns(self, cells.values())
        if names != self.row_names:
            keep = self.cursor_name
            self.clear()
            for name in names:
                self.add_row(*cells[name], key=name)
            self.row_names = names
            if keep in names:
                self.move_cursor(row=names.index(keep), animate=False)
        else:
            for name in names:
                old = self._cells.get(name)
                for (key, _), before, after in zip(RUN_COLUMNS, old or (), cells[name]):
                    if before != after:
                        self.update_cell(name, key, after)
        self._cells = cells

    def cell_text(self, name: str, column: str) -> str:
        """The plain text of a cell (for tests and the summary line)."""
        return str(self.get_cell(name, column).plain)


class KeyedTable(DataTable[Any]):
    """A small table rebuilt only when its content changes; the cursor keeps its row key.

    Used for grids, grid points, studies, trials and config differences.
    """

    def __init__(self, columns: Sequence[str], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._columns = tuple(columns)
        self.rows_shown: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def on_mount(self) -> None:
        self.add_columns(*self._columns)

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if not self.rows_shown or not 0 <= self.cursor_row < len(self.rows_shown):
            return None
        return self.rows_shown[self.cursor_row][0]

    def show(self, rows: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Display ``(key, cells)`` rows (a repeated key gets a ``#n`` suffix)."""
        seen: dict[str, int] = {}
        unique = []
        for key, cells in rows:
            seen[key] = seen.get(key, 0) + 1
            unique.append((key if seen[key] == 1 else f"{key}#{seen[key]}", tuple(cells)))
        shown = tuple(unique)
        if shown == self.rows_shown:
            return
        fit_columns(self, (cells for _, cells in shown))
        keep = self.cursor_key
        self.clear()
        for key, cells in shown:
            self.add_row(*cells, key=key)
        self.rows_shown = shown
        keys = [k for k, _ in shown]
        if keep in keys:
            self.move_cursor(row=keys.index(keep), animate=False)

    def column_texts(self, index: int) -> list[str]:
        """The plain text of one column, top to bottom (for tests)."""
        cells = [c[index] for _, c in self.rows_shown]
        return [c.plain if isinstance(c, Text) else str(c) for c in cells]


# ----------------------------------------------------------------------------- plots
class CurvePlot(PlotextPlot):
    """A line plot of named series; :attr:`series` holds what is drawn, :attr:`plot_title` its title."""

    def __init__(self, title: str, xlabel: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plot_title = title
        self.xlabel = xlabel
        self.series: dict[str, Series] = {}
        self._draw()

    def set_series(self, series: Mapping[str, Series], title: str | None = None) -> None:
        """Draw these series (label -> (xs, ys)); a no-op when nothing changed."""
        series = {k: v for k, v in series.items() if v and v[0]}
        if series == self.series and (title is None or title == self.plot_title):
            return
        self.series = dict(series)
        if title is not None:
            self.plot_title = title
        self._draw()
        self.refresh()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(self.plot_title if self.series else f"{self.plot_title} (no data yet)")
        plt.xlabel(self.xlabel)
        for label, (xs, ys) in self.series.items():
            plt.plot(list(xs), list(ys), label=label, marker="braille")


# ----------------------------------------------------------------------------- text panels
class TextPanel(Static):
    """Lines of text (log lines, errors); :attr:`lines` holds them."""

    def __init__(self, empty: str = "", style: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lines: tuple[str, ...] = ()
        self._empty = empty
        self._style = style
        self.update(Text(empty, style="dim"))

    def set_lines(self, lines: Sequence[str]) -> None:
        lines = tuple(lines)
        if lines == self.lines:
            return
        self.lines = lines
        if lines:
            self.update(Text("\n".join(lines), style=self._style))
        else:
            self.update(Text(self._empty, style="dim"))


class LoadPanel(Static):
    """Utilisation and memory of this host's GPUs, else its CPU and RAM."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.load: SystemLoad | None = None

    def show(self, load: SystemLoad | None, run_host: str | None = None) -> None:
        self.load = load
        if load is None:
            self.update(Text("load: not read", style="dim"))
            return
        text = Text()
        text.append(f"{load.host}", style="bold")
        if load.note:
            text.append(f"  {load.note}", style="dim")
        if run_host and run_host != load.host:
            text.append(f"\nthe run is on {run_host}: this is the load here", style="yellow")
        for d in load.devices:
            text.append(f"\n{d.name}\n")
            text.append(" util ")
            text.append_text(usage_bar(d.util))
            text.append("\n mem  ")
            pct = 100 * d.mem_used / d.mem_total if d.mem_used is not None and d.mem_total else None
            text.append_text(usage_bar(pct))
            text.append(f" {_gib(d.mem_used)}/{_gib(d.mem_total)} GiB")
        self.update(text)
