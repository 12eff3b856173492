"""The paper's published numbers (Tables 1-6) as data.

Every number printed in the paper's Tables 1-6 lives in one file, ``results/published.csv``,
one number per line::

    table,row,column,value,protocol,stage,backbone,supervision,note
    1,CLS+CE,train,63.7,,,WideResNet38,I,...
    5,RRM,bkg,87.9,,single-stage,WideResNet38,I,[52]
    6,SEC,val,50.7,,multi-stage,VGG16,I,[19]

``row`` and ``column`` are the keys the grids and the report use: Tables 1-4 have the columns
``train`` and ``val`` (the paper's "IoU (train)" and "IoU (val)"); Table 5 has one column per
VOC class plus ``mIoU``; Table 6 has ``val`` and ``test``. ``protocol`` is filled only where the
paper states one (``rfpc`` in Table 1); an empty cell means the paper does not say.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from aakit.errors import AakitError
from aakit.presets import published_csv

COLUMNS = ("table", "row", "column", "value", "protocol", "stage", "backbone", "supervision", "note")
FILE_NAME = "published.csv"

#: The 21 VOC classes in the order of the paper's Table 5 (and of VOC's label ids).
VOC_CLASSES = (
    "bkg", "plane", "bike", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "table", "dog", "horse", "mbk", "person", "plant", "sheep", "sofa", "train", "tv",
)


class PublishedError(AakitError):
    """The published-numbers file is missing or malformed."""


def default_published_path(results: Path | None = None) -> Path:
    """Where ``published.csv`` is looked for.

    ``<results>/published.csv`` if it exists, else the copy shipped with aakit (the wheel's,
    or ``results/published.csv`` beside ``aakit/`` in the repository: :mod:`aakit.presets`).
    """
    if results is not None and (Path(results) / FILE_NAME).is_file():
        return Path(results) / FILE_NAME
    return published_csv()


def load_published(path: Path | None = None, results: Path | None = None) -> pd.DataFrame:
    """Read and check the published numbers.

    Args:
        path: the CSV file; None looks it up with :func:`default_published_path`.
        results: the results directory searched first when ``path`` is None.

    Returns:
        A DataFrame with the columns of :data:`COLUMNS`; ``table`` is int, ``value`` float,
        the text columns are strings ("" where empty).

    Raises:
        PublishedError: the file is missing, a column is missing, a value is not a number,
            a table is not in 1..6, or a (table, row, column) appears twice.
    """
    path = Path(path) if path is not None else default_published_path(results)
    if not path.is_file():
        raise PublishedError(f"{path}: published numbers file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise PublishedError(f"{path}: cannot read CSV ({str(e).splitlines()[0]})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise PublishedError(f"{path}: missing column(s) {', '.join(missing)}")
    df = df[list(COLUMNS)].copy()
    for i, rec in df.iterrows():
        line = int(i) + 2  # header is line 1
        try:
            float(rec["value"])
        except ValueError:
            raise PublishedError(f"{path}: line {line}: value {rec['value']!r} is not a number") from None
        if rec["table"] not in {"1", "2", "3", "4", "5", "6"}:
            raise PublishedError(f"{path}: line {line}: table {rec['table']!r} should be 1..6")
        if not rec["row"] or not rec["column"]:
            raise PublishedError(f"{path}: line {line}: empty row or column")
    df["table"] = df["table"].astype(int)
    df["value"] = df["value"].astype(float)
    dup = df.duplicated(["table", "row", "column"], keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        raise PublishedError(
            f"{path}: table {first['table']} row {first['row']!r} column {first['column']!r} appears twice"
        )
    return df.reset_index(drop=True)


def published_value(df: pd.DataFrame, table: int, row: str, column: str) -> float | None:
    """The paper's number for one cell, or None where the paper has none."""
    hit = df[(df["table"] == table) & (df["row"] == row) & (df["column"] == column)]
    return float(hit["value"].iloc[0]) if len(hit) else None


def published_rows(df: pd.DataFrame, table: int) -> list[str]:
    """The rows of one table in the order of the file (the paper's order)."""
    return list(dict.fromkeys(df.loc[df["table"] == table, "row"]))
