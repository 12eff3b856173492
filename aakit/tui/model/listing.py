"""Which runs the table lists and in which order: filter, sort, the best run."""
from __future__ import annotations

from typing import Any, Iterable

from aakit.tui.model.rows import RunRow

def filter_rows(rows: Iterable[RunRow], text: str) -> list[RunRow]:
    """Rows whose :meth:`RunRow.search_text` contains every word of ``text`` (any case)."""
    words = text.lower().split()
    return [r for r in rows if all(w in r.search_text() for w in words)]


#: Sortable columns: key -> function of a row giving the value (None sorts last).
SORT_KEYS: dict[str, Any] = {
    "name": lambda r: r.name,
    "status": lambda r: r.status,
    "progress": lambda r: r.progress,
    "eta": lambda r: r.eta,
    "cls": lambda r: r.losses.get("cls"),
    "ce": lambda r: r.losses.get("ce"),
    "aa": lambda r: r.losses.get("aa"),
    "lr": lambda r: r.losses.get("lr"),
    "best_miou": lambda r: r.best_miou,
    "lambda_aa": lambda r: r.hparams.get("lambda_aa"),
    "lambda_lr": lambda r: r.hparams.get("lambda_lr"),
    "margin_aa": lambda r: r.hparams.get("margin_aa"),
    "gamma": lambda r: r.hparams.get("gamma"),
    "dilations": lambda r: r.hparams.get("dilations"),
    "errors": lambda r: r.errors,
}


#: Keys whose highest values are the best: chosen from the sort menu, they sort highest first.
SORT_DESCENDING = frozenset({"best_miou", "progress"})


def sort_rows(rows: Iterable[RunRow], key: str = "name", reverse: bool = False) -> list[RunRow]:
    """Rows sorted by a column of :data:`SORT_KEYS`; missing values go last either way."""
    get = SORT_KEYS.get(key, SORT_KEYS["name"])
    rows = list(rows)
    present = [r for r in rows if get(r) is not None]
    missing = [r for r in rows if get(r) is None]
    # Mixed types in one column (e.g. a number and a string) are compared as text.
    try:
        present.sort(key=lambda r: (get(r), r.name), reverse=reverse)
    except TypeError:
        present.sort(key=lambda r: (str(get(r)), r.name), reverse=reverse)
    return present + sorted(missing, key=lambda r: r.name)


def best_run(rows: Iterable[RunRow]) -> RunRow | None:
    """The run with the highest best mIoU, or None when no run has one yet."""
    scored = [r for r in rows if r.best_miou is not None]
    return max(scored, key=lambda r: (r.best_miou, r.name)) if scored else None
