"""Coloured cells: a run's status, a progress bar."""
from __future__ import annotations

import math

from rich.text import Text

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
