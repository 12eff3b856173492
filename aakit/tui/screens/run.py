"""The run screen: one run's curves, config, logs, errors, mechanism record and the host's load."""
from __future__ import annotations

import yaml
from rich.syntax import Syntax
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Static

from aakit.tui.model.curves import EMA_WEIGHT
from aakit.tui.model.fmt import fmt_duration, fmt_float, fmt_miou, fmt_progress
from aakit.tui.model.poll import Snapshot
from aakit.tui.model.rows import RunDetail, RunRow, loss_label, loss_names
from aakit.tui.screens.base import AakitScreen, smoothed
from aakit.tui.widgets.cells import progress_bar, status_text
from aakit.tui.widgets.keys import KeyScroll
from aakit.tui.widgets.panels import LoadPanel, TextPanel
from aakit.tui.widgets.plots import CurvePlot, PlotStack

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
        losses = smoothed({loss_label(k): d.loss_series[k] for k in loss_names([d])}, smooth)
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
