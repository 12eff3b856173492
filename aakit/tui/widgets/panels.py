"""Text panels: lines of text (logs, errors, the mechanism record) and the host's load."""
from __future__ import annotations

from typing import Any, Sequence

from rich.text import Text
from textual.widgets import Static

from aakit.tui.model.load import SystemLoad

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


class TextPanel(Static):
    """Lines of text (log lines, errors); :attr:`lines` holds them."""

    def __init__(self, empty: str = "", style: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lines: tuple[str, ...] = ()
        self._empty = empty
        self._style = style
        self.update(Text(empty, style="dim"))

    @property
    def has_content(self) -> bool:
        """Whether there is a line to show (the panel's box is hidden otherwise)."""
        return bool(self.lines)

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
