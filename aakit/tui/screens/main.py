"""The main screen: tab *Runs* (the runs table, filter, sort, marks, the summary line) and tab
*Grids & studies* (each grid's points by state, each Optuna study's trials and best)."""
from __future__ import annotations

from typing import Any, Sequence

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Header, Input, Label, Static, TabbedContent, TabPane

from aakit.experiment.gridstate import GRID_STATES
from aakit.experiment.studystate import StudyInfo
from aakit.tui.model.fmt import fmt_float, fmt_miou
from aakit.tui.model.listing import SORT_DESCENDING, SORT_KEYS, best_run, filter_rows, sort_rows
from aakit.tui.model.poll import Snapshot
from aakit.tui.model.rows import RunRow
from aakit.tui.screens.base import AakitScreen
from aakit.tui.screens.sort_menu import SORT_LABELS, SortMenu
from aakit.tui.widgets.cells import STATUS_STYLES, status_text
from aakit.tui.widgets.tables import KeyedTable, RunsTable

def _append_corrupt(text: Text, rows: Sequence[RunRow], most: int = 3) -> None:
    """A line naming the corrupt runs and why (the first ``most`` of them), if there are any."""
    bad = [r for r in rows if r.status == "corrupt"]
    if not bad:
        return
    text.append(f"\n⚠ {len(bad)} corrupt run(s): ", style="bold red")
    text.append("; ".join(f"{r.name}: {r.problem or '?'}" for r in bad[:most]), style="red")
    if len(bad) > most:
        text.append("; ... (filter: corrupt)", style="red")



class MainScreen(AakitScreen):
    """Tabs *Runs* and *Grids & studies*."""

    BINDINGS = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("s", "sort_menu", "Sort"),
        Binding("S", "sort_reverse", "Reverse", show=False),
        Binding("space", "toggle_mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("1", "show_tab('runs')", "Runs", show=False),
        Binding("2", "show_tab('grids')", "Grids", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    #: Below this width the grids and the studies are stacked instead of side by side.
    NARROW = 100

    def __init__(self) -> None:
        super().__init__()
        self.sort_key = "name"
        self.sort_reverse = False
        self.filter_text = ""
        self.marked: set[str] = set()
        self.snapshot: Snapshot | None = None
        self.poll_error: str | None = None
        self.ready = False

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="runs"):
            with TabPane("Runs", id="runs"):
                yield Input(
                    placeholder="/ filter: words of name, status, host, hyperparameters", id="filter"
                )
                yield RunsTable(id="runs-table")
                yield Static(id="summary")
            with TabPane("Grids & studies", id="grids"):
                yield Static("no grid (grids/*/grid.json) and no Optuna study (studies/*.log) yet",
                             id="no-grids")
                with Horizontal(id="grids-box"):
                    with Vertical(classes="half", id="grids-half"):
                        yield Label("Grids", classes="section")
                        yield KeyedTable(
                            ("grid", *GRID_STATES, "total", "problem"), cut=("problem",),
                            first=("grid", "total", *GRID_STATES), id="grids-table",
                        )
                        yield Label("Points of the grid under the cursor", classes="section")
                        yield KeyedTable(("point", "state", "run", "params"), cut=("run", "params"),
                                         id="points-table")
                    with Vertical(classes="half", id="studies-half"):
                        yield Label("Optuna studies", classes="section")
                        yield KeyedTable(
                            ("study", "file", "direction", "trials", "states", "best mIoU", "best params"),
                            cut=("file", "states", "best params"), keep=("best mIoU",),
                            first=("study", "best mIoU", "trials", "states"), id="studies-table",
                        )
                        yield Label("Trials of the study under the cursor", classes="section")
                        yield KeyedTable(("trial", "state", "mIoU", "params"), cut=("params",),
                                         keep=("mIoU",), id="trials-table")
        yield Footer(compact=True)

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < self.NARROW, "narrow")

    def on_mount(self) -> None:
        # Children (tabs included) are mounted now: only from here may snapshots be drawn,
        # so the poller starts here rather than in App.on_mount.
        self.ready = True
        self.set_class(self.app.size.width < self.NARROW, "narrow")
        self.query_one("#filter", Input).display = False  # shown by "/" or while it filters
        self.query_one(RunsTable).focus()
        self._show_summary()
        self.aakit.start_poller()
        if self.snapshot is not None:
            self._draw()

    def on_screen_resume(self) -> None:
        """Back from a run or compare view: stop reading details."""
        self.aakit.set_watched(())

    # -- data down
    def update_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.marked &= {r.name for r in snapshot.rows}
        if self.ready:
            self._draw()

    def _draw(self) -> None:
        self._show_runs()
        self._show_grids()
        self._show_studies()
        self.aakit.mark_loaded()

    def visible_rows(self) -> list[Any]:
        """The rows shown: filtered, then sorted."""
        if self.snapshot is None:
            return []
        rows = filter_rows(self.snapshot.rows, self.filter_text)
        return sort_rows(rows, self.sort_key, self.sort_reverse)

    def _show_runs(self) -> None:
        self.query_one(RunsTable).show(self.visible_rows(), self.marked)
        self._show_summary()

    def _show_summary(self) -> None:
        snap = self.snapshot
        text = Text()
        if snap is None:
            text.append("reading the results directory ...", style="dim")
        else:
            counts: dict[str, int] = {}
            for r in snap.rows:
                counts[r.status] = counts.get(r.status, 0) + 1
            text.append(f"{len(snap.rows)} runs", style="bold")
            if not snap.rows:
                text.append(" - no run directory under runs/ yet", style="dim")
            for i, (status, n) in enumerate(sorted(counts.items())):
                text.append(", " if i else ": ")
                text.append(f"{n} {status}", style=STATUS_STYLES.get(status, ""))
            arrow = "▼" if self.sort_reverse else "▲"
            text.append(f"  ·  sorted by {SORT_LABELS.get(self.sort_key, self.sort_key)} {arrow}")
            if self.filter_text:
                shown = len(self.query_one(RunsTable).row_names)
                text.append(f"  ·  filter {self.filter_text!r}: {shown} shown")
            if self.marked:
                text.append(f"  ·  {len(self.marked)} marked (c: compare)")
            best = best_run(snap.rows)
            if best is not None:
                text.append(f"\nbest mIoU {fmt_miou(best.best_miou)}", style="bold")
                text.append(f"  {best.name}")
            _append_corrupt(text, snap.rows)
            bad = [r for r in snap.rows if r.errors]
            if bad:
                n = sum(r.errors for r in bad)
                text.append(
                    f"\n⚠ {n} malformed metrics line(s) in {len(bad)} run(s), skipped", style="bold red"
                )
                last = self.aakit.errors[-1] if self.aakit.errors else ""
                if last:
                    text.append(f" - last: {last}", style="red")
        if self.poll_error:
            text.append(f"\npoller error: {self.poll_error}", style="bold red")
        try:
            self.query_one("#summary", Static).update(text)
        except NoMatches:  # the screen is being torn down (quit) while a poll result arrives
            return

    def _show_grids(self) -> None:
        assert self.snapshot is not None
        grids = self.snapshot.grids
        rows = []
        for g in grids:
            c = g.counts
            rows.append((g.name, (
                g.name, *(str(c.get(s, 0)) for s in GRID_STATES), str(len(g.points)),
                Text(g.error or "", style="red"),
            )))
        table = self.query_one("#grids-table", KeyedTable)
        table.show(rows)
        self._show_halves()
        current = next((g for g in grids if g.name == table.cursor_key), grids[0] if grids else None)
        points = []
        for p in current.points if current else ():
            params = " ".join(f"{k}={v}" for k, v in p.params.items())
            points.append((p.id, (p.id, status_text(p.state), p.run or "-", params)))
        self.query_one("#points-table", KeyedTable).show(points)

    def _show_studies(self) -> None:
        assert self.snapshot is not None
        studies = self.snapshot.studies
        rows = []
        for st in studies:
            key = f"{st.file.name}:{st.name}"
            states = " ".join(f"{k.lower()}={v}" for k, v in sorted(st.state_counts.items()))
            # aakit's studies optimise an mIoU (grid points and search trials report val mIoU)
            # a val mIoU (grid points, miou searches) or, for a paired search, a paired difference in points
            best = "-" if st.best_values is None else " ".join(study_value(st, v) for v in st.best_values)
            if st.best_number is not None:
                best = f"#{st.best_number}: {best}"
            if st.confirmation:
                best = f"{best}; {st.confirmation}"
            params = " ".join(f"{k}={fmt_float(v)}" for k, v in st.best_params.items())
            rows.append((key, (
                st.name, st.file.name, ",".join(st.directions) or "-", str(len(st.trials)),
                Text(st.error, style="red") if st.error else
                Text(f"{states}  ! {st.warning}", style="yellow") if st.warning else states, best, params,
            )))
        table = self.query_one("#studies-table", KeyedTable)
        table.show(rows)
        keys = [k for k, _ in rows]
        current = studies[keys.index(table.cursor_key)] if table.cursor_key in keys else (
            studies[0] if studies else None
        )
        trials = []
        for t in current.trials if current else ():
            value = "-" if t.values is None else " ".join(study_value(current, v) for v in t.values)  # type: ignore[arg-type]
            params = " ".join(f"{k}={fmt_float(v)}" for k, v in t.params.items())
            trials.append((str(t.number), (str(t.number), t.state.lower(), value, params)))
        self.query_one("#trials-table", KeyedTable).show(trials)

    def _show_halves(self) -> None:
        """Only the halves with something to show: grids, studies, or a line saying there is none."""
        assert self.snapshot is not None
        grids, studies = bool(self.snapshot.grids), bool(self.snapshot.studies)
        self.query_one("#grids-half").display = grids
        self.query_one("#studies-half").display = studies
        self.query_one("#grids-box").display = grids or studies
        self.query_one("#no-grids").display = not (grids or studies)

    @on(DataTable.RowHighlighted, "#grids-table, #studies-table")
    def _sub_table_moved(self) -> None:
        if self.snapshot is not None:
            self._show_grids()
            self._show_studies()

    # -- user actions
    @on(DataTable.RowSelected, "#runs-table")
    def _open_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.aakit.open_run(event.row_key.value)

    @on(DataTable.HeaderSelected, "#runs-table")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = {"step": "progress"}.get(str(event.column_key.value), str(event.column_key.value))
        self.sort_by(key)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._show_runs()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self._leave_filter()

    def _leave_filter(self) -> None:
        """Back to the table; the filter box stays only while it filters."""
        box = self.query_one("#filter", Input)
        box.display = bool(box.value)
        self.query_one(RunsTable).focus()

    def action_focus_filter(self) -> None:
        self.query_one(TabbedContent).active = "runs"
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self._leave_filter()

    def action_sort_menu(self) -> None:
        """A small list of the sort keys to pick from."""
        self.app.push_screen(SortMenu(self.sort_key, self.sort_reverse), self.sort_by)

    def sort_by(self, key: str | None) -> None:
        """Sort by ``key`` (None: as it was); the current key again reverses the order."""
        if key is None or key not in SORT_KEYS:
            return
        self.sort_reverse = (not self.sort_reverse) if key == self.sort_key else key in SORT_DESCENDING
        self.sort_key = key
        self._show_runs()

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._show_runs()

    def action_toggle_mark(self) -> None:
        name = self.query_one(RunsTable).cursor_name
        if name is None:
            return
        self.marked ^= {name}
        self._show_runs()

    def action_compare(self) -> None:
        names = [n for n in self.query_one(RunsTable).row_names if n in self.marked]
        if len(names) < 2:
            self.notify("Mark two or more runs with space first.", severity="warning")
            return
        self.aakit.open_compare(names)

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        table = self.query_one(RunsTable) if tab == "runs" else self.query_one("#grids-table", KeyedTable)
        table.focus()


def study_value(st: StudyInfo, value: float | None) -> str:
    """A trial's value: a paired difference in points (``+0.42 pt``) or an mIoU in percent."""
    if not st.paired:
        return fmt_miou(value)
    return "-" if value is None else f"{value:+.2f} pt"
