"""Figure 5 of ``aakit report --figures``: examples of three runs beside image and ground truth."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from experiment_fakes import write_run  # noqa: E402

from aakit.data.voc import save_mask_png  # noqa: E402
from aakit.experiment import figures as F  # noqa: E402
from aakit.experiment import grid as G  # noqa: E402

IDS = ["img_b", "img_a", "img_c"]  # val split order (not sorted on purpose)
H, W = 30, 40
# a data set with its own palette: class c is drawn PALETTE[c]
PALETTE = [[0, 0, 0], [250, 10, 10], [10, 250, 10], [10, 10, 250], [250, 250, 10], [250, 10, 250], [10, 250, 250]]
GT, PSEUDO, BASE, SA, AA, BASE_SEED1 = 1, 2, 3, 4, 5, 6  # the class each source paints
GREY = list(F.IGNORE_GREY)
GRIDS = {
    "t1.yaml": "name: f-t1\nbase: ../base.yaml\nseeds: [1, 0]\n"
               "rows:\n  - {table: 1, row: CLS+CE, set: {loss.affinity: none, loss.label_reassign: false}}\n",
    "t2.yaml": "name: f-t2\nbase: ../base.yaml\nseeds: [0]\nrows:\n"
               "  - {table: 2, row: SA 4-8-12-24, set: {loss.affinity: sa, loss.label_reassign: false}}\n"
               "  - {table: 2, row: AA 4-8-12-24, set: {loss.affinity: aa, loss.label_reassign: false}}\n",
}


def make_data(root: Path) -> None:
    """A tiny VOC-layout data set: meta.json (palette), val split, images, ground truth."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps({
        "num_classes": len(PALETTE), "class_names": [f"c{i}" for i in range(len(PALETTE))], "palette": PALETTE}))
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(IDS) + "\n")
    for i in IDS:
        Image.fromarray(np.full((H, W, 3), 128, np.uint8)).save(root / "JPEGImages" / f"{i}.jpg")
        save_mask_png(root / "SegmentationClass" / f"{i}.png", np.full((H, W), GT, np.uint8))


def add_examples(run: Path, ids: list[str], pred: int, pseudo: bool = False) -> None:
    """What training keeps: predictions (full size), pseudo labels (here half size, border 255)."""
    for i in ids:
        save_mask_png(run / "examples" / "pred" / f"{i}.png", np.full((H, W), pred, np.uint8))
        if pseudo:
            m = np.full((H // 2, W // 2), PSEUDO, np.uint8)
            m[:, :3] = 255
            save_mask_png(run / "examples" / "pseudo" / f"{i}.png", m)


def setup(tmp_path: Path) -> tuple[Path, Path, dict[str, Path]]:
    """Grids, finished fake runs of their points (with examples) and the data set they name."""
    make_data(tmp_path / "data")
    exp = tmp_path / "exp"
    (exp / "grids").mkdir(parents=True)
    (exp / "base.yaml").write_text(f"preset: synthetic\ntrain: {{epochs: 1}}\ndata: {{root: {tmp_path / 'data'}}}\n")
    for name, text in GRIDS.items():
        (exp / "grids" / name).write_text(text)
    results = tmp_path / "results"
    runs: dict[str, Path] = {}
    for name in GRIDS:
        for p in G.load_grid(exp / "grids" / name).points:
            runs[f"{p.row}/{p.seed}"] = write_run(results, p.config, p.run_name)
    add_examples(runs["CLS+CE/1"], IDS, BASE_SEED1, pseudo=True)
    add_examples(runs["CLS+CE/0"], IDS, BASE, pseudo=True)
    add_examples(runs["SA 4-8-12-24/0"], IDS, SA)
    add_examples(runs["AA 4-8-12-24/0"], IDS[:2], AA)  # kept fewer examples: rows = common ids
    return results, exp / "grids", runs


def colour_bands(png: np.ndarray, colour: list[int], axis: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges of rows (axis 0) or columns (axis 1) holding ``colour``."""
    has = (png[..., :3] == colour).all(-1).any(axis=1 - axis)
    idx = np.flatnonzero(has)
    if not len(idx):
        return []
    splits = np.flatnonzero(np.diff(idx) > 1) + 1
    return [(int(g[0]), int(g[-1]) + 1) for g in np.split(idx, splits)]


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.array(img.convert("RGB"))


def test_make_figures_draws_figure5_from_the_report_rows(tmp_path: Path) -> None:
    results, grids, runs = setup(tmp_path)
    out = tmp_path / "figures"
    written = F.make_figures(results, out, preset="synthetic", grids_dir=grids)
    path = out / F.FIGURE5_FILE
    assert path in written and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png = read_png(path)
    # one band of rows per example shared by all runs (AA kept only two), in the ground-truth column
    gt_rows = colour_bands(png, PALETTE[GT], axis=0)
    assert len(gt_rows) == 2
    # seed 0 stands for CLS+CE, not the first run listed (seed 1)
    assert colour_bands(png, PALETTE[BASE], axis=1) and not colour_bands(png, PALETTE[BASE_SEED1], axis=1)
    # columns left to right: (b) pseudo (255 light grey beside its class), (c) base, (d) SA, (e) AA, (f) GT
    mid = (gt_rows[0][0] + gt_rows[0][1]) // 2
    line = png[mid: mid + 1]
    starts = [colour_bands(line, PALETTE[c] if c != 255 else GREY, axis=1)[0][0]
              for c in (255, PSEUDO, BASE, SA, AA, GT)]
    assert starts == sorted(starts)
    # (a): the grey JPEG is left of everything, at the panel's full width
    image_cols = colour_bands(line, [128, 128, 128], axis=1)
    assert image_cols and image_cols[0][1] <= starts[0]
    assert abs((image_cols[0][1] - image_cols[0][0]) - 100 * F.CELL_IN) <= 2
    # panels keep the image's aspect ratio: H / W = 0.75
    assert abs((gt_rows[0][1] - gt_rows[0][0]) - 0.75 * 100 * F.CELL_IN) <= 2


def test_figure5_size_scales_with_rows_and_names_its_runs(tmp_path: Path) -> None:
    _, _, runs = setup(tmp_path)
    base, sa = runs["CLS+CE/0"], runs["SA 4-8-12-24/0"]
    sizes = {}
    for n in (1, 2, 3):
        fig = F.figure5(base, sa, None, max_rows=n)
        F._save(fig, tmp_path / f"f{n}.png", tight=False)
        sizes[n] = Image.open(tmp_path / f"f{n}.png").size
        assert len(colour_bands(read_png(tmp_path / f"f{n}.png"), PALETTE[GT], axis=0)) == n
    assert sizes[1][0] == sizes[2][0] == sizes[3][0]  # same width
    step = 100 * (F.CELL_IN * 0.75 + F.PAD_IN)  # one more row: one panel height and one gap
    assert abs((sizes[2][1] - sizes[1][1]) - step) <= 1 and abs((sizes[3][1] - sizes[2][1]) - step) <= 1
    # the caption names each column's run directory; a missing run says so
    fig = F.figure5(base, sa, None)
    caption = " ".join(t.get_text() for t in fig.texts)
    assert base.name in caption and sa.name in caption and "(e) missing" in caption
    # row labels are the image ids, in val split order
    assert [t.get_text() for t in fig.texts[:3]] == IDS


def test_figure5_missing_columns_do_not_fail(tmp_path: Path) -> None:
    _, _, runs = setup(tmp_path)
    aa = runs["AA 4-8-12-24/0"]
    # only the AA run: (b)-(d) missing, image and ground truth from its data set
    fig = F.figure5(None, None, aa)
    assert fig is not None
    F._save(fig, tmp_path / "only_aa.png", tight=False)
    png = read_png(tmp_path / "only_aa.png")
    assert len(colour_bands(png, PALETTE[AA], axis=0)) == 2 and not colour_bands(png, PALETTE[SA], axis=0)
    missing = [t for ax in fig.axes for t in ax.texts if t.get_text() == "missing"]
    assert len(missing) == 3 * 2  # three columns, two rows
    # a data set that moved away: image and ground truth missing, the examples still drawn
    for p in (tmp_path / "data" / "JPEGImages").iterdir():
        p.unlink()
    fig = F.figure5(runs["CLS+CE/0"], None, None, max_rows=1)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("missing") == 3  # (a) the image, (d) and (e); the ground truth is still there
    # nothing at all to draw
    assert F.figure5(None, None, None) is None
    (runs["SA 4-8-12-24/0"] / "examples").rename(runs["SA 4-8-12-24/0"] / "old")
    assert F.figure5(None, runs["SA 4-8-12-24/0"], None) is None


def test_make_figures_without_examples_writes_no_figure5(tmp_path: Path) -> None:
    results, grids, runs = setup(tmp_path)
    for run in runs.values():
        (run / "examples").rename(run / "no-examples")
    written = F.make_figures(results, tmp_path / "figures", preset="synthetic", grids_dir=grids)
    assert written and not (tmp_path / "figures" / F.FIGURE5_FILE).exists()


def test_figure3_reads_its_own_grid_where_one_ran_else_table1(tmp_path: Path) -> None:
    """Table grids that evaluate after the last epoch only give Figure 3 one point per run; a
    grid of its own (rows "F3 CLS+CE", "F3 CLS+CE+AA+LR", evaluated every epoch) replaces them."""
    from aakit.experiment.results import load_results
    from aakit.runs import list_runs

    (tmp_path / "base.yaml").write_text(
        f"preset: synthetic\nmodel: {{backbone: small, num_classes: 5}}\ntrain: {{epochs: 3}}\n"
        f"data: {{root: {tmp_path / 'synth'}}}\n")
    results = tmp_path / "results"
    rows = {"t1": ("CLS+CE", "CLS+CE+AA+LR"), "f3": ("F3 CLS+CE", "F3 CLS+CE+AA+LR")}
    for name, table, epochs in (("t1", 1, 1), ("f3", 0, 3)):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: {name}\nbase: base.yaml\npreset: synthetic\nseeds: [0, 1]\nset: {{train.epochs: {epochs}}}\nrows:\n"
            + "".join(f"  - {{table: {table}, row: {r}, set: {{loss.label_reassign: {str(i == 1).lower()}}}}}\n"
                      for i, r in enumerate(rows[name])))

    def run(name: str) -> dict:
        grid = G.load_grid(tmp_path / f"{name}.yaml")
        points = []
        for p in grid.points:
            write_run(results, p.config, p.run_name, val=0.5)
            points.append({"id": p.id, "table": p.table, "row": p.row, "params": p.params, "seed": p.seed,
                           "hash": p.hash, "metric": "val", "run": f"{p.run_name}-{p.hash}", "state": "done"})
        G.write_state(grid, results, points, "journal", f"grid-{name}")
        records = {r.path.name: r.records for r in list_runs(results)}
        return F.figure3_curves(load_results(results, "synthetic", tmp_path / "none"), records)

    t1 = run("t1")
    assert set(t1) == {"baseline CLS+CE", "ours CLS+CE+AA+LR"} and all(len(c) == 2 for c in t1.values())
    assert all(list(c) == [0] for curves in t1.values() for c in curves)  # one epoch each
    f3 = run("f3")
    assert all(len(c) == 2 and sorted(c[0]) == [0, 1, 2] for c in f3.values())
    assert f3["baseline CLS+CE"][0][2] == pytest.approx(34.0)


T4 = ("name: f-t4\nbase: ../base.yaml\nseeds: [0, 1, 2]\nrows:\n"
      "  - {table: 4, row: gamma=0, set: {loss.gamma: 0.0}}\n"
      "  - {table: 4, row: gamma=2, set: {loss.gamma: 2.0}}\n"
      "  - {table: 4, row: gamma=5, set: {loss.gamma: 5.0}}\n")


def t4_runs(tmp_path: Path, val: dict[tuple[str, int], float]) -> tuple[Path, Path]:
    """The runs of the Table 4 grid :data:`T4` with the given val mIoU per (row, seed)."""
    exp = tmp_path / "exp"
    (exp / "grids").mkdir(parents=True)
    (exp / "base.yaml").write_text("preset: synthetic\ntrain: {epochs: 1}\n")
    (exp / "grids" / "t4.yaml").write_text(T4)
    results = tmp_path / "results"
    for p in G.load_grid(exp / "grids" / "t4.yaml").points:
        write_run(results, p.config, p.run_name, val=val[(p.row, p.seed)])
    return results, exp / "grids"


def test_table4_gamma_plots_the_paired_differences_from_gamma_2(tmp_path: Path) -> None:
    """The right panel's points are the per-seed differences' means (gamma=0: +1 on every seed, so
    a zero-width interval; gamma=5: -1, +1, -3 -> mean -1), the paper's line its own differences."""
    from aakit.experiment.results import load_results

    results, grids = t4_runs(tmp_path, {("gamma=2", 0): 0.50, ("gamma=2", 1): 0.52, ("gamma=2", 2): 0.54,
                                        ("gamma=0", 0): 0.51, ("gamma=0", 1): 0.53, ("gamma=0", 2): 0.55,
                                        ("gamma=5", 0): 0.49, ("gamma=5", 1): 0.53, ("gamma=5", 2): 0.51})
    index = load_results(results, "synthetic", grids)
    fig = F.table4_gamma(index, results)
    left, right = (next(ax for ax in fig.axes if ax.get_title().startswith(t)) for t in ("Table 4", "difference"))
    ours = [line for line in right.lines if line.get_marker() == "o"]
    points = sorted((float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in ours)
    assert [x for pt in points for x in pt] == pytest.approx([0.0, 1.0, 5.0, -1.0])
    paper = [line for line in right.lines if line.get_marker() == "s"][0]
    xs, ys = list(paper.get_xdata()), list(paper.get_ydata())
    assert ys[xs.index(2.0)] == 0.0 and ys[xs.index(0.0)] == pytest.approx(63.5 - 63.9)
    means = dict(zip(left.lines[0].get_xdata(), left.lines[0].get_ydata()))
    assert means[2.0] == pytest.approx(52.0)


def test_table4_gamma_without_runs_is_none(tmp_path: Path) -> None:
    from aakit.experiment.results import load_results

    results, grids, _ = setup(tmp_path)
    assert F.table4_gamma(load_results(results, "synthetic", grids), results) is None


def test_claims_forest_draws_each_paired_comparison_with_its_interval_and_the_papers(tmp_path: Path) -> None:
    """One line per comparison with two or more paired seeds (the Table 4 grid above: gamma=2 vs
    0, 0.5, 1 and 5, of which 0 and 5 ran): ours at the paired mean with the t-interval, coloured
    by the verdict; the paper's difference as an open square."""
    from aakit.experiment.claims import evaluate_claims
    from aakit.experiment.results import load_results
    from aakit.experiment.stats import t_interval

    results, grids = t4_runs(tmp_path, {("gamma=2", 0): 0.50, ("gamma=2", 1): 0.52, ("gamma=2", 2): 0.54,
                                        ("gamma=0", 0): 0.49, ("gamma=0", 1): 0.50, ("gamma=0", 2): 0.52,
                                        ("gamma=5", 0): 0.49, ("gamma=5", 1): 0.53, ("gamma=5", 2): 0.51})
    claims = evaluate_claims(results, "synthetic", grids, index=load_results(results, "synthetic", grids))
    fig = F.claims_forest(claims)
    ax = fig.axes[0]
    at = {t.get_text(): t.get_position()[1] for t in ax.get_yticklabels()}
    assert set(at) == {"T4: gamma=2 vs gamma=0 (n=3)", "T4: gamma=2 vs gamma=5 (n=3)"}  # 0.5 and 1 did not run
    assert at["T4: gamma=2 vs gamma=0 (n=3)"] > at["T4: gamma=2 vs gamma=5 (n=3)"]  # the claim's order, top down
    (vs0, vs5) = ax.containers  # one errorbar per comparison, in that order
    assert float(vs0.lines[0].get_xdata()[0]) == pytest.approx(5 / 3)  # gamma=2 vs 0: +1, +2, +2
    assert vs0.lines[0].get_color() == F.OUTCOME_COLOURS["supported"]
    assert vs5.lines[0].get_color() == F.OUTCOME_COLOURS["inconclusive"]  # vs 5: +1, -1, +3
    _, _, low, high = t_interval([1.0, -1.0, 3.0])
    (x0, _), (x1, _) = vs5.lines[2][0].get_segments()[0]
    assert (x0, x1) == pytest.approx((low, high))
    paper = [line for line in ax.lines if line.get_marker() == "s"]
    assert len(paper) == 2 and all(line.get_markerfacecolor() == "none" for line in paper)
    assert F.claims_forest(claims.assign(paired=1)) is None
