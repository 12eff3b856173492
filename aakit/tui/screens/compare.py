"""The compare screen: two or more marked runs, one loss term and the mIoU overlaid, config differences."""
from __future__ import annotations

from typing import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Label, Static

from aakit.tui.model.configdiff import config_diff
from aakit.tui.model.curves import EMA_WEIGHT
from aakit.tui.model.fmt import fmt_miou
from aakit.tui.model.poll import Snapshot
from aakit.tui.model.rows import RunDetail, loss_label, loss_names
from aakit.tui.screens.base import AakitScreen, smoothed
from aakit.tui.widgets.plots import CurvePlot, PlotRow
from aakit.tui.widgets.tables import KeyedTable

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
            smoothed(losses, self.aakit.smooth), title=f"{label} loss per step{ema}"
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
