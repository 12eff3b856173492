"""``aakit report --figures``: PNG figures drawn with matplotlib from the stored runs.

* ``curves/<run>.png`` — training curves of each run: every loss term over the steps, and the
  per-epoch val mIoU and pseudo-label mIoU;
* ``figure3_pseudo_miou.png`` — the paper's Figure 3 as a curve: quality (mIoU against the
  ground truth) of the online pseudo labels over the epochs, baseline (Table 1 "CLS+CE") vs the
  full method ("CLS+CE+AA+LR"), mean and spread over seeds;
* ``table4_gamma.png`` — val mIoU against gamma, ours (mean ± std) beside the paper's.

Figures are drawn on matplotlib's Agg canvas directly, so nothing changes the user's backend.
The qualitative Figures 5-7 need predictions of trained models (``aakit predict``) and Figure 8
needs the embeddings; they are not drawn here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from aakit.experiment.report import Point, collect_points, gather, index_runs
from aakit.runs import atomic_write_bytes, list_runs


def _new_figure(width: float = 9.0, height: float = 3.6) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


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


def make_figures(
    results: Path,
    out: Path,
    *,
    preset: str | None = None,
    grids_dir: Path | None = None,
) -> list[Path]:
    """Write every figure that the stored runs allow; returns the files written."""
    results, out = Path(results), Path(out)
    written: list[Path] = []
    runs = [r for r in list_runs(results) if preset is None or r.config.get("preset") == preset]
    records_by_dir = {r.path.name: r.records for r in runs}
    for r in runs:
        if any(rec.get("kind") in ("step", "epoch") for rec in r.records):
            fig = training_curves(r.records, f"{r.name} ({r.status})")
            written.append(_save(fig, out / "curves" / f"{r.name}.png"))

    points: list[Point] = []
    if preset is not None:
        points, _ = collect_points(results, preset, grids_dir)
    finished = index_runs(results)
    rows = gather(points, finished, 1)
    curves: dict[str, list[dict[int, float]]] = {}
    for row, label in (("CLS+CE", "baseline CLS+CE"), ("CLS+CE+AA+LR", "ours CLS+CE+AA+LR")):
        row_runs = rows[row].runs if row in rows else []
        per_seed = [_per_epoch(records_by_dir.get(run.path.name, []), "pseudo_miou") for run, _ in row_runs]
        per_seed = [c for c in per_seed if c]
        if per_seed:
            curves[label] = per_seed
    if curves:
        written.append(_save(figure3(curves), out / "figure3_pseudo_miou.png"))

    from aakit.experiment.published import load_published, published_value

    g4 = gather(points, finished, 4)
    if any(g.runs for g in g4.values()):
        pub = load_published(results=results)
        fig = _new_figure(6.0, 3.8)
        ax = fig.subplots()
        xs, means, stds, paper_x, paper_y = [], [], [], [], []
        for row, g in g4.items():
            try:
                gamma = float(row.split("=", 1)[1])
            except (IndexError, ValueError):
                continue
            vals = [100 * float(run.summary["metrics"][m]["miou"]) for run, m in g.runs
                    if isinstance((run.summary.get("metrics") or {}).get(m), dict)]
            if vals:
                mean = sum(vals) / len(vals)
                xs.append(gamma)
                means.append(mean)
                stds.append((sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0)
            pv = published_value(pub, 4, row, "val")
            if pv is not None:
                paper_x.append(gamma)
                paper_y.append(pv)
        if xs:
            order = sorted(range(len(xs)), key=lambda i: xs[i])
            ax.errorbar([xs[i] for i in order], [means[i] for i in order], yerr=[stds[i] for i in order],
                        marker="o", capsize=3, label=f"aakit ({preset})")
        if paper_x:
            order = sorted(range(len(paper_x)), key=lambda i: paper_x[i])
            ax.plot([paper_x[i] for i in order], [paper_y[i] for i in order], marker="s", linestyle="--",
                    label="paper (VOC)")
        ax.set_xlabel("gamma")
        ax.set_ylabel("val mIoU (%)")
        ax.set_title("Table 4: concentration parameter gamma")
        ax.legend(fontsize=8)
        written.append(_save(fig, out / "table4_gamma.png"))
    return written
