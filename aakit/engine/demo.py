"""``make demo``: the whole method on a laptop CPU in a few minutes.

Generates the embedded benchmark if it is missing, trains the CLS+CE baseline and the full
method (CLS+CE+AA+LR) on the demo schedule (``experiments/synthetic/schedules/demo.yaml``, a
preset shipped with aakit: :mod:`aakit.presets`), and prints their mIoU side by side. Nothing
here is special-cased: it is ``aakit data synth`` followed by two ``aakit train`` calls.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aakit import yamlio
from aakit.config import load_config
from aakit.presets import presets_root
from aakit.files import read_json

DEMO_ROWS = (("CLS+CE (baseline)", "baseline.yaml"), ("CLS+CE+AA+LR (full)", "full.yaml"))


def run_demo(*, results: Path, data: Path, echo: Callable[[str], None] = print) -> list[dict[str, float | str]]:
    from aakit.data import synth
    from aakit.engine.train import train

    if not synth.is_generated(data, version=2):  # the default set (v2: 600 + 1000); the demo uses part of it
        echo(f"generating the embedded benchmark (version 2) in {data} ...")
        synth.generate(data, version=2, workers=2)
    synthetic = presets_root() / "synthetic"
    rows = []
    for label, file in DEMO_ROWS:
        # model.pretrained stays as written (experiments/synthetic/schedules/demo_cls.yaml): the
        # preset resolver finds it from any folder, and the run's hash names no install path.
        over = _demo_overrides(synthetic / "schedules" / "demo.yaml")
        cfg = load_config(synthetic / file, {"data.root": str(data), **over})
        cfg.name = "demo-" + cfg.name
        echo(f"training {label} ...")
        path = train(cfg, results=results, name=cfg.name, command=["aakit", "demo"])
        s = read_json(path / "summary.json") or {}
        m = s.get("metrics", {})
        rows.append({
            "run": label,
            "val": m.get("val", {}).get("miou", float("nan")),
            "val_rfpc": m.get("val_rfpc", {}).get("miou", float("nan")),
            "train": m.get("train", {}).get("miou", float("nan")),
            "pseudo": s.get("pseudo_miou") if s.get("pseudo_miou") is not None else float("nan"),
            "minutes": s.get("wall_time_s", float("nan")) / 60,
            "dir": str(path),
        })
    echo("")
    echo(f"{'run':24s} {'val mIoU':>9s} {'val+rfpc':>9s} {'train':>7s} {'pseudo':>7s} {'min':>5s}")
    def pct(v: object, width: int) -> str:
        return f"{100 * v:{width}.1f}" if isinstance(v, float) and v == v else f"{'-':>{width}s}"

    for r in rows:
        echo(f"{r['run']:24s} {pct(r['val'], 9)} {pct(r['val_rfpc'], 9)} {pct(r['train'], 7)} "
             f"{pct(r['pseudo'], 7)} {r['minutes']:5.1f}")
    echo("(mIoU in %, background included; pseudo = pseudo-label mIoU on train images at the last epoch)")
    for line in what_the_demo_shows(results):
        echo(line)
    return rows


def what_the_demo_shows(results: Path, grids_dir: Path | None = None) -> list[str]:
    """What one seed of a one-epoch run can and cannot show, and the committed 20-seed answer,
    read from the stored runs under ``results`` (the claim T1-AA of aakit.experiment.claims)."""
    from aakit.experiment.claims import claims_json

    lines = ["", "What this shows: the whole pipeline runs (benchmark, CAM, dense-CRF pseudo labels, AA and LR",
             "losses, evaluation). What it cannot show: whether the method helps. One seed of a one-epoch",
             "schedule cannot decide that, whichever row comes out ahead."]
    try:
        t1 = next((c for c in claims_json(results, "synthetic", grids_dir) if c["claim"] == "T1-AA" and c["n"]), None)
    except Exception:  # noqa: BLE001 - no stored runs to read (another --results): say where the answer is
        t1 = None
    if t1 is None or t1["ci_low"] is None:
        return [*lines, f"The paired multi-seed answer is in docs/reproduction.md (no stored runs of it under {results})."]
    return [*lines, f"The stored answer ({t1['n']} seeds, paired by seed, full schedule, {results}/runs): "
            f"{t1['comparison']} {t1['mean_diff']:+.1f} points, 95 % interval [{t1['ci_low']:+.1f}, "
            f"{t1['ci_high']:+.1f}], seed-to-seed sd of the difference {t1['sd']:.1f} points "
            f"(aakit report --claims; docs/reproduction.md)."]


def _demo_overrides(path: Path) -> dict[str, object]:
    """The demo schedule: a flat ``key: value`` YAML of dotted overrides."""
    data = yamlio.safe_load(path.read_text()) or {}
    return {k: v for k, v in data.items() if not k.startswith("_")}
