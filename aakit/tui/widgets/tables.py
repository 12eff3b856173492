"""Tables whose columns fit their width (:func:`aakit.tui.layout.fit_columns`): runs, and small keyed ones."""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from rich.errors import MarkupError
from rich.measure import Measurement
from rich.protocol import is_renderable
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import DataTable

from aakit.tui.layout import Column, ellipsize, fit_columns
from aakit.tui.model.fmt import fmt_duration, fmt_float, fmt_miou, fmt_progress
from aakit.tui.model.rows import RunRow
from aakit.tui.widgets.cells import progress_bar, status_text
from aakit.tui.widgets.keys import TABLE_KEYS

#: The runs table's columns in display order (keys double as sort keys, see
#: ``aakit.tui.model.listing.SORT_KEYS``) and how they give way on a narrow terminal
#: (:func:`aakit.tui.layout.fit_columns`): the run and its best mIoU stay at any width (a long
#: name is cut, ending with "…"), the others go from the highest priority number down; the
#: mark, ETA, loss and err columns appear only when a cell of theirs has something to show.
RUN_COLUMNS: tuple[Column, ...] = (
    Column("mark", " ", 3, optional=True),
    Column("name", "run", 0, keep=True, min_width=12),
    Column("status", "status", 2),
    Column("step", "epoch / step", 6),
    Column("progress", "progress", 4),
    Column("eta", "ETA", 5, optional=True),
    Column("cls", "CLS", 7, optional=True),
    Column("ce", "CE", 8, optional=True),
    Column("aa", "AA", 9, optional=True),
    Column("lr", "LR", 10, optional=True),
    Column("best_miou", "best mIoU", 1, keep=True),
    Column("lambda_aa", "λ1", 11),
    Column("lambda_lr", "λ2", 12),
    Column("margin_aa", "m", 13),
    Column("gamma", "γ", 14),
    Column("dilations", "dilations", 15),
    Column("errors", "err", 3, optional=True),
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


def _blank(cell: Any) -> bool:
    return isinstance(cell, Text) and cell.plain.strip() in ("", "-")


def cut_cell(cell: Any, width: int) -> Any:
    """``cell`` no wider than ``width``: a longer text ends with "…" (never silently cut)."""
    if isinstance(cell, Text) and cell.cell_len > width:
        cell = cell.copy()
        cell.truncate(width, overflow="ellipsis")
    return cell


class FittedTable(DataTable[Any]):
    """A table whose columns fit its width, by priority (:func:`aakit.tui.layout.fit_columns`).

    Rows are ``(key, cells)``; every cell is kept uncut and the table draws the columns that
    fit, cutting a cell with "…" where a column had to be cut. It redraws itself when resized.
    Column widths are fixed when the rows are set: a DataTable otherwise measures new cells only
    when the app is next idle, and a frame drawn in between (a busy machine) keeps cells cut
    to the header's width until some cell changes.
    """

    BINDINGS = TABLE_KEYS

    def __init__(self, columns: Sequence[Column], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.spec = tuple(columns)
        self.widths: dict[str, int] = {}  # the columns shown and their widths
        self.row_keys: list[str] = []  # in display order
        self._full: dict[str, tuple[Any, ...]] = {}
        self._drawn: dict[str, tuple[Any, ...]] = {}
        self._fitted_to = -1

    @property
    def cursor_row_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if not self.row_keys or not 0 <= self.cursor_row < len(self.row_keys):
            return None
        return self.row_keys[self.cursor_row]

    def available_width(self) -> int:
        """Cells of width for the columns (a vertical scrollbar's room kept free)."""
        width = self.size.width or self.app.size.width
        return max(1, width - self.styles.scrollbar_size_vertical)

    def set_rows(self, keys: Sequence[str], cells: Mapping[str, tuple[Any, ...]]) -> None:
        """Display the rows ``keys`` in this order; only what changed is redrawn."""
        keys, cells = list(keys), dict(cells)
        if keys == self.row_keys and cells == self._full and self._fitted_to >= 0:
            return  # the usual poll: nothing changed, nothing to measure or draw
        self._full = cells
        self._draw(keys)

    def on_resize(self, event: events.Resize) -> None:
        if self._fitted_to >= 0 and self.available_width() != self._fitted_to:
            self._draw(self.row_keys)

    def natural_widths(self) -> dict[str, int]:
        """Each column's width uncut (widest cell or label); optional columns without content left out."""
        console = self.app.console
        out: dict[str, int] = {}
        for i, column in enumerate(self.spec):
            cells = [_cell_renderable(row[i]) for row in self._full.values() if i < len(row)]
            if column.optional and all(_blank(c) for c in cells):
                continue
            sizes = [Measurement.get(console, console.options, c).maximum for c in cells]
            out[column.key] = max([Text(column.label).cell_len, *sizes])
        return out

    def _draw(self, keys: list[str]) -> None:
        available = self.available_width()
        widths = fit_columns(self.spec, self.natural_widths(), available, padding=2 * self.cell_padding)
        index = {c.key: i for i, c in enumerate(self.spec)}
        drawn = {
            k: tuple(cut_cell(_cell_renderable(cells[index[c]]), w) for c, w in widths.items())
            for k, cells in self._full.items()
        }
        if widths != self.widths or keys != self.row_keys:
            self._rebuild(keys, widths, drawn)
        else:
            for key in keys:
                for column, before, after in zip(widths, self._drawn.get(key, ()), drawn[key]):
                    if before != after:
                        self.update_cell(key, column, after)
        self._drawn, self._fitted_to = drawn, available

    def _rebuild(self, keys: list[str], widths: dict[str, int], drawn: dict[str, tuple[Any, ...]]) -> None:
        keep = self.cursor_row_key
        new_columns = widths != self.widths
        self.clear(columns=new_columns)
        if new_columns:
            for column in self.spec:
                if column.key in widths:
                    width = widths[column.key]
                    self.add_column(Text(ellipsize(column.label, width)), width=width, key=column.key)
        for key in keys:
            self.add_row(*drawn[key], key=key)
        self.widths, self.row_keys = widths, keys
        if keep in keys:
            self.move_cursor(row=keys.index(keep), animate=False)


class RunsTable(FittedTable):
    """The runs table: one row per run, keyed by the run's name; updated in place."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open run", show=True),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(RUN_COLUMNS, **kwargs)

    @property
    def row_names(self) -> list[str]:
        """Run names, in display order."""
        return self.row_keys

    @property
    def cursor_name(self) -> str | None:
        """The run under the cursor, if any."""
        return self.cursor_row_key

    def show(self, rows: Sequence[RunRow], marked: Iterable[str] = ()) -> None:
        """Display ``rows`` in this order; only cells that changed are redrawn.

        When the order or the set of rows changes (a new run, a filter, a sort) the table is
        rebuilt and the cursor stays on the run it was on.
        """
        marked = set(marked)
        self.set_rows([r.name for r in rows], {r.name: run_cells(r, r.name in marked) for r in rows})

    def cell_text(self, name: str, column: str) -> str:
        """The plain text of a cell as drawn (for tests and the summary line)."""
        return str(self.get_cell(name, column).plain)


class KeyedTable(FittedTable):
    """A small table rebuilt only when its content changes; the cursor keeps its row key.

    Used for grids, grid points, studies, trials and config differences. The first column
    and those named in ``keep`` stay at any width; the columns named in ``cut`` may be cut
    (with "…"); the others give way from the last one, those named in ``first`` last.
    """

    def __init__(
        self,
        columns: Sequence[str],
        cut: Iterable[str] = (),
        keep: Iterable[str] = (),
        first: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        cut, keep = set(cut), {columns[0], *keep}
        rank = {label: i for i, label in enumerate((*first, *(c for c in columns if c not in first)))}
        spec = tuple(
            Column(f"c{i}", label, rank[label], keep=label in keep,
                   min_width=max(6, min(len(label), 12)) if i == 0 or label in cut else 0)
            for i, label in enumerate(columns)
        )
        super().__init__(spec, **kwargs)
        self.rows_shown: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        return self.cursor_row_key

    def show(self, rows: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Display ``(key, cells)`` rows (a repeated key gets a ``#n`` suffix)."""
        seen: dict[str, int] = {}
        unique = []
        for key, cells in rows:
            seen[key] = seen.get(key, 0) + 1
            unique.append((key if seen[key] == 1 else f"{key}#{seen[key]}", tuple(cells)))
        self.rows_shown = tuple(unique)
        self.set_rows([k for k, _ in unique], dict(unique))

    def column_texts(self, index: int) -> list[str]:
        """The plain text of one column, top to bottom, uncut (for tests)."""
        cells = [c[index] for _, c in self.rows_shown]
        return [c.plain if isinstance(c, Text) else str(c) for c in cells]
