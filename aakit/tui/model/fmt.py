"""Numbers, durations and progress as the tables and titles print them."""
from __future__ import annotations

from typing import Any

from aakit.tui.model.rows import RunRow, number

def fmt_duration(seconds: float | None) -> str:
    """``3725`` -> ``"1h02m"``, ``200`` -> ``"3m20s"``, None -> ``"-"``."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def fmt_float(value: Any) -> str:
    """A compact number: ``0.1234``, ``12.35``, ``1.20e-05``; ``-`` for a missing value."""
    v = number(value)
    if v is None:
        return "-" if value is None else str(value)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
        return f"{v:.2e}"
    return f"{v:.4g}"


def fmt_miou(value: float | None) -> str:
    """mIoU in 0..1 shown in percent with one decimal."""
    return "-" if value is None else f"{100 * value:.1f}"


def fmt_progress(row: RunRow) -> str:
    """``"e3/8 1200/2400"``: the epoch and the iteration out of their totals."""
    parts = []
    if row.epoch is not None:
        parts.append(f"e{row.epoch}/{row.epochs if row.epochs is not None else '?'}")
    if row.step is not None:
        parts.append(f"{row.step}/{row.steps_total if row.steps_total else '?'}")
    return " ".join(parts) or "-"
