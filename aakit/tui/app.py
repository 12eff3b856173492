"""The aakit dashboard: a Textual app that watches a results directory.

Screens:

* **main** - tab *Runs*: the runs table (sortable, filterable, live) and a summary line;
  tab *Grids & studies*: each grid's points by state, each Optuna study's trials and best.
* **run** - one run: loss curves (CLS, CE, AA, LR), per-epoch mIoU / pseudo-label mIoU,
  the config, the last log lines, malformed-line errors and the host's load.
* **compare** - two or more marked runs: curves overlaid, config differences.
* **help** - the keys.

Data flow (as in dolphie / toolong): one thread worker polls the files with
:class:`aakit.tui.data.ResultsModel` and posts a :class:`SnapshotReady` message up to the app;
the app pushes the snapshot down into the screens' widgets. The UI thread never reads a file,
so a slow disk or a huge metrics file cannot freeze the interface. The worker reads details
(curves, logs) only for the runs currently on screen (:attr:`AakitTui.watched`).
"""
from __future__ import annotations

import asyncio
import io
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Sequence, cast

import yaml
from rich.console import Console
from rich.syntax import Syntax
from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    DataTable, Footer, Header, Input, Label, Markdown, OptionList, Static, TabbedContent, TabPane,
)
from textual.worker import get_current_worker

from aakit.runs import atomic_write_text
from aakit.tui.data import (
    EMA_WEIGHT,
    GRID_STATES,
    SORT_DESCENDING,
    SORT_KEYS,
    ResultsDirError,
    ResultsModel,
    RunDetail,
    RunRow,
    Series,
    Snapshot,
    best_run,
    config_diff,
    filter_rows,
    fmt_duration,
    fmt_float,
    fmt_miou,
    fmt_progress,
    loss_label,
    loss_names,
    smooth_series,
    sort_rows,
)
from aakit.tui.widgets import (
    RUN_COLUMNS,
    STATUS_STYLES,
    CurvePlot,
    KeyedTable,
    KeyOptionList,
    KeyScroll,
    LoadPanel,
    PlotRow,
    PlotStack,
    RunsTable,
    TextPanel,
    progress_bar,
    status_text,
)

HELP = """\
# aakit dashboard

Everything shown is read from the results directory (run directories, `grids/*/grid.json`,
`studies/*.log`); the dashboard never talks to a training process. It fits any terminal from
80x24 up: narrow tables drop their least useful columns first (a cut cell ends with "…"),
a plot that has no room is hidden rather than squashed, an empty panel is not shown.
Every mIoU is in percent.

## Everywhere
| key | action |
|-----|--------|
| `?` | this help |
| `q` | quit |
| `escape` | back / close |
| `j` / `k` / `g` / `G` | down / up / top / bottom in a list (the arrows work too) |

## Runs
| key | action |
|-----|--------|
| `enter` | open the run under the cursor (curves, config, logs, load) |
| `/` | filter: every word must appear in the name, status, host or hyperparameters |
| `s` | sort: pick a column from a menu (picking the current one reverses the order); best mIoU and progress sort highest first |
| `S` | reverse the order (or click a column header) |
| `space` | mark the run for comparison |
| `c` | compare the marked runs (two or more) |
| `1` / `2` | tab *Runs* / tab *Grids & studies* |

## Run view / compare view
| key | action |
|-----|--------|
| `e` | smoothed loss curves (exponential moving average, weight 0.9) on / off |
| `c` | run view: the config and the host's load beside the plots, or instead of them when narrow |
| `l` | compare view: next loss component (total, CLS, CE, AA, LR) |
| `escape` | back to the runs |

## Statuses
* **running** - status.json says running and the metrics moved recently
* **stale** - says running, but its process is gone (same host) or its metrics have not
  moved for longer than `stale_after` seconds
* **finished**, **failed**, **interrupted** - as written by the run
* **corrupt** - no `config.yaml`, or a `status.json` / `summary.json` that is not a JSON
  object (truncated, empty, hand-edited): the reason is in the summary line and the run view
* **unreadable** - the run directory could not be read (the reason is in the summary line)

`err` counts malformed lines of `metrics.jsonl`: they are shown, skipped, never fatal.
"""


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


# ----------------------------------------------------------------------------- help
class HelpScreen(ModalScreen[None]):
    """The keys and the meaning of the statuses."""

    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss_help", "Close", show=True),
    ]

    def compose(self) -> ComposeResult:
        with KeyScroll(id="help-box"):
            yield Markdown(HELP)

    def on_mount(self) -> None:
        self.query_one("#help-box").focus()

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


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


# ----------------------------------------------------------------------------- main screen
def _append_corrupt(text: Text, rows: Sequence[RunRow], most: int = 3) -> None:
    """A line naming the corrupt runs and why (the first ``most`` of them), if there are any."""
    bad = [r for r in rows if r.status == "corrupt"]
    if not bad:
        return
    text.append(f"\n⚠ {len(bad)} corrupt run(s): ", style="bold red")
    text.append("; ".join(f"{r.name}: {r.problem or '?'}" for r in bad[:most]), style="red")
    if len(bad) > most:
        text.append("; ... (filter: corrupt)", style="red")


class AakitScreen(Screen[None]):
    """A screen of the dashboard: :attr:`aakit` is its app, typed (``self.app`` is a plain App)."""

    @property
    def aakit(self) -> AakitTui:
        """The dashboard app this screen belongs to."""
        return cast("AakitTui", self.app)


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
            # a val mIoU (grid points, miou searches) or, for a paired search, a paired difference in points
            best = "-" if st.best_values is None else " ".join(st.fmt_value(v) for v in st.best_values)
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
            value = "-" if t.values is None else " ".join(current.fmt_value(v) for v in t.values)  # type: ignore[union-attr]
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
        self.aakit.push_screen(SortMenu(self.sort_key, self.sort_reverse), self.sort_by)

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


# ----------------------------------------------------------------------------- run screen
def _loss_title(detail: RunDetail, smooth: bool = False) -> str:
    row = detail.row
    lr = f"   learning rate {fmt_float(row.lr)}" if row.lr is not None else ""
    total = row.losses.get("total")
    ema = f", EMA {EMA_WEIGHT}" if smooth else ""
    return f"losses per step{ema} (total {fmt_float(total)}){lr}"


def run_title(row: RunRow) -> Text:
    """The run view's head: the run and its status; its best mIoU, progress and ETA; problem;
    hyperparameters. Lines too long for the terminal end with "…" (``#run-title`` in app.tcss)."""
    title = Text(row.name, style="bold")
    title.append("  ")
    title.append_text(status_text(row.status))
    title.append(f"\nbest mIoU {fmt_miou(row.best_miou)}", style="bold")
    title.append(f"  {fmt_progress(row)}  ")
    title.append_text(progress_bar(row.progress, 20))
    title.append(f"  ETA {fmt_duration(row.eta)}")
    if row.problem:
        title.append(f"\ncorrupt: {row.problem}", style="bold red")
    hp = "  ".join(f"{k}={v}" for k, v in row.hparams.items())
    if hp:
        title.append(f"\n{hp}", style="dim")
    return title


def _smoothed(series: dict[str, Series], smooth: bool) -> dict[str, Series]:
    return smooth_series(series) if smooth else series


class RunScreen(AakitScreen):
    """One run: curves, config, logs, errors and the host's load.

    From :attr:`WIDE` columns the config and the load sit beside the plots; below, ``c``
    shows them instead of the plots. A panel with nothing to show (no log line, no malformed
    line) is hidden; the plots that do not fit the height are hidden (:class:`PlotStack`).
    """

    BINDINGS = [
        Binding("escape,b", "back", "Back"),
        Binding("c", "toggle_side", "Config"),
        Binding("e", "smooth", "Smooth"),
    ]

    #: From this width the side panel (load, config) is shown beside the plots.
    WIDE = 110
    #: Below this height the log panel is shorter.
    TALL = 30

    def __init__(self, run_name: str) -> None:
        super().__init__()
        self.run_name = run_name
        self.detail: RunDetail | None = None
        self.side_open: bool | None = None  # None: shown when the screen is wide
        self.ready = False  # set once composed: snapshots are drawn from then on

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(self.run_name, style="bold"), id="run-title")
        with Horizontal(id="run-body"):
            with PlotStack(id="run-plots"):
                yield CurvePlot("losses per step", "step", id="loss-plot")
                yield CurvePlot("mIoU per epoch (%)", "epoch", id="miou-plot")
            with Vertical(id="run-side"):
                yield LoadPanel(id="load")
                with KeyScroll(id="config-box"):
                    yield Static(id="config")
        with Horizontal(id="run-bottom"):
            with KeyScroll(id="logs-box"):
                yield TextPanel(empty="no log lines yet", id="logs")
            with KeyScroll(id="errors-box"):
                yield TextPanel(empty="no malformed metrics lines", style="red", id="errors")
            with KeyScroll(id="mechanism-box"):
                yield TextPanel(empty="no mechanism record yet", id="mechanism")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#logs-box").border_title = "last log lines"
        self.query_one("#errors-box").border_title = "errors"
        self.query_one("#mechanism-box").border_title = "mechanism (what AA and LR change)"
        self.query_one("#config-box").border_title = "config.yaml"
        self.query_one("#load").border_title = "load"
        self.ready = True
        self._fit()
        snap = self.aakit.snapshot
        if snap is not None:  # draw what is known at once; the poller adds the curves
            self.update_snapshot(snap)

    def on_resize(self, event: events.Resize) -> None:
        if self.ready:
            self._fit()

    @property
    def side_shown(self) -> bool:
        """Whether the config and load panel is on screen."""
        return self.side_open if self.side_open is not None else self.size.width >= self.WIDE

    def _fit(self) -> None:
        """Show the panels that have content and room (see the class docstring)."""
        wide = self.size.width >= self.WIDE
        side = self.side_shown
        self.set_class(not wide, "narrow")
        self.set_class(self.size.height < self.TALL, "short")
        self.query_one("#run-side").display = side
        self.query_one("#run-plots").display = wide or not side
        logs = self.query_one("#logs", TextPanel).has_content
        errors = self.query_one("#errors", TextPanel).has_content
        mechanism = self.query_one("#mechanism", TextPanel).has_content
        self.query_one("#logs-box").display = logs
        self.query_one("#errors-box").display = errors
        self.query_one("#mechanism-box").display = mechanism
        # narrow, with the config shown instead of the plots: the config takes the logs' rows too
        self.query_one("#run-bottom").display = (logs or errors or mechanism) and (wide or not side)

    def update_snapshot(self, snapshot: Snapshot) -> None:
        detail = snapshot.details.get(self.run_name)
        row = snapshot.row(self.run_name)
        self.query_one(LoadPanel).show(snapshot.load, row.host if row else None)
        if detail is None:
            if row is None:
                self.query_one("#run-title", Static).update(
                    Text(f"{self.run_name}: the run directory is gone", style="bold red")
                )
            return
        first = self.detail is None or detail.config != self.detail.config
        self.detail = detail
        self.query_one("#run-title", Static).update(run_title(detail.row))
        self.query_one("#miou-plot", CurvePlot).set_series(detail.miou_series)
        self._draw_losses()
        self.query_one("#logs", TextPanel).set_lines(detail.logs[-50:])
        self.query_one("#errors", TextPanel).set_lines(detail.errors[-50:])
        self.query_one("#mechanism", TextPanel).set_lines(detail.mechanism)
        self._fit()
        if first:
            text = "# no config.yaml"
            if detail.config:
                text = yaml.safe_dump(dict(detail.config), sort_keys=False)
            self.query_one("#config", Static).update(Syntax(text, "yaml", background_color="default"))
            self.query_one("#logs-box").scroll_end(animate=False)

    def _draw_losses(self) -> None:
        if self.detail is None:
            return
        d, smooth = self.detail, self.aakit.smooth
        losses = _smoothed({loss_label(k): d.loss_series[k] for k in loss_names([d])}, smooth)
        self.query_one("#loss-plot", CurvePlot).set_series(losses, title=_loss_title(d, smooth))
        self.query_one(PlotStack).fit()

    def action_smooth(self) -> None:
        self.aakit.smooth = not self.aakit.smooth
        self._draw_losses()

    def action_toggle_side(self) -> None:
        self.side_open = not self.side_shown
        self._fit()
        if self.side_open and self.size.width < self.WIDE:
            self.query_one("#config-box").focus()  # j/k scroll the config

    def action_back(self) -> None:
        self.app.pop_screen()


# ----------------------------------------------------------------------------- compare screen
class CompareScreen(AakitScreen):
    """Two or more runs: one loss component and the mIoU overlaid, config differences."""

    BINDINGS = [
        Binding("escape,b", "back", "Back"),
        Binding("l", "next_loss", "Next loss"),
        Binding("e", "smooth", "Smooth"),
    ]

    def __init__(self, run_names: Iterable[str]) -> None:
        super().__init__()
        self.run_names = list(run_names)
        self.loss_key = "total"
        self.details: dict[str, RunDetail] = {}
        self.ready = False  # set once composed: snapshots are drawn from then on

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("compare: " + ", ".join(self.run_names), style="bold"), id="compare-title")
        with PlotRow(id="compare-plots"):
            yield CurvePlot("total loss per step", "step", id="cmp-loss")
            yield CurvePlot("mIoU per epoch (%)", "epoch", id="cmp-miou")
        yield Label("config differences", classes="section", id="diff-label")
        yield KeyedTable(("key", *self.run_names), cut=("key", *self.run_names), id="diff-table")
        yield Footer(compact=True)

    def update_snapshot(self, snapshot: Snapshot) -> None:
        self.details = {n: snapshot.details[n] for n in self.run_names if n in snapshot.details}
        self._draw()

    def on_mount(self) -> None:
        self.ready = True
        snap = self.aakit.snapshot
        if snap is not None:
            self.update_snapshot(snap)

    def _title(self) -> Text:
        text = Text("compare (best mIoU): ", style="bold")
        for i, name in enumerate(self.run_names):
            d = self.details.get(name)
            text.append(", " if i else "")
            text.append(name)
            text.append(f" {fmt_miou(d.row.best_miou) if d else '?'}", style="bold")
        return text

    def _draw(self) -> None:
        self.query_one("#compare-title", Static).update(self._title())
        label = loss_label(self.loss_key)
        losses = {n: d.loss_series[self.loss_key] for n, d in self.details.items()
                  if self.loss_key in d.loss_series}
        ema = f", EMA {EMA_WEIGHT}" if self.aakit.smooth else ""
        self.query_one("#cmp-loss", CurvePlot).set_series(
            _smoothed(losses, self.aakit.smooth), title=f"{label} loss per step{ema}"
        )
        mious = {n: d.miou_series["mIoU"] for n, d in self.details.items() if "mIoU" in d.miou_series}
        self.query_one("#cmp-miou", CurvePlot).set_series(mious)
        self.query_one(PlotRow).fit()
        diff = config_diff({n: d.config for n, d in self.details.items()})
        if len(self.details) == len(self.run_names):
            table = self.query_one("#diff-table", KeyedTable)
            table.show(
                (key, (key, *("-" if v is None else str(v) for v in values))) for key, values in diff
            )
            table.display = bool(diff)  # shown only when the configs differ
            self.query_one("#diff-label", Label).update(
                "config differences" if diff else "config differences: none"
            )

    def action_next_loss(self) -> None:
        keys = ("total", *loss_names(self.details.values()))  # the terms these runs recorded
        i = keys.index(self.loss_key) if self.loss_key in keys else -1
        self.loss_key = keys[(i + 1) % len(keys)]
        self._draw()

    def action_smooth(self) -> None:
        self.aakit.smooth = not self.aakit.smooth
        self._draw()

    def action_back(self) -> None:
        self.app.pop_screen()


# ----------------------------------------------------------------------------- the app
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


# ----------------------------------------------------------------------------- entry points
def run_tui(results: Path, *, refresh: float = 1.0, stale_after: float = 600.0) -> None:
    """Run the dashboard in this terminal until the user quits.

    Raises:
        ResultsDirError: ``results`` is not a directory.
    """
    AakitTui(Path(results), refresh=refresh, stale_after=stale_after).run()


def screen_text(app: App[Any]) -> str:
    """The characters on ``app``'s screen now, one line per row, without styles.

    Rendered as :meth:`textual.app.App.export_screenshot` renders its SVG (the screen's
    compositor into a recording console), exported as text instead.
    """
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def export_svg_async(
    results: Path, out: Path, *, size: tuple[int, int] = (160, 48), stale_after: float = 600.0
) -> Path:
    """:func:`export_svg` for callers already inside an event loop."""
    out = Path(out)
    app = AakitTui(Path(results), refresh=3600.0, stale_after=stale_after)
    async with app.run_test(size=size) as pilot:
        await app.wait_loaded()
        if app.snapshot is None:
            raise ResultsDirError(f"{results}: cannot read the results directory: {app.main.poll_error}")
        await pilot.pause()
        if out.suffix.lower() == ".txt":
            shot = screen_text(app)
        else:
            shot = app.export_screenshot(title=f"aakit - {Path(results).name}")
    atomic_write_text(out, shot)
    return out


def export_svg(
    results: Path, out: Path, *, size: tuple[int, int] = (160, 48), stale_after: float = 600.0
) -> Path:
    """Render the dashboard once, headless, at ``size`` (columns, rows) and write it to ``out``:
    an SVG screenshot, or the screen's plain text when ``out`` ends with ``.txt``.

    Returns:
        ``out``.

    Raises:
        ResultsDirError: ``results`` is not a directory or cannot be read.
    """
    return asyncio.run(export_svg_async(results, out, size=size, stale_after=stale_after))
