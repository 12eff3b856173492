"""Report tables: their cells, how they are shown, and the four formats they are rendered in.

A :class:`Cell` is one number of a paper table beside the paper's (mean and std over seeds,
runs counted and expected, the published value, the difference, both protocols); a
:class:`ReportTable` holds the cells as a pandas frame (``long``, columns :data:`LONG_COLUMNS`)
and what is shown as :class:`Block` grids of strings. The tables of the report, the claims
and the grid costs are all :class:`ReportTable` and render alike:

* ``rich`` (terminal), ``md`` (what the README embeds), ``latex`` (booktabs);
* ``csv``: one line per cell (table,row,column,ours_mean,ours_std,n_runs,n_expected,paper,diff,
  protocol,paper_protocol — machine-readable, empty where missing).

This module reads no file: :mod:`aakit.experiment.results` does.
"""
from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterable

import pandas as pd

MISSING = "missing"  # our cell without any finished run
NOT_EVALUATED = "not evaluated"  # finished runs, none evaluated on this cell's split (aakit eval --split)
NO_PAPER = "—"  # the paper has no number for this cell


# ----------------------------------------------------------------------------- cells
def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1) of the numbers (None and NaN left out)."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var)


@dataclass(frozen=True)
class Cell:
    """One cell of a paper table: ours (mean, std over seeds) beside the paper's."""

    table: int
    row: str
    column: str
    ours_mean: float | None
    ours_std: float | None
    n_runs: int
    n_expected: int
    paper: float | None
    diff: float | None  # ours minus the paper's
    protocol: str
    paper_protocol: str

    @classmethod
    def of(cls, table: int, row: str, column: str, values: list[float | None], protocols: Iterable[str],
           expected: int, paper: float | None, paper_protocol: str) -> Cell:
        """The cell of the runs' ``values`` (None: the run lacks it) and their protocols."""
        mean, std = mean_std([v for v in values if v is not None])
        return cls(table, row, column, mean, std, sum(v is not None for v in values), expected, paper,
                   None if mean is None or paper is None else mean - paper, "/".join(sorted(set(protocols))),
                   paper_protocol)

    @property
    def ours(self) -> str:
        """``52.0 ± 2.0``, ``52.0`` (one run) or ``missing``."""
        return fmt_ours(self.ours_mean, self.ours_std, self.n_runs)


LONG_COLUMNS = [f.name for f in fields(Cell)]


def cells_frame(cells: Iterable[Cell]) -> pd.DataFrame:
    """The cells as a frame, one row each (columns :data:`LONG_COLUMNS`)."""
    return pd.DataFrame([asdict(c) for c in cells], columns=LONG_COLUMNS)


def paper_of(pub: pd.DataFrame, table: int, row: str, column: str) -> tuple[float | None, str]:
    """The published value of a cell and its protocol; (None, "") where the paper has none."""
    hit = pub[(pub["table"] == table) & (pub["row"] == row) & (pub["column"] == column)]
    if not len(hit):
        return None, ""
    return float(hit["value"].iloc[0]), str(hit["protocol"].iloc[0])


def nan_to_none(x: Any) -> Any:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def fmt_num(x: float | None) -> str:
    return NO_PAPER if nan_to_none(x) is None else f"{x:.1f}"


def fmt_ours(mean: float | None, std: float | None, n: int) -> str:
    if mean is None or n == 0:
        return MISSING
    return f"{mean:.1f} ± {std:.1f}" if std is not None else f"{mean:.1f}"


def fmt_diff(d: float | None) -> str:
    return "" if nan_to_none(d) is None else f"{d:+.1f}"


# ----------------------------------------------------------------------------- tables
@dataclass
class Block:
    """A rendered grid of strings: one header, rows, an optional caption."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    align: str = ""  # one of "l"/"r" per column; default: first left, the rest right

    def aligns(self) -> str:
        return self.align or "l" + "r" * (len(self.header) - 1)


@dataclass
class ReportTable:
    """One table: the numbers (``long``, pandas) and how they are shown (``blocks``)."""

    number: int
    title: str
    preset: str
    long: pd.DataFrame
    blocks: list[Block]
    notes: list[str] = field(default_factory=list)
    label: str = ""  # how it is named when shown; default "Table <number>"
    dropped: list[str] = field(default_factory=list)  # runs left out and why (see ResultsIndex.left_out)

    @property
    def name(self) -> str:
        return self.label or f"Table {self.number}"


# ----------------------------------------------------------------------------- rendering
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_md(t: ReportTable) -> str:
    lines = [f"**{t.name}.** {t.title} ({t.preset})", ""]
    for b in t.blocks:
        if b.caption:
            lines += [f"*{b.caption}*", ""]
        lines.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
        lines.append("|" + "|".join(":---" if a == "l" else "---:" for a in b.aligns()) + "|")
        lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in b.rows]
        lines.append("")
    lines += [f"*{n}*" for n in t.notes]
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    out = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    return (out.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("—", "--").replace("−", "-")
            .replace("Ω", r"$\Omega$"))


def render_latex(t: ReportTable) -> str:
    lines = [r"% " + t.name + " regenerated by aakit report; needs \\usepackage{booktabs}",
             r"\begin{table}[t]", r"\centering", r"\small",
             r"\caption{" + latex_escape(f"{t.name}: {t.title} ({t.preset}). " + " ".join(t.notes)) + "}"]
    for b in t.blocks:
        if b.caption:
            lines.append(r"\par\smallskip " + latex_escape(b.caption) + r"\par")
        lines.append(r"\begin{tabular}{" + b.aligns() + "}")
        lines.append(r"\toprule")
        lines.append(" & ".join(latex_escape(h) for h in b.header) + r" \\")
        lines.append(r"\midrule")
        lines += [" & ".join(latex_escape(c) for c in r) + r" \\" for r in b.rows]
        lines.append(r"\bottomrule")
        lines.append(r"\end{tabular}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def render_csv(t: ReportTable) -> str:
    df = t.long.copy()
    for c in df.columns:
        if pd.api.types.is_float_dtype(df[c]) or c in ("ours_mean", "ours_std", "paper", "diff"):
            df[c] = df[c].map(lambda v: "" if nan_to_none(v) is None else f"{v:.2f}")
    return df.to_csv(index=False, lineterminator="\n")


def rich_tables(t: ReportTable) -> list[Any]:
    """The table as rich renderables (for printing in colour)."""
    from rich.table import Table
    from rich.text import Text

    out = []
    for i, b in enumerate(t.blocks):
        title = f"{t.name}. {t.title} ({t.preset})" if i == 0 else b.caption
        table = Table(title=title, show_lines=False, title_justify="left", min_width=len(title) or None)
        for h, a in zip(b.header, b.aligns()):
            table.add_column(h, justify="left" if a == "l" else "right", no_wrap=True)
        for r in b.rows:
            table.add_row(*[Text(c, style="bold red" if c == MISSING else ("dim" if c == NO_PAPER else "")) for c in r])
        out.append(table)
    return out


def render_rich(t: ReportTable, width: int | None = None) -> str:
    from rich.console import Console

    need = max(sum(max(len(h), *(len(r[j]) for r in b.rows)) + 3 for j, h in enumerate(b.header))
               for b in t.blocks)
    need = max(need, len(f"{t.name}. {t.title} ({t.preset})"))  # the title on one line
    buf = io.StringIO()
    console = Console(file=buf, width=width or max(100, need + 4), color_system=None, highlight=False)
    for table in rich_tables(t):
        console.print(table)
    for n in t.notes:
        console.print(n, soft_wrap=True)
    return buf.getvalue()


RENDERERS: dict[str, Callable[[ReportTable], str]] = {
    "rich": render_rich, "md": render_md, "latex": render_latex, "csv": render_csv,
}
EXTENSIONS = {"rich": "txt", "md": "md", "latex": "tex", "csv": "csv"}
