"""``aakit report --figures``: PNG figures drawn with matplotlib from the stored runs.

* ``curves/<run>.png`` — training curves of each run: every loss term over the steps, and the
  per-epoch val mIoU and pseudo-label mIoU (drawn again only when the run changed since);
* ``figure3_pseudo_miou.png`` — the paper's Figure 3 as a curve: quality (mIoU against the
  ground truth) of the online pseudo labels over the epochs, baseline (Table 1 "CLS+CE") vs the
  full method ("CLS+CE+AA+LR"), mean and spread over seeds; from the rows "F3 CLS+CE" and
  "F3 CLS+CE+AA+LR" of a grid of its own where one ran (evaluated after every epoch, when the
  table grids evaluate after the last one only);
* ``claims_forest.png`` — each comparison of the paper's claims: our paired difference with its
  95 % interval, coloured by its verdict, beside the paper's difference; and
  ``grid_<name>_forest.png`` the same for the comparisons a grid of the suite declares
  (``compare:``: a pilot, a question of ours);
* ``table4_gamma.png`` — val mIoU against gamma, ours (mean ± std) beside the paper's, and each
  gamma's paired difference from gamma = 2 with its 95 % interval beside the paper's difference;
* ``figure5_qualitative.png`` — the paper's Figure 5: per example image, (a) the image, (b) the
  initial (online pseudo) labels and (c) the prediction of the baseline CLS+CE, (d) + SA and
  (e) + AA predictions, (f) the ground truth — from the PNGs every finished run keeps under
  ``examples/pred`` and ``examples/pseudo``.

Figures are drawn on matplotlib's Agg canvas directly, so nothing changes the user's backend.
Figures 6-7 need predictions of other models and Figure 8 needs the embeddings; they are not
drawn here.
"""
from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from aakit import yamlio
from aakit.errors import AakitError
from aakit.experiment.claims import evaluate_claims
from aakit.experiment.comparisons import comparison_grids, evaluate_comparisons
from aakit.experiment.results import ResultsIndex, RowRuns, load_results
from aakit.experiment.tables import mean_std
from aakit.labels import IGNORE_INDEX
from aakit.files import atomic_write_bytes, atomic_write_text, read_json
from aakit.runs import iter_run_dirs, load_run, read_metrics


def _new_figure(width: float = 9.0, height: float = 3.6) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path, *, tight: bool = True) -> Path:
    """PNG bytes of ``fig`` written atomically; ``tight=False`` keeps the figure's exact size."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight" if tight else None)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _newer_than_run(png: Path, run: Path) -> bool:
    """Whether ``png`` exists and is newer than every file its run's curves are drawn from
    (metrics, status, summary): a second ``--figures`` into the same place redraws only those."""
    try:
        drawn = png.stat().st_mtime
    except OSError:
        return False
    sources = [run / n for n in ("metrics.jsonl", "status.json", "summary.json")]
    return all(drawn > f.stat().st_mtime for f in sources if f.exists())


def training_curves(run_records: list[dict[str, Any]], title: str) -> Any:
    """Losses over steps (left) and per-epoch mIoU / pseudo-label mIoU (right) of one run."""
    fig = _new_figure()
    ax_loss, ax_miou = fig.subplots(1, 2)
    steps = [r for r in run_records if r.get("kind") == "step"]
    keys = sorted({k for r in steps for k in (r.get("losses") or {})})
    for k in keys:
        xs = [r.get("step", i) for i, r in enumerate(steps) if k in (r.get("losses") or {})]
        ys = [r["losses"][k] for r in steps if k in (r.get("losses") or {})]
        ax_loss.plot(xs, ys, label=k, linewidth=1)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("losses")
    if keys:
        ax_loss.legend(fontsize=8)
    epochs = [r for r in run_records if r.get("kind") == "epoch"]
    for key, label in (("miou", "val mIoU"), ("pseudo_miou", "pseudo-label mIoU")):
        pts = [(r["epoch"], 100 * r[key]) for r in epochs if isinstance(r.get(key), (int, float))]
        if pts:
            ax_miou.plot(*zip(*pts), marker="o", label=label)
    ax_miou.set_xlabel("epoch")
    ax_miou.set_ylabel("mIoU (%)")
    ax_miou.set_title("quality per epoch")
    if epochs:
        ax_miou.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def _per_epoch(records: list[dict[str, Any]], key: str) -> dict[int, float]:
    return {int(r["epoch"]): 100 * float(r[key]) for r in records
            if r.get("kind") == "epoch" and isinstance(r.get(key), (int, float))}


def figure3(curves: dict[str, list[dict[int, float]]]) -> Any:
    """Pseudo-label mIoU over epochs per method: mean line, min-max band over seeds."""
    fig = _new_figure(6.0, 3.8)
    ax = fig.subplots()
    for label, per_seed in curves.items():
        epochs = sorted({e for c in per_seed for e in c})
        mean = [sum(c[e] for c in per_seed if e in c) / sum(e in c for c in per_seed) for e in epochs]
        lo = [min(c[e] for c in per_seed if e in c) for e in epochs]
        hi = [max(c[e] for c in per_seed if e in c) for e in epochs]
        ax.plot(epochs, mean, marker="o", label=f"{label} ({len(per_seed)} run{'s' if len(per_seed) > 1 else ''})")
        if len(per_seed) > 1:
            ax.fill_between(epochs, lo, hi, alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("pseudo-label mIoU (%)")
    ax.set_title("Pseudo-label quality over training (paper's Figure 3)")
    ax.legend(fontsize=8)
    return fig


# Figure 3's runs: rows of a grid of its own (table 0, evaluated after every epoch; e.g.
# experiments/grids/v2/figure3.yaml) where one ran, else Table 1's rows.
FIGURE3_ROWS = ((0, "F3 CLS+CE", "baseline CLS+CE"), (0, "F3 CLS+CE+AA+LR", "ours CLS+CE+AA+LR"))
FIGURE3_TABLE1_ROWS = ((1, "CLS+CE", "baseline CLS+CE"), (1, "CLS+CE+AA+LR", "ours CLS+CE+AA+LR"))


def _records_on_disk(run: Path) -> list[dict[str, Any]]:
    return read_metrics(run / "metrics.jsonl")[0]


def figure3_curves(index: ResultsIndex, records: dict[str, list[dict[str, Any]]] | None = None
                   ) -> dict[str, list[dict[int, float]]]:
    """Label -> per-seed {epoch: pseudo-label mIoU in %}, from :data:`FIGURE3_ROWS` if any of
    them has a finished run, else from Table 1 (whose runs may be evaluated after the last epoch only).

    ``records``: run directory name -> its metrics records; default: read from disk, only
    for the runs of those rows."""
    def records_of(run: Path) -> list[dict[str, Any]]:
        return _records_on_disk(run) if records is None else records.get(run.name, [])

    for rows in (FIGURE3_ROWS, FIGURE3_TABLE1_ROWS):
        curves: dict[str, list[dict[int, float]]] = {}
        for table, row, label in rows:
            gathered = index.rows(table).get(row)
            per_seed = [_per_epoch(records_of(run.path), "pseudo_miou")
                        for run, _ in (gathered.runs if gathered else [])]
            if any(per_seed):
                curves[label] = [c for c in per_seed if c]
        if curves:
            return curves
    return {}


# ----------------------------------------------------------------------------- Figure 5
FIGURE5_FILE = "figure5_qualitative.png"
FIGURE5_TITLES = ("(a) image", "(b) initial labels", "(c) CLS+CE", "(d) + SA", "(e) + AA", "(f) ground truth")
# Whose runs fill the columns: (table, row) of the report; (b) and (c) come from the same run.
FIGURE5_SOURCES = {"baseline": (1, "CLS+CE"), "sa": (2, "SA 4-8-12-24"), "aa": (2, "AA 4-8-12-24")}
IGNORE_GREY = (211, 211, 211)  # label 255 (ignored / boundary) is drawn light grey
CELL_IN = 1.6  # width of one panel, inches (at 100 dpi: 160 px)
PAD_IN = 0.05  # gap between panels
LEFT_IN, TOP_IN, RIGHT_IN = 0.3, 0.35, 0.05  # room for the image ids and the column titles
CAPTION_LINE_IN, CAPTION_FONT = 0.15, 7.0


def pick_run(gathered: RowRuns | None) -> Path | None:
    """The run directory that stands for a table row: seed 0 if it ran, else the first finished run."""
    if gathered is None or not gathered.runs:
        return None
    for run, _ in gathered.runs:
        if run.summary.get("seed") == 0:
            return run.path
    return gathered.runs[0][0].path


def figure5_runs(index: ResultsIndex) -> dict[str, Path | None]:
    """The run directory of each source of :data:`FIGURE5_SOURCES` (None where none finished)."""
    tables = {t: index.rows(t) for t in {t for t, _ in FIGURE5_SOURCES.values()}}
    return {key: pick_run(tables[t].get(row)) for key, (t, row) in FIGURE5_SOURCES.items()}


def _example_ids(run: Path | None, kind: str) -> set[str]:
    """Ids of the ``examples/<kind>/<id>.png`` a run kept (``pred`` or ``pseudo``)."""
    folder = run / "examples" / kind if run is not None else None
    return {p.stem for p in folder.glob("*.png")} if folder is not None and folder.is_dir() else set()


def _data_of(run: Path) -> tuple[str | None, str]:
    """(``data.root``, ``data.val_split``) of a run's config.yaml; root None if unreadable."""
    try:
        cfg = yamlio.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None, "val"
    data = cfg.get("data") if isinstance(cfg, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("root"), str):
        return None, "val"
    return data["root"], str(data.get("val_split") or "val")


def _colour_table(root: str | None) -> np.ndarray:
    """(256, 3) uint8: the data set's palette (VOC's if unreadable), 255 in light grey."""
    from aakit.data.voc import full_palette, load_info, voc_info

    try:
        info = load_info(root) if root is not None else voc_info()
    except AakitError:
        info = voc_info()
    lut = full_palette(info.palette).copy()
    lut[IGNORE_INDEX] = IGNORE_GREY
    return lut


def _mask_panel(path: Path, lut: np.ndarray, size: tuple[int, int] | None) -> np.ndarray | None:
    """A label PNG as RGB, resized (nearest) to ``size`` = (H, W) if given; None if unreadable."""
    from PIL import Image

    from aakit.data.voc import read_mask

    try:
        mask = read_mask(path)
    except AakitError:
        return None
    if size is not None and mask.shape != size:  # e.g. pseudo labels at the network's resolution
        mask = np.array(Image.fromarray(mask).resize((size[1], size[0]), Image.NEAREST))
    return lut[mask]


def _panels(image_id: str, root: str | None, sources: list[tuple[Path | None, str]],
            lut: np.ndarray) -> list[np.ndarray | None]:
    """The six panels of one row; None marks a missing one."""
    from aakit.data.voc import find_mask, load_image, mask_dirs_for_split

    image = gt = None
    if root is not None:
        try:
            image = load_image(root, image_id)
        except AakitError:
            pass
        try:
            gt_path = find_mask(root, image_id, mask_dirs_for_split("val"))
            gt = _mask_panel(gt_path, lut, image.shape[:2] if image is not None else None)
        except AakitError:
            pass
    size = image.shape[:2] if image is not None else gt.shape[:2] if gt is not None else None
    masks = [_mask_panel(run / "examples" / kind / f"{image_id}.png", lut, size) if run is not None else None
             for run, kind in sources]
    return [image, *masks, gt]


def _ordered(ids: set[str], root: str | None, split: str) -> list[str]:
    """``ids`` in the order of the val split (the order the runs saved them), else sorted."""
    from aakit.data.voc import read_split

    try:
        order = read_split(root, split) if root is not None else []
    except AakitError:
        order = []
    rank = {image_id: i for i, image_id in enumerate(order)}
    return sorted(ids, key=lambda i: (rank.get(i, len(rank)), i))


def figure5(
    baseline: Path | None,
    sa: Path | None,
    aa: Path | None,
    *,
    max_rows: int = 6,
    data: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> Any | None:
    """The paper's Figure 5 from three run directories; None when there is nothing to draw.

    Rows are the example ids that every available column has (up to ``max_rows``); a column
    whose run is missing (or kept no examples) is drawn with a "missing" label. Image and
    ground truth come from ``data`` if given, else from the data set of the first available run
    (its ``data.root``); where they are not found, ``warn`` gets one line saying where it looked.

    Args:
        baseline: the Table 1 "CLS+CE" run: its pseudo labels (b) and predictions (c).
        sa: the Table 2 "SA 4-8-12-24" run (d).
        aa: the Table 2 "AA 4-8-12-24" run (e).
        max_rows: at most this many example images.
        data: the data set's root (``aakit report --figures --data PATH``).
        warn: called with one line when image or ground-truth panels are drawn as missing.
    """
    sources: list[tuple[Path | None, str]] = [(baseline, "pseudo"), (baseline, "pred"), (sa, "pred"), (aa, "pred")]
    id_sets = [_example_ids(run, kind) for run, kind in sources]
    available = [ids for ids in id_sets if ids]
    if not available:
        return None
    ids = set.intersection(*available)
    if not ids:
        return None
    sources = [(run, kind) if id_sets[i] else (None, kind) for i, (run, kind) in enumerate(sources)]
    first = next(run for run, _ in sources if run is not None)
    root, split = _data_of(first)
    root = str(data) if data is not None else root
    lut = _colour_table(root)
    rows = [(i, _panels(i, root, sources, lut)) for i in _ordered(ids, root, split)[:max_rows]]
    if warn is not None:
        _warn_missing_images(rows, root, first, data is not None, warn)

    # exact layout (figure inches): panels keep the aspect ratio of the first image
    shapes = [p.shape for _, panels in rows for p in panels if p is not None]
    aspect = min(max(shapes[0][0] / shapes[0][1], 0.4), 2.5) if shapes else 0.75
    cell_w, cell_h, n_cols = CELL_IN, CELL_IN * aspect, len(FIGURE5_TITLES)
    width = LEFT_IN + n_cols * cell_w + (n_cols - 1) * PAD_IN + RIGHT_IN
    caption = _figure5_caption(baseline, sa, aa, root, id_sets)
    lines = textwrap.wrap(caption, width=int(width / (0.55 * CAPTION_FONT / 72)))
    bottom = 0.05 + CAPTION_LINE_IN * len(lines)
    height = TOP_IN + len(rows) * cell_h + (len(rows) - 1) * PAD_IN + bottom
    fig = _new_figure(width, height)
    for r, (image_id, panels) in enumerate(rows):
        y = height - TOP_IN - (r + 1) * cell_h - r * PAD_IN
        for c, panel in enumerate(panels):
            x = LEFT_IN + c * (cell_w + PAD_IN)
            ax = fig.add_axes((x / width, y / height, cell_w / width, cell_h / height))
            ax.set_xticks([])
            ax.set_yticks([])
            if panel is None:
                ax.text(0.5, 0.5, "missing", ha="center", va="center", color="#b00000", fontsize=9,
                        transform=ax.transAxes)
                for spine in ax.spines.values():
                    spine.set_color("#cccccc")
            else:
                ax.imshow(panel, interpolation="nearest")
                ax.axis("off")
            if r == 0:
                ax.set_title(FIGURE5_TITLES[c], fontsize=8)
            if c == 0:
                fig.text((LEFT_IN - 0.08) / width, (y + cell_h / 2) / height, image_id, rotation=90,
                         ha="center", va="center", fontsize=6)
    fig.text(0.01, (bottom - 0.03) / height, "\n".join(lines), ha="left", va="top", fontsize=CAPTION_FONT,
             linespacing=1.2)
    return fig


def _warn_missing_images(rows: list[tuple[str, list[np.ndarray | None]]], root: str | None, run: Path,
                         given: bool, warn: Callable[[str], None]) -> None:
    """One line when (a) the image or (f) the ground truth of some row is drawn as missing."""
    lost = sum(1 for _, panels in rows if panels[0] is None or panels[-1] is None)
    if not lost:
        return
    where = (f"--data {root}" if given else f"{root} (data.root of {run.name})" if root is not None
             else f"no data.root in {run.name}/config.yaml")
    warn(f"aakit report: warning: Figure 5 draws the image or ground truth of {lost} of {len(rows)} examples as "
         f"missing: not found in {where}; give the data set with --data PATH")


def _figure5_caption(baseline: Path | None, sa: Path | None, aa: Path | None, root: str | None,
                     id_sets: list[set[str]]) -> str:
    """One line naming each column's source: run directories, and the data set for (a), (f)."""

    def name(run: Path | None, ids: set[str]) -> str:
        return "missing" if run is None else run.name if ids else f"{run.name} (no examples)"

    data = Path(root).name if root is not None else "missing"
    return (f"Figure 5. (a), (f): data set {data}; (b) {name(baseline, id_sets[0])} (pseudo labels); "
            f"(c) {name(baseline, id_sets[1])}; (d) {name(sa, id_sets[2])}; (e) {name(aa, id_sets[3])}")


def _gamma(row: str) -> float | None:
    try:
        return float(row.split("=", 1)[1])
    except (IndexError, ValueError):
        return None


def table4_gamma(index: ResultsIndex, results: Path, *, label: str = "aakit", reference: float = 2.0) -> Any:
    """Table 4 as two panels: val mIoU against gamma (ours: mean ± std over seeds; the paper's VOC
    numbers on their own axis), and each gamma's paired difference from gamma = ``reference``
    (ours: mean and 95 % interval over the seeds both ran; the paper's: the difference of its
    numbers). ``None`` when no Table 4 row has a finished run."""
    from aakit.experiment.claims import compare, per_seed
    from aakit.experiment.published import load_published, published_value

    rows = {g: row for row in index.rows(4) if (g := _gamma(row)) is not None}
    values = per_seed(results, "", index=index)
    seeded = {g: v for g, row in rows.items() if (v := values.get((4, row)))}
    if not seeded:
        return None
    pub = load_published(results=results)
    paper = {g: v for g, row in rows.items() if (v := published_value(pub, 4, row, "val")) is not None}
    fig = _new_figure(11.0, 3.8)
    left, right = fig.subplots(1, 2, gridspec_kw={"wspace": 0.5})  # room for the paper's axis between them
    xs = sorted(seeded)
    stats = [mean_std([v[0] for v in seeded[g].values()]) for g in xs]
    left.errorbar(xs, [m for m, _ in stats], yerr=[s or 0.0 for _, s in stats], marker="o", capsize=3, label=label)
    left.set_xlabel("gamma")
    left.set_ylabel("val mIoU (%), ours")
    if paper:
        twin = left.twinx()
        twin.plot(sorted(paper), [paper[g] for g in sorted(paper)], marker="s", linestyle="--", color="tab:orange",
                  label="paper (VOC)")
        twin.set_ylabel("val mIoU (%), paper (VOC)")
        twin.legend(fontsize=8, loc="lower right")
    left.legend(fontsize=8, loc="lower left")
    left.set_title("Table 4: val mIoU against gamma")
    base = seeded.get(reference, {})
    for g in (g for g in xs if g != reference):
        c = compare(seeded[g], base)  # the paired difference the claims table reports
        if c["paired"]:
            mean, low, high = c["paired_mean"], c["ci_low"], c["ci_high"]
            right.errorbar([g], [mean], yerr=None if low is None else [[mean - low], [high - mean]], marker="o",
                           capsize=3, color="tab:blue", label=f"ours, paired 95 % CI (n={c['paired']})")
    if reference in paper:
        right.plot(sorted(paper), [paper[g] - paper[reference] for g in sorted(paper)], marker="s",
                   linestyle="--", color="tab:orange", label="paper (VOC)")
    right.axhline(0.0, color="grey", linewidth=0.8)
    right.set_xlabel("gamma")
    right.set_ylabel(f"mIoU − mIoU at gamma = {reference:g} (points)")
    right.set_title(f"difference from gamma = {reference:g}, same seed")
    handles, labels = right.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    right.legend(unique.values(), unique.keys(), fontsize=8)
    return fig


# ----------------------------------------------------------------------------- the claims at a glance
CLAIMS_FILE = "claims_forest.png"
OUTCOME_COLOURS = {"supported": "tab:green", "opposite": "tab:red", "smaller than the paper's": "tab:purple",
                   "inconclusive": "tab:grey", "not engaged here": "tab:olive"}


def _forest(shown: pd.DataFrame, labels: list[str], paper_col: str, title: str) -> Any:
    """One line per row of ``shown`` (columns of :func:`aakit.experiment.claims.compare`): the
    paired mean with its 95 % interval, coloured by its verdict, and ``paper_col`` as an open
    square; ``labels`` name the lines, the first on top."""
    fig = _new_figure(9.0, 0.9 + 0.32 * len(shown))
    ax = fig.subplots()
    ys = list(range(len(shown)))[::-1]
    for y, r in zip(ys, shown.to_dict("records")):
        colour = OUTCOME_COLOURS.get(str(r["outcome"]), "black")
        ax.errorbar([r["paired_mean"]], [y], xerr=[[r["paired_mean"] - r["ci_low"]], [r["ci_high"] - r["paired_mean"]]],
                    marker="o", capsize=3, color=colour, label=f"ours: {r['outcome']}")
        paper = r.get(paper_col)
        if paper is not None and not pd.isna(paper):
            ax.plot([paper], [y], marker="s", markersize=7, markerfacecolor="none", linestyle="none",
                    color="tab:orange", label="paper (VOC)")
    ax.set_yticks(ys, labels, fontsize=8)
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("val mIoU difference, claimed winner − other (points); ours: mean and 95 % CI over paired seeds")
    ax.set_title(title, fontsize=10)
    handles, legend = ax.get_legend_handles_labels()
    unique = dict(zip(legend, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="best")
    return fig


def claims_forest(claims: pd.DataFrame) -> Any:
    """Every comparison of the paper's claims (rows of :func:`aakit.experiment.claims.evaluate_claims`)
    as one line: our per-seed paired difference with its 95 % interval, coloured by its verdict,
    and the paper's difference beside it. ``None`` when no comparison has two paired seeds."""
    shown = claims[claims["paired"] >= 2].reset_index(drop=True)
    if shown.empty:
        return None
    labels = [f"T{r.table}: {r.winner} vs {r.other} (n={r.paired})" for r in shown.itertuples(index=False)]
    return _forest(shown, labels, "paper_diff", "The paper's claims: paired differences")


def comparisons_forest(comparisons: pd.DataFrame, title: str) -> Any:
    """As :func:`claims_forest`, the comparisons a grid file declares (rows of
    :func:`aakit.experiment.comparisons.evaluate_comparisons`; their ``paper_effect`` as the open
    square). ``None`` when none has two paired seeds."""
    shown = comparisons[comparisons["paired"] >= 2].reset_index(drop=True)
    if shown.empty:
        return None
    labels = [f"{r.text} (n={r.paired})" for r in shown.itertuples(index=False)]
    return _forest(shown, labels, "paper_effect", "\n".join(textwrap.wrap(title, 100)))


def make_figures(
    results: Path,
    out: Path,
    *,
    preset: str | None = None,
    grids_dir: Path | None = None,
    index: ResultsIndex | None = None,
    data: Path | None = None,
    warn: Callable[[str], None] | None = None,
    suite: str | None = None,
) -> list[Path]:
    """Write every figure that the stored runs allow; returns the files written.

    ``index``: the runs and grid points of ``preset`` already read (default: read them here);
    ``data`` and ``warn``: Figure 5's image panels (:func:`figure5`); ``suite``: whose grids'
    own comparisons (``compare:``) are drawn, one ``grid_<name>_forest.png`` each.
    """
    results, out = Path(results), Path(out)
    written: list[Path] = []
    runs = [load_run(p, with_records=False) for p in iter_run_dirs(results)]
    for r in runs:
        if preset is not None and r.config.get("preset") != preset:
            continue
        png = out / "curves" / f"{r.name}.png"
        if _newer_than_run(png, r.path):  # drawn after the run last changed: kept as it is
            written.append(png)
            continue
        records = _records_on_disk(r.path)  # read only for the curves that are redrawn
        if any(rec.get("kind") in ("step", "epoch") for rec in records):
            written.append(_save(training_curves(records, f"{r.name} ({r.status})"), png))

    index = load_results(results, preset, grids_dir) if index is None else index
    curves = figure3_curves(index)
    if curves:
        written.append(_save(figure3(curves), out / "figure3_pseudo_miou.png"))

    fig4 = table4_gamma(index, results, label=f"aakit ({preset})")
    if fig4 is not None:
        written.append(_save(fig4, out / "table4_gamma.png"))

    forest = claims_forest(evaluate_claims(results, preset or "synthetic", grids_dir, index=index))
    if forest is not None:
        written.append(_save(forest, out / CLAIMS_FILE))
    grids = comparison_grids(results, preset or "synthetic", suite)  # a pilot, a question of ours
    runs = load_results(results) if grids else None  # every run, read once for all of them
    for state, items in grids:
        df, _ = evaluate_comparisons(results, state.name, state=state, items=items, runs=runs)
        forest = comparisons_forest(df, state.description or f"Grid {state.name}: paired differences")
        if forest is not None:
            written.append(_save(forest, out / f"grid_{state.name}_forest.png"))

    fig5 = figure5(**figure5_runs(index), data=data, warn=warn)
    if fig5 is not None:
        written.append(_save(fig5, out / FIGURE5_FILE, tight=False))
    return written


def real_photos_figure(photos: Path, out: Path) -> list[Path]:
    """The contact sheet of ``aakit predict RUN IMAGES --out PHOTOS --cams`` as ``real_photos.jpg``
    and its numbers as ``real_photos.md`` (read from ``PHOTOS/predictions.json``; the photos are
    the user's: these files hold them and are not for committing)."""
    doc = read_json(Path(photos) / "predictions.json")
    if not doc or not (Path(photos) / "sheet.jpg").is_file():
        raise AakitError(f"--photos {photos}: no predictions.json and sheet.jpg (make them with aakit predict RUN IMAGES --out {photos} --cams)")
    out.mkdir(parents=True, exist_ok=True)
    sheet = out / "real_photos.jpg"
    atomic_write_bytes(sheet, (Path(photos) / "sheet.jpg").read_bytes())
    lines = [f"Real photos through {doc['run']} (columns: {', '.join(doc['columns'])}; size {doc['size'] or 'native'}).", "",
             "| image | labels (from) | prediction: shares over 2 % | object/background IoU |", "|---|---|---|---|"]
    for name, r in doc["images"].items():
        shares = ", ".join(f"{c} {100 * v:.0f} %" for c, v in sorted(r["prediction_share"].items(), key=lambda kv: -kv[1]) if v > 0.02)
        iou = f"{100 * r['miou_object_vs_background']:.1f} (object {100 * r['iou_object']:.1f})" if "iou_object" in r else "—"
        lines.append(f"| {name} | {', '.join(r['labels']) or '—'} ({r['labels_from']}) | {shares} | {iou} |")
    table = out / "real_photos.md"
    atomic_write_text(table, "\n".join(lines) + "\n")
    return [sheet, table]

