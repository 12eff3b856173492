"""Curve plots, and the containers that show as many of them as fit (hidden, never squashed)."""
from __future__ import annotations

from typing import Any, Mapping

from textual import events
from textual.containers import Vertical
from textual_plotext import PlotextPlot

from aakit.tui.layout import MIN_PLOT_ROWS, fit_plots
from aakit.tui.model.rows import Series

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


#: Fewest columns a plot is drawn in, side by side (:class:`PlotRow`).
MIN_PLOT_COLS = 30


class PlotStack(Vertical):
    """Plots one above the other, as many as fit its height (a plot is hidden, never squashed).

    Plots with data are shown first, in order; when none has any, the first one (saying "no
    data yet"). :attr:`shown` holds the ids of the plots on screen. Call :meth:`fit` after
    giving the plots new series; a resize calls it.
    """

    def __init__(self, *children: Any, **kwargs: Any) -> None:
        super().__init__(*children, **kwargs)
        self.shown: tuple[str, ...] = ()

    def on_resize(self, event: events.Resize) -> None:
        self.fit()

    def _candidates(self) -> list[CurvePlot]:
        plots = list(self.query_children(CurvePlot))
        return [p for p in plots if p.series] or plots[:1]

    def _rows(self, plots: list[CurvePlot]) -> dict[str, int]:
        return fit_plots(self.size.height, [p.id or "" for p in plots])

    def fit(self) -> None:
        rows = self._rows(self._candidates())
        for plot in self.query_children(CurvePlot):
            n = rows.get(plot.id or "")
            plot.display = n is not None
            if n is not None:
                self._size_plot(plot, n)
        self.shown = tuple(rows)

    def _size_plot(self, plot: CurvePlot, rows: int) -> None:
        plot.styles.height = rows


class PlotRow(PlotStack):
    """Plots side by side, as many as fit its width; none when it is too low to draw one."""

    DEFAULT_CSS = "PlotRow { layout: horizontal; }"

    def _rows(self, plots: list[CurvePlot]) -> dict[str, int]:
        if self.size.height < MIN_PLOT_ROWS:
            return {}
        n = min(len(plots), self.size.width // MIN_PLOT_COLS)
        return {p.id or "": self.size.height for p in plots[:n]}

    def _size_plot(self, plot: CurvePlot, rows: int) -> None:
        plot.styles.width = "1fr"  # the plots shown share the width
