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

Formats: ``rich`` (terminal), ``md`` (what the README embeds), ``latex`` (booktabs) and ``csv``
(one line per cell: table,row,column,ours_mean,ours_std,n_runs,n_expected,paper,diff,protocol,
paper_protocol — machine-readable, empty where missing).
"""
from __future__ import annotations

import io
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd
import yaml

from aakit.errors import AakitError
from aakit.experiment.published import VOC_CLASSES, load_published, published_rows
from aakit.runs import atomic_write_text, is_run_dir, load_run, read_json

FORMATS = ("rich", "md", "latex", "csv")
PRESETS = ("voc", "synthetic")
TITLES = {
    1: "Ablation of the losses (CLS, CE, AA, LR) and rfpc",
    2: "Standard (SA) vs adaptive (AA) affinity over the dilation sets",
    3: "Modelling function of the AA weight Omega_ij (dilations 4-8-12-24)",
    4: "Concentration parameter gamma of the LR loss",
    5: "Per-class IoU on the validation set",
    6: "Comparison with published methods (mIoU, val and test)",
}
MISSING = "missing"  # our cell without any finished run
NO_PAPER = "—"  # the paper has no number for this cell
LONG_COLUMNS = ["table", "row", "column", "ours_mean", "ours_std", "n_runs", "n_expected", "paper", "diff",
                "protocol", "paper_protocol"]


class ReportError(AakitError):
    """A report request that cannot be served (bad format, table or preset)."""


# ----------------------------------------------------------------------------- inputs
@dataclass
class Point:
    """A grid point as the report sees it."""

    table: int
    row: str
    seed: int
    hash: str
    metric: str
    grid: str
    ran: bool = False  # from a grid.json (the grid has run), not expanded from its YAML


@dataclass
class Run:
    """A finished run: its directory and summary."""

    path: Path
    summary: dict[str, Any]

    def config(self) -> dict[str, Any]:
        try:
            data = yaml.safe_load((self.path / "config.yaml").read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return {}
        return data if isinstance(data, dict) else {}


def default_grids_dir() -> Path:
    """``experiments/grids`` of the working directory, else of the repository of this package."""
    local = Path("experiments") / "grids"
    return local if local.is_dir() else Path(__file__).resolve().parents[2] / "experiments" / "grids"


def collect_points(results: Path, preset: str, grids_dir: Path | None = None) -> tuple[list[Point], list[str]]:
    """Every grid point of ``preset``: from grid.json files, else from grid YAMLs.

    Returns:
        (points, notes): notes name grid files that could not be read.
    """
    from aakit.experiment.grid import load_grid

    points: list[Point] = []
    notes: list[str] = []
    covered: set[str] = set()
    for state in sorted((Path(results) / "grids").glob("*/grid.json")):
        data = read_json(state)
        if not isinstance(data, dict) or data.get("preset") != preset:
            continue
        covered.add(str(data.get("name")))
        for p in data.get("points", []):
            try:
                points.append(Point(int(p["table"]), str(p["row"]), int(p["seed"]), str(p["hash"]),
                                    str(p.get("metric") or "val"), str(data.get("name")), ran=True))
            except (KeyError, TypeError, ValueError):
                notes.append(f"{state}: a point without table/row/seed/hash was skipped")
    grids_dir = default_grids_dir() if grids_dir is None else Path(grids_dir)
    for f in sorted(grids_dir.rglob("*.yaml")) if grids_dir.is_dir() else []:
        try:
            head = yaml.safe_load(f.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            notes.append(f"{f}: not readable YAML, skipped")
            continue
        if not isinstance(head, dict) or head.get("name", f.stem) in covered:
            continue
        if head.get("preset") not in (None, preset):
            continue
        try:
            grid = load_grid(f)
        except AakitError as e:
            notes.append(f"grid skipped: {e}")
            continue
        if grid.preset != preset:
            continue
        covered.add(grid.name)
        points += [Point(p.table, p.row, p.seed, p.hash, p.metric, grid.name) for p in grid.points]
    return points, notes


@dataclass
class Skipped:
    """A run directory that fills no cell, and why (``corrupt``: see :func:`aakit.runs.load_run`)."""

    path: Path
    hash: str
    reason: str
    corrupt: bool = False


class RunIndex(dict[str, list[Run]]):
    """Finished runs by config hash; ``skipped`` names the other run directories, ``seen`` counts all."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: list[Skipped] = []
        self.seen = 0


def index_runs(results: Path) -> RunIndex:
    """Finished runs under ``results/runs`` by config hash (the others in ``.skipped``, with why).

    A corrupt run directory (no config.yaml; status.json or summary.json not a JSON object)
    fills no cell even if its summary says finished: :func:`dropped_lines` names it.
    """
    out = RunIndex()
    runs = Path(results) / "runs"
    for d in sorted(runs.iterdir()) if runs.is_dir() else []:
        if not is_run_dir(d):
            continue
        out.seen += 1
        info = load_run(d, with_records=False)
        summary = info.summary
        h = str((summary or {}).get("hash") or d.name.rsplit("-", 1)[-1])
        if info.problem:
            out.skipped.append(Skipped(d, h, f"corrupt: {info.problem}", corrupt=True))
        elif summary is None:
            out.skipped.append(Skipped(d, h, f"no summary.json (status: {info.status})"))
        elif summary.get("status") != "finished":
            out.skipped.append(Skipped(d, h, f"summary.json says status {summary.get('status')!r}"))
        else:
            out.setdefault(h, []).append(Run(d, summary))
    return out


# ----------------------------------------------------------------------------- cells
def train_key(metric: str) -> str:
    """The train-split twin of a val metric key: ``val_rfpc`` -> ``train_rfpc``."""
    return "train" + metric[3:] if metric.startswith("val") else "train_" + metric


def test_key(metric: str) -> str:
    """The test-split twin of a val metric key (present only if someone evaluated on test)."""
    return "test" + metric[3:] if metric.startswith("val") else "test_" + metric


def protocol_of(block: dict[str, Any]) -> str:
    """``ss``, ``msf+crf``, ``ss+rfpc``... of one metrics block."""
    text = str(block.get("protocol") or "?")
    if block.get("crf"):
        text += "+crf"
    if block.get("rfpc"):
        text += "+rfpc"
    return text


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var)


@dataclass
class Gathered:
    """The runs that fill one row of a table."""

    expected: int = 0
    runs: list[tuple[Run, str]] = field(default_factory=list)  # (run, metric)
    points: list[Point] = field(default_factory=list)  # the points counted in ``expected``


def gather(points: Iterable[Point], runs: dict[str, list[Run]], table: int) -> dict[str, Gathered]:
    """Row -> the finished runs of its points (each config hash counted once per row).

    Where a grid filling this table has run, only the points of grids that ran count (their
    grid.json holds the hashes really used); the grid files' expansions fill the other tables.
    """
    points = [p for p in points if p.table == table]
    if any(p.ran for p in points):
        points = [p for p in points if p.ran]
    out: dict[str, Gathered] = {}
    seen: set[tuple[str, str]] = set()
    for p in points:
        if (p.row, p.hash) in seen:
            continue
        seen.add((p.row, p.hash))
        g = out.setdefault(p.row, Gathered())
        g.expected += 1
        g.points.append(p)
        if runs.get(p.hash):
            g.runs.append((runs[p.hash][0], p.metric))
    return out


def _block(run: Run, key: str) -> dict[str, Any] | None:
    b = (run.summary.get("metrics") or {}).get(key)
    return b if isinstance(b, dict) else None


def _miou(run: Run, key: str) -> float | None:
    b = _block(run, key)
    v = b.get("miou") if b else None
    return 100.0 * float(v) if isinstance(v, (int, float)) else None


def _columns(table: int, metric: str) -> list[str]:
    """The summary keys a point's run must have for its cells of ``table`` (test: never expected)."""
    return [train_key(metric), metric] if table <= 4 else [metric]


def dropped_lines(points: Iterable[Point], runs: dict[str, list[Run]], table: int) -> list[str]:
    """Why a point of ``table`` counts fewer runs than it could: one line per run left out.

    A point whose run directory exists but is unfinished or corrupt; a point with several finished
    runs (the first counts); a run whose summary lacks a metric of the table. A point never run
    is not listed: the table shows it (``runs`` column, ``missing``).
    """
    skipped: dict[str, list[Skipped]] = {}
    for s in getattr(runs, "skipped", []):
        skipped.setdefault(s.hash, []).append(s)
    out: list[str] = []
    for row, g in gather(points, runs, table).items():
        head = f"Table {table} {row}: {len(g.runs)}/{g.expected} seeds"
        for p in g.points:
            found = runs.get(p.hash) or []
            if not found:
                out += [f"{head}; s{p.seed} {s.path.name}: {s.reason}" for s in skipped.get(p.hash, [])]
                continue
            if len(found) > 1:
                out.append(f"{head}; s{p.seed}: {len(found)} finished runs with hash {p.hash}, only "
                           f"{found[0].path.name} counts, not {', '.join(r.path.name for r in found[1:])}")
            out += [f"{head}; s{p.seed} {found[0].path.name}: no '{key}' metrics in summary.json"
                    for key in _columns(table, p.metric) if _block(found[0], key) is None]
    return out


def _cell(table: int, row: str, column: str, values: list[float | None], protocols: Iterable[str],
          expected: int, paper: float | None, paper_protocol: str) -> dict[str, Any]:
    mean, std = _mean_std([v for v in values if v is not None])
    n = sum(v is not None for v in values)
    return {
        "table": table, "row": row, "column": column, "ours_mean": mean, "ours_std": std, "n_runs": n,
        "n_expected": expected, "paper": paper,
        "diff": None if mean is None or paper is None else mean - paper,
        "protocol": "/".join(sorted(set(protocols))), "paper_protocol": paper_protocol,
    }


def _paper(pub: pd.DataFrame, table: int, row: str, column: str) -> tuple[float | None, str]:
    hit = pub[(pub["table"] == table) & (pub["row"] == row) & (pub["column"] == column)]
    if not len(hit):
        return None, ""
    return float(hit["value"].iloc[0]), str(hit["protocol"].iloc[0])


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
    """One paper table: the numbers (``long``, pandas) and how they are shown (``blocks``)."""

    number: int
    title: str
    preset: str
    long: pd.DataFrame
    blocks: list[Block]
    notes: list[str] = field(default_factory=list)
    label: str = ""  # how it is named when shown; default "Table <number>"
    dropped: list[str] = field(default_factory=list)  # runs left out and why (see dropped_lines)

    @property
    def name(self) -> str:
        return self.label or f"Table {self.number}"


def _num(x: float | None) -> str:
    return NO_PAPER if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def _ours(mean: float | None, std: float | None, n: int) -> str:
    if mean is None or n == 0:
        return MISSING
    return f"{mean:.1f} ± {std:.1f}" if std is not None else f"{mean:.1f}"


def _diff(d: float | None) -> str:
    return "" if d is None or (isinstance(d, float) and math.isnan(d)) else f"{d:+.1f}"


def _none(x: Any) -> Any:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _ablation(n: int, pub: pd.DataFrame, points: list[Point], runs: dict[str, list[Run]]) -> tuple[list[dict[str, Any]], Block]:
    gathered = gather(points, runs, n)
    paper_order = published_rows(pub, n)
    rows = paper_order + [r for r in gathered if r not in paper_order]  # the paper's order, then ours
    cells: list[dict[str, Any]] = []
    out: list[list[str]] = []
    for row in rows:
        g = gathered.get(row, Gathered())
        line = [row]
        protos: set[str] = set()
        paper_protos: set[str] = set()
        for column in ("train", "val"):
            values, prot = [], []
            for run, metric in g.runs:
                key = metric if column == "val" else train_key(metric)
                values.append(_miou(run, key))
                b = _block(run, key)
                if b is not None:
                    prot.append(protocol_of(b))
            paper, pprot = _paper(pub, n, row, column)
            c = _cell(n, row, column, values, prot, g.expected, paper, pprot)
            cells.append(c)
            protos |= set(prot)
            if pprot:
                paper_protos.add(pprot)
            line += [_ours(c["ours_mean"], c["ours_std"], c["n_runs"]), _num(paper), _diff(c["diff"])]
        text = "/".join(sorted(protos))
        if paper_protos:
            text = (text + " " if text else "") + f"(paper: {'/'.join(sorted(paper_protos))})"
        n_runs = len(g.runs)
        line += [text, f"{n_runs}/{g.expected}" if g.expected else "no grid point"]
        out.append(line)
    header = ["Row", "train: ours", "train: paper", "train: Δ", "val: ours", "val: paper", "val: Δ",
              "protocol", "runs"]
    return cells, Block(header, out, align="lrrrrrrlr")


def _class_names(runs: list[Run], k: int) -> list[str]:
    if k == len(VOC_CLASSES):
        return list(VOC_CLASSES)
    for run in runs:
        root = run.config().get("data", {}).get("root")
        meta = read_json(Path(root) / "meta.json") if isinstance(root, str) else None
        names = meta.get("class_names") if isinstance(meta, dict) else None
        if isinstance(names, list) and len(names) == k:
            return ["bkg" if i == 0 else str(x) for i, x in enumerate(names)]
    if any(run.summary.get("preset") == "synthetic" for run in runs):
        from aakit.data.synth import CLASSES  # the benchmark's own list: no data needed (fresh clone)

        if 2 <= k - 1 <= len(CLASSES):
            return ["bkg"] + [c.name for c in CLASSES[: k - 1]]
    return ["bkg"] + [f"class{i}" for i in range(1, k)]


def _table5(pub: pd.DataFrame, points: list[Point], runs: dict[str, list[Run]], preset: str) -> tuple[list[dict[str, Any]], list[Block], list[str]]:
    gathered = gather(points, runs, 5)
    paper_rows = published_rows(pub, 5)
    voc_cols = list(VOC_CLASSES) + ["mIoU"]
    cells: list[dict[str, Any]] = []
    notes: list[str] = []
    # paper-only rows
    for row in paper_rows:
        if row in gathered:
            continue
        for col in voc_cols:
            paper, pprot = _paper(pub, 5, row, col)
            cells.append(_cell(5, row, col, [], [], 0, paper, pprot))
    ours_blocks: list[tuple[str, list[str], dict[str, dict[str, Any]]]] = []
    for row, g in gathered.items():
        runs_ = [r for r, _ in g.runs]
        ks = {len((_block(r, m) or {}).get("iou") or []) for r, m in g.runs}
        k = max(ks) if ks else 0
        names = _class_names(runs_, k) if k else []
        by_col: dict[str, dict[str, Any]] = {}
        for i, name in enumerate(names + ["mIoU"]):
            values, prot = [], []
            for run, metric in g.runs:
                b = _block(run, metric) or {}
                if name == "mIoU":
                    values.append(_miou(run, metric))
                else:
                    iou = b.get("iou") or []
                    v = iou[i] if i < len(iou) else None
                    values.append(100.0 * float(v) if isinstance(v, (int, float)) else None)
                if b:
                    prot.append(protocol_of(b))
            paper, pprot = _paper(pub, 5, row, name)
            c = _cell(5, row, name, values, prot, g.expected, paper, pprot)
            cells.append(c)
            by_col[name] = c
        if not g.runs:  # nothing ran: the paper's row alone, our cells missing
            for col in voc_cols:
                paper, pprot = _paper(pub, 5, row, col)
                by_col[col] = _cell(5, row, col, [], [], g.expected, paper, pprot)
                cells.append(by_col[col])
            names = list(VOC_CLASSES)
        ours_blocks.append((row, names, by_col))

    def paper_line(row: str) -> list[str]:
        return [f"{row} (paper)"] + [_num(_paper(pub, 5, row, c)[0]) for c in voc_cols]

    rows = [paper_line(r) for r in paper_rows]
    blocks: list[Block] = []
    extra: list[Block] = []
    for row, names, by_col in ours_blocks:
        n_runs = max((c["n_runs"] for c in by_col.values()), default=0)
        if names == list(VOC_CLASSES):
            rows.append([f"{row} (aakit)"] + [_num(by_col[c]["ours_mean"]) if by_col[c]["n_runs"] else MISSING
                                              for c in voc_cols])
            if n_runs >= 2:
                rows.append(["± std (seeds)"] + [_num(by_col[c]["ours_std"]) for c in voc_cols])
            if any(by_col[c]["diff"] is not None for c in voc_cols):
                rows.append([f"Δ vs {row} (paper)"] + [_diff(by_col[c]["diff"]) for c in voc_cols])
        else:
            m = by_col["mIoU"]
            rows.append([f"{row} (aakit)"] + ["n/a"] * len(VOC_CLASSES) + [_ours(m["ours_mean"], m["ours_std"], m["n_runs"])])
            if m["diff"] is not None:
                rows.append([f"Δ vs {row} (paper)"] + [""] * len(VOC_CLASSES) + [_diff(m["diff"])])
            hdr = ["Method"] + names + ["mIoU"]
            line = [f"{row} (aakit)"] + [_num(by_col[c]["ours_mean"]) for c in names + ["mIoU"]]
            block_rows = [line]
            if n_runs >= 2:
                block_rows.append(["± std (seeds)"] + [_num(by_col[c]["ours_std"]) for c in names + ["mIoU"]])
            extra.append(Block(hdr, block_rows, f"aakit per-class IoU on the {preset} classes"))
            notes.append(f"our {preset} runs have {len(names)} classes, not VOC's 21: per-class values are in "
                         "the second part; only mIoU is compared")
    protos = sorted({c["protocol"] for c in cells if c["n_runs"]} - {""})
    blocks.append(Block(["Method"] + voc_cols, rows))
    blocks += extra
    if protos:
        notes.append(f"our protocol: {'/'.join(protos)}")
    return cells, blocks, notes


def _table6(pub: pd.DataFrame, points: list[Point], runs: dict[str, list[Run]], preset: str) -> tuple[list[dict[str, Any]], Block]:
    gathered = gather(points, runs, 6)
    sub = pub[pub["table"] == 6]
    cells: list[dict[str, Any]] = []
    header = ["Method", "Stage", "Backbone", "Superv.", "val", "test", "protocol", "runs"]
    rows: list[list[str]] = []
    for row in published_rows(pub, 6):
        info = sub[sub["row"] == row].iloc[0]
        vals = []
        for col in ("val", "test"):
            paper, pprot = _paper(pub, 6, row, col)
            vals.append(_num(paper))
            if row not in gathered:
                cells.append(_cell(6, row, col, [], [], 0, paper, pprot))
        cite = re.match(r"\[\d+\]", str(info["note"]))
        ref = f" {cite.group(0)}" if cite else ""
        rows.append([f"{row}{ref}", str(info["stage"]), str(info["backbone"]), str(info["supervision"]), *vals, "", ""])
    for row, g in gathered.items():
        line_vals, diffs, protos = [], [], set()
        for col in ("val", "test"):
            values = []
            for run, metric in g.runs:
                key = metric if col == "val" else test_key(metric)
                values.append(_miou(run, key))
                b = _block(run, key)
                if b is not None:
                    protos.add(protocol_of(b))
            paper, pprot = _paper(pub, 6, row, col)
            c = _cell(6, row, col, values, protos, g.expected, paper, pprot)
            cells.append(c)
            line_vals.append(_ours(c["ours_mean"], c["ours_std"], c["n_runs"]))
            diffs.append(_diff(c["diff"]))
        cfg = g.runs[0][0].config() if g.runs else {}
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
    points: list[Point] | None = None,
    runs: dict[str, list[Run]] | None = None,
) -> ReportTable:
    """Build one of the paper's tables from the stored runs.

    Args:
        number: 1..6.
        results: the results root (runs/, grids/).
        preset: ``synthetic`` or ``voc``: whose grids fill the table.
        grids_dir: where grid YAMLs are (default ``experiments/grids``).
        published: the published numbers (default: :func:`load_published`).
        points, runs: already collected inputs (to build several tables at once).
    """
    if number not in TITLES:
        raise ReportError(f"--table {number}: the paper has Tables 1-6")
    if preset not in PRESETS:
        raise ReportError(f"--preset {preset!r}: should be voc or synthetic")
    pub = load_published(results=results) if published is None else published
    notes: list[str] = []
    if points is None:
        points, notes = collect_points(results, preset, grids_dir)
    runs = index_runs(results) if runs is None else runs
    if number <= 4:
        cells, block = _ablation(number, pub, points, runs)
        blocks = [block]
    elif number == 5:
        cells, blocks, more = _table5(pub, points, runs, preset)
        notes = notes + more
    else:
        cells, block = _table6(pub, points, runs, preset)
        blocks = [block]
    long = pd.DataFrame(cells, columns=LONG_COLUMNS)
    notes = [
        f"mIoU in %; ours = mean ± std (n-1) over seeds of the {preset} runs; '{MISSING}' = no finished run; "
        f"'{NO_PAPER}' = no published number; Δ = ours − paper",
        *notes,
    ]
    return ReportTable(number, TITLES[number], preset, long, blocks, notes,
                       dropped=dropped_lines(points, runs, number))


def build_report(
    tables: Sequence[int] | None = None,
    *,
    results: Path = Path("results"),
    preset: str = "synthetic",
    grids_dir: Path | None = None,
    points: list[Point] | None = None,
    runs: dict[str, list[Run]] | None = None,
    notes: list[str] | None = None,
) -> list[ReportTable]:
    """Tables 1-6 (or the given ones), sharing one scan of the runs and grids (or the given one)."""
    if preset not in PRESETS:
        raise ReportError(f"--preset {preset!r}: should be voc or synthetic")
    pub = load_published(results=results)
    if points is None:
        points, notes = collect_points(results, preset, grids_dir)
    notes = notes or []
    runs = index_runs(results) if runs is None else runs
    out = []
    for n in tables or range(1, 7):
        t = build_table(n, results=results, preset=preset, published=pub, points=points, runs=runs)
        t.notes += notes
        out.append(t)
    return out


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
            df[c] = df[c].map(lambda v: "" if _none(v) is None else f"{v:.2f}")
    return df.to_csv(index=False, lineterminator="\n")


def rich_tables(t: ReportTable) -> list[Any]:
    """The table as rich renderables (for printing in colour)."""
    from rich.table import Table
    from rich.text import Text

    out = []
    for i, b in enumerate(t.blocks):
        title = f"{t.name}. {t.title} ({t.preset})" if i == 0 else b.caption
        table = Table(title=title, show_lines=False, title_justify="left")
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


def check_request(*, table: int | None, fmt: str, out: Path | None, preset: str, into: Path | None) -> None:
    """Refuse a report request that cannot be served, before anything is read or written."""
    if fmt not in FORMATS:
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


def left_out(runs: dict[str, list[Run]], tables: Sequence[ReportTable]) -> list[str]:
    """Every run left out of ``tables`` and why, once; then corrupt runs that no table named."""
    lines = list(dict.fromkeys(line for t in tables for line in t.dropped))
    named = set(re.split(r"[\s,:;]+", " ".join(lines)))  # run directory names hold none of these
    for s in getattr(runs, "skipped", []):
        if s.corrupt and s.path.name not in named:
            lines.append(f"run {s.path.name}: {s.reason}")
    return lines


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


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
) -> None:
    """What ``aakit report`` does (the CLI's thin wrapper calls this).

    The report goes to ``echo`` (or to files); the runs it left out, and why, to ``warn``
    (stderr), so that a document or a CSV made from ``echo`` stays as it was. A results
    directory without any run is refused (:class:`ReportError`) before anything is written.
    """
    check_request(table=table, fmt=fmt, out=out, preset=preset, into=into)
    runs = index_runs(results)
    if not runs.seen:
        raise no_runs_error(results)
    from aakit.experiment.claims import claims_table
    from aakit.experiment.costs import costs_table

    points, notes = collect_points(results, preset, grids_dir)  # one scan for every table
    if claims:  # the claims only
        extras, tables = [claims_table(results, preset, points=points, runs=runs)], []
    else:  # all tables: the claims and the grid costs come after them (CSV: in files of their own)
        tables = build_report([table] if table else None, results=results, preset=preset,
                              points=points, runs=runs, notes=notes)
        extras = [] if table else [claims_table(results, preset, points=points, runs=runs),
                                   costs_table(results, preset, points=points, runs=runs)]
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
    if figures:
        from aakit.experiment.figures import make_figures

        fig_dir = (Path(out) if out is not None else Path(results)) / "figures"
        for p in make_figures(results, fig_dir, preset=preset, grids_dir=grids_dir):
            echo(f"wrote {p}")
    dropped = left_out(runs, [*tables, *extras])
    if dropped:
        warn("aakit report: runs left out, and why:")
        for line in dropped:
            warn(f"  {line}")
