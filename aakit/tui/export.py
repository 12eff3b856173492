"""The dashboard rendered once, headless: an SVG screenshot or the screen's plain text."""
from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.app import App

from aakit.runs import atomic_write_text
from aakit.tui.app import AakitTui
from aakit.tui.model.poll import ResultsDirError


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
