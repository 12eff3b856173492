"""``aakit report``: the paper's Tables 1-6 rebuilt from stored runs, beside the published numbers.

Which run fills which cell comes from the grids: every point of a grid names its table, row,
seed, config hash and metric (``val``, ``val_rfpc``, ``val-msf-crf``...). The points are read
from ``results/grids/<name>/grid.json`` where a grid has run (it records the hashes actually
used, ``--set`` included), else expanded from the grid files under ``experiments/grids``. A cell
collects the finished runs (``summary.json`` with status finished) of its points' hashes:

* our value is the mean over those runs (seeds), with the sample standard deviation (n - 1)
  when there are several; a cell without any finished run says ``missing`` — never filled in;
* the paper's value comes from ``results/published.csv``; ``—`` where the paper has none;
* the difference is ours minus the paper's, in mIoU points (%);
* the protocol is our evaluation protocol (``ss``, ``msf``, ``+crf``, ``+rfpc``), with the
  paper's where it states one.

Tables 1-4: columns "IoU (train)" (metric ``train``...) and "IoU (val)". Table 5: per-class IoU
on val. Table 6: the published methods, plus our row. Numbers are mIoU in %.

The runs and grid points are read once (:func:`aakit.experiment.results.load_results`) and
shared by the tables, the claims (:mod:`~aakit.experiment.claims`), the grid costs
(:mod:`~aakit.experiment.costs`) and the figures (:mod:`~aakit.experiment.figures`); cells and
formats (``rich``, ``md``, ``latex``, ``csv``) are :mod:`aakit.experiment.tables`'. This module
puts them together; none of them imports it.
"""
from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from aakit.errors import AakitError
from aakit.experiment.claims import claims_json, claims_table, claims_verdicts
from aakit.experiment.comparisons import comparisons_json, comparisons_table, suite_comparison_tables
from aakit.experiment.costs import costs_table
from aakit.experiment.figures import make_figures, real_photos_figure
from aakit.experiment.journal import journal_warnings
from aakit.experiment.published import VOC_CLASSES, load_published, published_rows
from aakit.experiment.results import (  # default_grids_dir: where grid files are looked for (kept importable here)
    ResultsIndex, RowRuns, RunRecord, default_grids_dir, load_results, protocol_of, test_key, train_key,
)
from aakit.experiment.searchreport import search_figures, search_tables
from aakit.experiment.tables import (
    EXTENSIONS, MISSING, NO_PAPER, NOT_EVALUATED, RENDERERS, Block, Cell, ReportTable, cells_frame, fmt_diff, fmt_num, paper_of,
    render_csv, render_rich,
)
from aakit.experiment.noisefloor import noise_floor_table, noise_pairs
from aakit.experiment.variance import variance_table
from aakit.files import atomic_write_text, read_json
from aakit.runs import is_run_dir

FORMATS = ("rich", "md", "latex", "csv")
PRESETS = ("voc", "synthetic")
PAPER_DATA = "voc"  # the data set the paper's numbers are on: only there is ours − paper shown in the rich view
DIFF_NOTE = "; Δ = ours − paper"
DIFF_PREFIX = "Δ vs "  # the rows of Tables 5 and 6 that hold ours − paper
MORE = ("full tables: aakit report --tables (Tables 1-6, the claims in full, grid costs, the suite's own "
        "comparisons), --table N (one), --claims (the claims in full, in words); --format md/latex/csv for files")
TITLES = {
    1: "Ablation of the losses (CLS, CE, AA, LR) and rfpc",
    2: "Standard (SA) vs adaptive (AA) affinity over the dilation sets",
    3: "Modelling function of the AA weight Omega_ij (dilations 4-8-12-24)",
    4: "Concentration parameter gamma of the LR loss",
    5: "Per-class IoU on the validation set",
    6: "Comparison with published methods (mIoU, val and test)",
}


class ReportError(AakitError):
    """A report request that cannot be served (bad format, table or preset)."""


# ----------------------------------------------------------------------------- tables
def _ablation(n: int, pub: pd.DataFrame, index: ResultsIndex) -> tuple[list[Cell], Block]:
    gathered = index.rows(n)
    paper_order = published_rows(pub, n)
    rows = paper_order + [r for r in gathered if r not in paper_order]  # the paper's order, then ours
    cells: list[Cell] = []
    out: list[list[str]] = []
    for row in rows:
        g = gathered.get(row, RowRuns())
        line = [row]
        protos: set[str] = set()
        paper_protos: set[str] = set()
        for column in ("train", "val"):
            values, prot = g.column(train_key if column == "train" else None)
            paper, pprot = paper_of(pub, n, row, column)
            c = Cell.of(n, row, column, values, prot, g.expected, paper, pprot)
            cells.append(c)
            protos |= set(prot)
            if pprot:
                paper_protos.add(pprot)
            line += [NOT_EVALUATED if g.runs and not c.n_runs else c.ours, fmt_num(paper), fmt_diff(c.diff)]
        text = "/".join(sorted(protos))
        if paper_protos:
            text = (text + " " if text else "") + f"(paper: {'/'.join(sorted(paper_protos))})"
        n_runs = len(g.runs)
        line += [text, f"{n_runs}/{g.expected}" if g.expected else "no grid point"]
        out.append(line)
    header = ["Row", "train: ours", "train: paper", "train: Δ", "val: ours", "val: paper", "val: Δ",
              "protocol", "runs"]
    return cells, Block(header, out, align="lrrrrrrlr")


def _class_names(runs: list[RunRecord], k: int) -> list[str]:
    if k == len(VOC_CLASSES):
        return list(VOC_CLASSES)
    for run in runs:
        root = run.config.get("data", {}).get("root")
        meta = read_json(Path(root) / "meta.json") if isinstance(root, str) else None
        names = meta.get("class_names") if isinstance(meta, dict) else None
        version = meta.get("version") if isinstance(meta, dict) else None
        same = version is None or str(version) == _benchmark_version(run)  # no version: cannot tell
        if same and isinstance(names, list) and len(names) == k:  # the data the run saw is on disk
            return ["bkg" if i == 0 else str(x) for i, x in enumerate(names)]
    if any(run.summary.get("preset") == "synthetic" for run in runs):
        from aakit.data.synth import v1, versions  # the benchmark's own lists: no data needed (fresh clone)

        classes = (versions.version_of_label(_benchmark_version(runs[0])) or v1).CLASSES
        if 2 <= k - 1 <= len(classes):
            return ["bkg"] + [c.name for c in classes[: k - 1]]
    return ["bkg"] + [f"class{i}" for i in range(1, k)]


def _benchmark_version(run: RunRecord) -> str:
    """The embedded benchmark's version a run saw, as its provenance records it ("1.0" for runs
    made before runs recorded it, when version 1 was the only one)."""
    data = run.provenance.get("data")
    version = data.get("version") if isinstance(data, dict) else None
    return str(version) if version else "1.0"


def _per_class(g: RowRuns, i: int, name: str) -> tuple[list[float | None], list[str]]:
    """The runs' IoU (%) of class ``i`` (``name`` mIoU: their mIoU), and their protocols."""
    values: list[float | None] = []
    protocols: list[str] = []
    for run, metric in g.runs:
        b = run.block(metric) or {}
        if name == "mIoU":
            values.append(run.miou(metric))
        else:
            iou = b.get("iou") or []
            v = iou[i] if i < len(iou) else None
            values.append(100.0 * float(v) if isinstance(v, (int, float)) else None)
        if b:
            protocols.append(protocol_of(b))
    return values, protocols


def _table5(pub: pd.DataFrame, index: ResultsIndex, preset: str) -> tuple[list[Cell], list[Block], list[str]]:
    gathered = index.rows(5)
    paper_rows = published_rows(pub, 5)
    voc_cols = list(VOC_CLASSES) + ["mIoU"]
    cells: list[Cell] = []
    notes: list[str] = []
    # paper-only rows
    for row in paper_rows:
        if row in gathered:
            continue
        for col in voc_cols:
            paper, pprot = paper_of(pub, 5, row, col)
            cells.append(Cell.of(5, row, col, [], [], 0, paper, pprot))
    ours_blocks: list[tuple[str, list[str], dict[str, Cell]]] = []
    for row, g in gathered.items():
        ks = {len((r.block(m) or {}).get("iou") or []) for r, m in g.runs}
        k = max(ks) if ks else 0
        names = _class_names([r for r, _ in g.runs], k) if k else []
        by_col: dict[str, Cell] = {}
        for i, name in enumerate(names + ["mIoU"]):
            values, prot = _per_class(g, i, name)
            paper, pprot = paper_of(pub, 5, row, name)
            by_col[name] = Cell.of(5, row, name, values, prot, g.expected, paper, pprot)
            cells.append(by_col[name])
        if not g.runs:  # nothing ran: the paper's row alone, our cells missing
            for col in voc_cols:
                paper, pprot = paper_of(pub, 5, row, col)
                by_col[col] = Cell.of(5, row, col, [], [], g.expected, paper, pprot)
                cells.append(by_col[col])
            names = list(VOC_CLASSES)
        ours_blocks.append((row, names, by_col))

    rows = [[f"{r} (paper)"] + [fmt_num(paper_of(pub, 5, r, c)[0]) for c in voc_cols] for r in paper_rows]
    extra: list[Block] = []
    for row, names, by_col in ours_blocks:
        n_runs = max((c.n_runs for c in by_col.values()), default=0)
        if names == list(VOC_CLASSES):
            rows.append([f"{row} (aakit)"] + [fmt_num(by_col[c].ours_mean) if by_col[c].n_runs else MISSING
                                              for c in voc_cols])
            if n_runs >= 2:
                rows.append(["± std (seeds)"] + [fmt_num(by_col[c].ours_std) for c in voc_cols])
            if any(by_col[c].diff is not None for c in voc_cols):
                rows.append([f"Δ vs {row} (paper)"] + [fmt_diff(by_col[c].diff) for c in voc_cols])
        else:
            m = by_col["mIoU"]
            rows.append([f"{row} (aakit)"] + ["n/a"] * len(VOC_CLASSES) + [m.ours])
            if m.diff is not None:
                rows.append([f"Δ vs {row} (paper)"] + [""] * len(VOC_CLASSES) + [fmt_diff(m.diff)])
            hdr = ["Method"] + names + ["mIoU"]
            block_rows = [[f"{row} (aakit)"] + [fmt_num(by_col[c].ours_mean) for c in names + ["mIoU"]]]
            if n_runs >= 2:
                block_rows.append(["± std (seeds)"] + [fmt_num(by_col[c].ours_std) for c in names + ["mIoU"]])
            extra.append(Block(hdr, block_rows, f"aakit per-class IoU on the {preset} classes"))
            notes.append(f"our {preset} runs have {len(names)} classes, not VOC's 21: per-class values are in "
                         "the second part; only mIoU is compared")
    protos = sorted({c.protocol for c in cells if c.n_runs} - {""})
    if protos:
        notes.append(f"our protocol: {'/'.join(protos)}")
    return cells, [Block(["Method"] + voc_cols, rows), *extra], notes


def _table6(pub: pd.DataFrame, index: ResultsIndex, preset: str) -> tuple[list[Cell], Block]:
    gathered = index.rows(6)
    sub = pub[pub["table"] == 6]
    cells: list[Cell] = []
    header = ["Method", "Stage", "Backbone", "Superv.", "val", "test", "protocol", "runs"]
    rows: list[list[str]] = []
    for row in published_rows(pub, 6):
        info = sub[sub["row"] == row].iloc[0]
        vals = []
        for col in ("val", "test"):
            paper, pprot = paper_of(pub, 6, row, col)
            vals.append(fmt_num(paper))
            if row not in gathered:
                cells.append(Cell.of(6, row, col, [], [], 0, paper, pprot))
        cite = re.match(r"\[\d+\]", str(info["note"]))
        ref = f" {cite.group(0)}" if cite else ""
        rows.append([f"{row}{ref}", str(info["stage"]), str(info["backbone"]), str(info["supervision"]), *vals, "", ""])
    for row, g in gathered.items():
        line_vals, diffs, protos = [], [], set()
        for col in ("val", "test"):
            values, prot = g.column(test_key if col == "test" else None)
            protos |= set(prot)  # the test cell's protocol names val's too
            paper, pprot = paper_of(pub, 6, row, col)
            c = Cell.of(6, row, col, values, protos, g.expected, paper, pprot)
            cells.append(c)
            line_vals.append(c.ours)
            diffs.append(fmt_diff(c.diff))
        cfg = g.runs[0][0].config if g.runs else {}
        backbone = str(cfg.get("model", {}).get("backbone", ""))
        sup = {"image": "I", "full": "F"}.get(str(cfg.get("train", {}).get("supervision", "")), "")
        rows.append([f"{row} (aakit, {preset})", "single-stage", backbone, sup, *line_vals, "/".join(sorted(protos)),
                     f"{len(g.runs)}/{g.expected}"])
        if any(diffs):
            rows.append([f"Δ vs {row} (paper)", "", "", "", *diffs, "", ""])
    return cells, Block(header, rows, align="llllrrlr")


def build_table(
    number: int,
    *,
    results: Path = Path("results"),
    preset: str = "synthetic",
    grids_dir: Path | None = None,
    published: pd.DataFrame | None = None,
    index: ResultsIndex | None = None,
) -> ReportTable:
    """Build one of the paper's tables from the stored runs.

    Args:
        number: 1..6.
        results: the results root (runs/, grids/).
        preset: ``synthetic`` or ``voc``: whose grids fill the table.
        grids_dir: where grid YAMLs are (default ``experiments/grids``).
        published: the published numbers (default: :func:`load_published`).
        index: the runs and grid points of ``preset`` already read (to build several tables at
            once; its notes are then the caller's to show); default: read them here.
    """
    if number not in TITLES:
        raise ReportError(f"--table {number}: the paper has Tables 1-6")
    if preset not in PRESETS:
        raise ReportError(f"--preset {preset!r}: should be voc or synthetic")
    pub = load_published(results=results) if published is None else published
    notes: list[str] = []
    if index is None:
        index = load_results(results, preset, grids_dir)
        notes = list(index.notes)
    if number <= 4:
        cells, block = _ablation(number, pub, index)
        blocks = [block]
    elif number == 5:
        cells, blocks, more = _table5(pub, index, preset)
        notes = notes + more
    else:
        cells, block = _table6(pub, index, preset)
        blocks = [block]
    notes = [
        f"mIoU in %; ours = mean ± std (n-1) over seeds of the {preset} runs; '{MISSING}' = no finished run; "
        f"'{NOT_EVALUATED}' = finished runs, none evaluated on that split (aakit eval RUN --split train); "
        f"'{NO_PAPER}' = no published number{DIFF_NOTE}",
        *notes,
    ]
    return ReportTable(number, TITLES[number], preset, cells_frame(cells), blocks, notes,
                       dropped=index.left_out(number))


def build_report(
    tables: Sequence[int] | None = None,
    *,
    results: Path = Path("results"),
    preset: str = "synthetic",
    grids_dir: Path | None = None,
    index: ResultsIndex | None = None,
) -> list[ReportTable]:
    """Tables 1-6 (or the given ones), sharing one read of the runs and grids (or the given one)."""
    if preset not in PRESETS:
        raise ReportError(f"--preset {preset!r}: should be voc or synthetic")
    pub = load_published(results=results)
    index = load_results(results, preset, grids_dir) if index is None else index
    out = []
    for n in tables or range(1, 7):
        t = build_table(n, results=results, preset=preset, published=pub, index=index)
        t.notes += index.notes
        out.append(t)
    return out


def without_paper_diff(t: ReportTable) -> ReportTable:
    """``t`` without ours − paper (the ``Δ`` columns of Tables 1-4, the ``Δ vs`` rows of Tables 5
    and 6), for the rich view of runs on another data set than the paper's: a synthetic
    benchmark's mIoU is not VOC's, so the difference says nothing of the method. The paper's
    numbers stay, for reference; the cells (``long``, CSV) keep ``diff``."""
    blocks = []
    for b in t.blocks:
        keep = [j for j, h in enumerate(b.header) if not h.endswith(": Δ")]
        rows = [[r[j] for j in keep] for r in b.rows if not (r and r[0].startswith(DIFF_PREFIX))]
        align = "".join(b.aligns()[j] for j in keep)
        blocks.append(Block([b.header[j] for j in keep], rows, b.caption, align))
    note = f"; the paper's numbers are on PASCAL VOC, shown for reference: no Δ on {t.preset} data (--preset voc)"
    notes = [n.replace(DIFF_NOTE, note) for n in t.notes]
    return dataclasses.replace(t, blocks=blocks, notes=notes)


def for_view(t: ReportTable, fmt: str, preset: str) -> ReportTable:
    """The table as ``fmt`` shows it: in the rich view, ours − paper only on the paper's data set."""
    return without_paper_diff(t) if fmt == "rich" and preset != PAPER_DATA and t.number in TITLES else t


# ----------------------------------------------------------------------------- output
def render(tables: Sequence[ReportTable], fmt: str) -> str:
    """All tables in one format (CSV: one header, all tables' cells)."""
    if fmt not in RENDERERS:
        raise ReportError(f"--format {fmt!r}: should be one of {', '.join(FORMATS)}")
    if fmt == "csv":
        parts = [render_csv(t) for t in tables]
        return parts[0] + "".join(p.split("\n", 1)[1] for p in parts[1:]) if parts else ""
    return "\n".join(RENDERERS[fmt](t) for t in tables)


def write_report(tables: Sequence[ReportTable], fmt: str, out: Path) -> list[Path]:
    """``table<N>.<ext>`` per table, plus ``tables.<ext>`` with all of them; atomically."""
    if fmt not in RENDERERS:
        raise ReportError(f"--format {fmt!r}: should be one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out}: exists and is not a directory")
    ext = EXTENSIONS[fmt]
    paths = []
    for t in tables:
        p = out / f"table{t.number}.{ext}"
        atomic_write_text(p, RENDERERS[fmt](t))
        paths.append(p)
    p = out / f"tables.{ext}"
    atomic_write_text(p, render(tables, fmt))
    return paths + [p]


BEGIN_MARK = "<!-- aakit report: begin (generated; refresh with aakit report --format md --into FILE) -->"
END_MARK = "<!-- aakit report: end -->"


def splice_block(path: Path, body: str) -> str:
    """``path``'s text with the block between :data:`BEGIN_MARK` and :data:`END_MARK` replaced."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ReportError(f"--into {path}: cannot read it ({e.strerror or e})") from None
    if text.count(BEGIN_MARK) != 1 or text.count(END_MARK) != 1 or text.index(BEGIN_MARK) > text.index(END_MARK):
        raise ReportError(f"--into {path}: needs one line '{BEGIN_MARK}' and, after it, one line '{END_MARK}'")
    head, rest = text.split(BEGIN_MARK, 1)
    _, tail = rest.split(END_MARK, 1)
    return f"{head}{BEGIN_MARK}\n\n{body.strip()}\n\n{END_MARK}{tail}"


def marked_block(path: Path) -> str:
    """The generated block of a document (what :func:`splice_block` put there), stripped."""
    text = Path(path).read_text(encoding="utf-8")
    return text.split(BEGIN_MARK, 1)[1].split(END_MARK, 1)[0].strip()


def check_request(*, table: int | None, fmt: str, out: Path | None, preset: str, into: Path | None,
                  claims: bool = False, variance: bool = False, compare: str | None = None,
                  figures: bool = False, data: Path | None = None, tables: bool = False,
                  mechanism: bool = False, photos: Path | None = None) -> None:
    """Refuse a report request that cannot be served, before anything is read or written."""
    if mechanism and (tables or claims or variance or compare is not None or table is not None):
        raise ReportError("--mechanism: alone (no --tables, --table, --claims, --variance or --compare)")
    if tables and (claims or variance or compare is not None):
        what = "--claims" if claims else "--variance" if variance else f"--compare {compare}"
        raise ReportError(f"--tables and {what}: one at a time (--tables is the full report)")
    if data is not None and not figures:
        raise ReportError(f"--data {data}: the data set is for the figures' image panels; give --figures too")
    if data is not None and not Path(data).is_dir():
        raise ReportError(f"--data {data}: directory not found")
    if photos is not None and not figures:
        raise ReportError(f"--photos {photos}: the real-photo sheet is a figure; give --figures too")
    if photos is not None and not (Path(photos) / "predictions.json").is_file():
        raise ReportError(f"--photos {photos}: no predictions.json there (aakit predict RUN IMAGES --out {photos} --cams makes it)")
    if variance and claims:
        raise ReportError("--variance and --claims: one at a time")
    if compare is not None and (claims or table is not None):  # --variance --compare: the grid's noise floor
        raise ReportError(f"--compare {compare}: alone (no --claims or --table)")
    if variance and table is not None and table not in (1, 2, 3, 4):
        raise ReportError(f"--variance --table {table}: the ablation tables are 1-4")
    if fmt == "json":  # the claims (or a grid's comparisons) with their pairs, printed: nothing else
        if not ((claims or compare is not None) and out is None and into is None and table is None):
            raise ReportError("--format json: only with --claims or --compare, printed (no --out, --into or --table)")
    elif fmt not in FORMATS:
        raise ReportError(f"--format {fmt!r}: should be one of {', '.join(FORMATS)}")
    if table is not None and table not in TITLES:
        raise ReportError(f"--table {table}: the paper has Tables 1-6")
    if preset not in PRESETS:
        raise ReportError(f"--preset {preset!r}: should be voc or synthetic")
    if into is not None and fmt != "md":
        raise ReportError(f"--into {into}: needs --format md")
    if into is not None and out is not None:
        raise ReportError("--into and --out: choose one")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ReportError(f"--out {out}: exists and is not a directory")


def no_runs_error(results: Path) -> ReportError:
    """The one-line refusal of a report on a results directory without any run."""
    results = Path(results)
    where = f"no run directory under {results / 'runs'}"
    if not results.is_dir():
        where = "no such directory"
    elif any(is_run_dir(p) for p in results.iterdir()):
        where += f"; the runs are directly in {results}: give the directory that holds runs/"
    return ReportError(f"--results {results}: no runs to report ({where})")


def left_out(index: ResultsIndex, tables: Sequence[ReportTable]) -> list[str]:
    """Every run left out of ``tables`` and why, once; then corrupt runs that no table named."""
    lines = list(dict.fromkeys(line for t in tables for line in t.dropped))
    named = set(re.split(r"[\s,:;]+", " ".join(lines)))  # run directory names hold none of these
    for s in index.dropped:
        if s.corrupt and s.path.name not in named:
            lines.append(f"run {s.path.name}: {s.reason}")
    return lines


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def short_view(*, table: int | None, fmt: str, out: Path | None, into: Path | None, claims: bool,
               variance: bool, compare: str | None, tables: bool, mechanism: bool = False) -> bool:
    """Whether the request is the default one: the claims' verdicts on the terminal, not the tables."""
    return (fmt == "rich" and out is None and into is None and table is None and not claims and not variance
            and compare is None and not tables and not mechanism)


def mechanism_table(results: Path) -> ReportTable:
    """Issue 28's Mechanism table: one row per grid row, the row's own record at its grid's
    starting point (``aakit grid FILE --preflight --store``), for every grid that stored one."""
    from aakit.experiment.mechanisms import ROW_KEYS, mechanism_rows

    grids = sorted(p.name for p in (Path(results) / "grids").iterdir()) if (Path(results) / "grids").is_dir() else []
    rows = mechanism_rows(results, grids)
    if not rows:
        raise ReportError(f"--mechanism: no grid under {Path(results) / 'grids'} has a stored mechanism.json "
                          "(aakit grid FILE --preflight --store measures one)")

    def cell(v: Any) -> str:
        return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)

    header = ["grid", "row", "measured at", *(label for _, label in ROW_KEYS)]
    body = [[r["grid"], r["row"], r["start"], *(cell(r[k]) for k, _ in ROW_KEYS)] for r in rows]
    notes = ["Each row's own objective on the grid's probe batches: AA-SA share = |grad AA - grad SA| / |grad of "
             "the whole objective| (what AA would change, also for SA rows); Omega right/wrong = its mean on "
             "pairs whose pseudo relation is right/wrong; repel active = share of repulsion pairs with W < Omega*m; "
             "W in [Om, m] = share where AA and SA differ; alpha = LR's modulation factor (eq. 16); LR cos = "
             "cosine of LR's gradient at the row's gamma and at gamma 0. '-': not computable there (the record "
             "says why)."]
    return ReportTable(0, "what each grid row's objective does at its starting point", "grid",
                       pd.DataFrame(rows), [Block(header, body, align="lll" + "r" * len(ROW_KEYS))], notes,
                       label="Mechanism")


def cli_run(
    *,
    table: int | None,
    fmt: str,
    out: Path | None,
    preset: str,
    figures: bool,
    results: Path,
    echo: Callable[[str], None] = print,
    grids_dir: Path | None = None,
    claims: bool = False,
    into: Path | None = None,
    warn: Callable[[str], None] = _stderr,
    variance: bool = False,
    compare: str | None = None,
    data: Path | None = None,
    suite: str | None = None,
    tables: bool = False,
    verbose: bool = False,
    mechanism: bool = False,
    cache: Path | None = None,
    photos: Path | None = None,
) -> None:
    """What ``aakit report`` does (the CLI's thin wrapper calls this).

    ``suite``: the grids whose file says ``suite: NAME`` fill the tables (default: the grids
    without a suite), so two benchmarks filling the same table are never mixed.

    The default request (rich, printed, no ``--table``, ``--claims``...: :func:`short_view`) is
    the claims' verdicts (:func:`aakit.experiment.claims.claims_verdicts`) and one line saying how
    to get the rest; ``tables`` asks for the full report (Tables 1-6, the claims in full, grid
    costs, the suite's own comparisons), which every other format, ``--out`` and ``--into``
    give as before. In the rich view ours − paper is shown on the paper's data set only
    (:func:`for_view`).

    The report goes to ``echo`` (or to files); the runs it left out, and why, to ``warn``
    (stderr), so that a document or a CSV made from ``echo`` stays as it was: one line with
    their count, or every one of them with ``verbose``. A results directory without any run is
    refused (:class:`ReportError`) before anything is written. ``cache``: a directory where the
    runs read are kept for the next report (:class:`aakit.experiment.results.RunCache`).
    """
    check_request(table=table, fmt=fmt, out=out, preset=preset, into=into, claims=claims, variance=variance,
                  compare=compare, figures=figures, data=data, tables=tables, mechanism=mechanism, photos=photos)
    for line in journal_warnings(results):  # a torn study journal: said, never rewritten here
        warn(line)
    index = load_results(results, preset, grids_dir, suite, cache=cache)  # one read for every table, the claims and costs
    if not index.seen:
        raise no_runs_error(results)
    if suite is not None and not index.points and compare is None:
        raise ReportError(f"--suite {suite}: no grid of preset {preset} says suite: {suite} "
                          f"(in {Path(results) / 'grids'} or the grid files)")
    if compare is not None and fmt == "json" and variance:  # a noise grid's pairs, for scripts
        echo(noise_pairs(results, compare).to_json(orient="records", indent=2))
        return
    if compare is not None and fmt == "json":  # a grid's own comparisons, for scripts
        echo(json.dumps(comparisons_json(results, compare), indent=2, allow_nan=False))
        return
    if fmt == "json":  # the claims with their paired numbers, for scripts
        echo(json.dumps(claims_json(results, preset, index=index), indent=2, allow_nan=False))
        _warn_left_out(left_out(index, [claims_table(results, preset, index=index)]), warn, verbose)
        return
    if short_view(table=table, fmt=fmt, out=out, into=into, claims=claims, variance=variance, compare=compare,
                  tables=tables, mechanism=mechanism):  # the verdicts first, and how to see the rest
        claims_t = claims_table(results, preset, index=index)
        echo(render_rich(claims_verdicts(claims_t)).rstrip("\n") + "\n\n" + MORE)
        if figures:
            _echo_figures(results, None, index, preset=preset, grids_dir=grids_dir, data=data, suite=suite,
                          photos=photos, warn=warn, echo=echo)
        _warn_left_out(left_out(index, [claims_t]), warn, verbose)
        return
    tables, extras = _chosen_tables(results, preset, index, fmt=fmt, table=table, claims=claims, variance=variance,
                                    compare=compare, suite=suite, mechanism=mechanism)
    _emit(tables, extras, fmt=fmt, out=out, into=into, echo=echo)
    if figures:
        _echo_figures(results, out, index, preset=preset, grids_dir=grids_dir, data=data, suite=suite, photos=photos,
                      warn=warn, echo=echo)
    _warn_left_out(left_out(index, [*tables, *extras]), warn, verbose)


def _chosen_tables(results: Path, preset: str, index: ResultsIndex, *, fmt: str, table: int | None, claims: bool,
                   variance: bool, compare: str | None, suite: str | None,
                   mechanism: bool) -> tuple[list[ReportTable], list[ReportTable]]:
    """The paper's tables and the extra tables (claims, costs, comparisons...) a request asks for."""
    if mechanism:  # each grid row's mechanism record at its grid's starting point (issue 28)
        extras, tables = [mechanism_table(results)], []
    elif compare is not None and variance:  # a noise grid's pairs: paired sd per source, class shares
        extras, tables = [noise_floor_table(results, compare, preset=preset)], []
    elif compare is not None:  # the comparisons a grid file declares (compare:), paired by seed
        extras, tables = [comparisons_table(results, compare)], []
    elif variance:  # where one table's spread comes from (seed, rows, within seed, evaluation set)
        extras, tables = [variance_table(results, preset, table or 1, index=index)], []
    elif claims:  # the claims only
        extras, tables = [claims_table(results, preset, index=index)], []
    else:  # all tables; after them the claims, the grid costs and the comparisons of the suite's own grids
        # (a pilot, a question of ours: their compare:); CSV: each in a file of its own
        tables = [for_view(t, fmt, preset)
                  for t in build_report([table] if table else None, results=results, preset=preset, index=index)]
        every_grid = {p.grid for p in index.points}  # the paper's tables' and the suite's own (pilot, figures)
        extras = [] if table else [claims_table(results, preset, index=index),
                                   costs_table(results, preset, index=index, grids=every_grid),
                                   *suite_comparison_tables(results, preset, suite),
                                   *search_tables(results, suite)]  # the suite's committed search studies (issue 31)
    return tables, extras


def _emit(tables: list[ReportTable], extras: list[ReportTable], *, fmt: str, out: Path | None, into: Path | None,
          echo: Callable[[str], None]) -> None:
    """Print the rendered report, splice it into ``into``, or write its files into ``out``."""
    if out is None:
        parts = [render(tables, fmt).rstrip("\n")] if tables else []
        if fmt != "csv" or not tables:
            parts += [RENDERERS[fmt](t).rstrip("\n") for t in extras]
        text = "\n\n".join(parts)
        if into is None:
            echo(text)
        else:  # the rendered report replaces the marked block of a document
            atomic_write_text(into, splice_block(into, text))
            echo(f"updated {into}")
    else:
        written = write_report(tables, fmt, out) if tables else []
        for t in extras:
            p = Path(out) / f"{t.label.lower().replace(' ', '_')}.{EXTENSIONS[fmt]}"
            atomic_write_text(p, RENDERERS[fmt](t))
            written.append(p)
        for p in written:
            echo(f"wrote {p}")


def _echo_figures(results: Path, out: Path | None, index: ResultsIndex, *, preset: str, grids_dir: Path | None,
                  data: Path | None, suite: str | None, photos: Path | None, warn: Callable[[str], None],
                  echo: Callable[[str], None]) -> None:
    """Write the report's figures (under ``out`` or ``results``: ``figures/``), one line each to ``echo``."""
    fig_dir = (Path(out) if out is not None else Path(results)) / "figures"
    for p in make_figures(results, fig_dir, preset=preset, grids_dir=grids_dir, index=index, data=data,
                          warn=warn, suite=suite):
        echo(f"wrote {p}")
    for p in search_figures(results, fig_dir, suite):  # each committed search study's history, slices, importances
        echo(f"wrote {p}")
    for p in real_photos_figure(photos, fig_dir) if photos is not None else []:  # aakit predict --cams' sheet
        echo(f"wrote {p}")


#: What a line of :func:`left_out` is about, as the one-line summary counts it (first match).
_KINDS = (("corrupt", ": corrupt: "), ("unfinished", "no summary.json (status"),
          ("unfinished", "summary.json says status"), ("not evaluated on a split", "metrics in summary.json"),
          ("with a twin (same hash)", "finished runs with hash"), ("without a seed", "has no seed"),
          ("with a repeated seed", " twice: "), ("without a start time (costs)", "no 'created' in provenance.json"))


def left_out_summary(dropped: Sequence[str]) -> str:
    """One line for :func:`left_out`'s: how many, of which kinds, and how to see them all."""
    kinds: dict[str, int] = {}
    for line in dropped:
        kind = next((k for k, needle in _KINDS if needle in line), "other")
        kinds[kind] = kinds.get(kind, 0) + 1
    what = ", ".join(f"{n} {k}" for k, n in kinds.items())
    return (f"aakit report: {len(dropped)} {'run or row' if len(dropped) == 1 else 'runs or rows'} left out or "
            f"counted short ({what}); add --verbose to list each, and why")


def _warn_left_out(dropped: list[str], warn: Callable[[str], None], verbose: bool = False) -> None:
    if not dropped:
        return
    if not verbose:
        warn(left_out_summary(dropped))
        return
    warn("aakit report: runs left out, and why:")
    for line in dropped:
        warn(f"  {line}")
