"""Step 2's refiners side by side (issue 29): ``pseudo.refine: crf | par | par+crf``.

Two figures from one pre-trained classifier (a CLS-only run's ``checkpoints/last.pt``):

(a) pseudo-label quality on the first ``--images`` training images of the run's data set: the
    mIoU of the labelled pixels against the ground truth (ignored pixels left out, as the
    trainer's ``pseudo_miou``) and the share of pixels labelled; every refiner labels the same
    CAMs (computed once per image), with the settings of ``--config``;
(b) a training step's cost with each refiner (the method's own step, ``losses_of_batch`` at the
    last epoch: CLS + CE + AA + LR, then SGD), on one batch of ``--batch`` synthetic images at the
    config's crop, the labeller in process (``workers=0``); the calls interleaved round-robin
    (``aakit.bench.timeit_many``), so the ratios see the same load.

    OMP_NUM_THREADS=1 python benchmarks/refiners.py --run results/runs/synth-cls-<hash>
    python benchmarks/refiners.py --run RUN --images 20 --repeats 3     # shorter

It prints the machine (CPU model, torch threads, load average) first. Speed is measured here,
never asserted in the tests; docs/performance.md ("Refiners") and docs/benchmark.md hold the
project machine's figures.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

REFINERS = ("crf", "par", "par+crf")


def machine() -> str:
    """CPU model (lscpu), torch's intra-op threads and the 1-minute load average."""
    import torch

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                     platform.processor())
    except OSError:
        model = platform.processor()
    return f"{model}; {os.cpu_count()} cores; torch threads {torch.get_num_threads()}; load {os.getloadavg()[0]:.2f}"


def with_refiner(cfg: Any, refine: str) -> Any:
    return dataclasses.replace(cfg, pseudo=dataclasses.replace(cfg.pseudo, refine=refine))


def pseudo_quality(model: Any, cfg: Any, images: int) -> dict[str, dict[str, float]]:
    """(a): per refiner, mIoU of the labelled pixels and the share of pixels labelled."""
    import numpy as np
    import torch

    from aakit.data.voc import EvalDataset
    from aakit.engine.measure import labeler_inputs
    from aakit.labels import IGNORE_INDEX
    from aakit.method import PseudoLabeler
    from aakit.metrics import ConfusionMeter

    d = cfg.data
    dataset = EvalDataset(d.root, d.train_split, mean=d.mean, std=d.std, max_images=images)
    labelers = {r: PseudoLabeler.from_config(with_refiner(cfg, r), workers=0) for r in REFINERS}
    meters = {r: ConfusionMeter(cfg.model.num_classes) for r in REFINERS}
    labelled = dict.fromkeys(REFINERS, 0)
    pixels = 0
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            args, _ = labeler_inputs(model, item, cfg, torch.device("cpu"))
            gt = np.asarray(item["mask"])
            pixels += int((gt != IGNORE_INDEX).sum())
            for r, lab in labelers.items():
                pred = lab(*args)[0][0].numpy()
                g = np.where(pred == IGNORE_INDEX, IGNORE_INDEX, gt)
                meters[r].update(np.where(pred == IGNORE_INDEX, 0, pred), g)
                labelled[r] += int((g != IGNORE_INDEX).sum())
    for lab in labelers.values():
        lab.close()
    return {r: {"miou": float(meters[r].compute()["miou"]), "labelled": labelled[r] / max(pixels, 1)}
            for r in REFINERS}


def step_cost(model: Any, cfg: Any, batch: int, repeats: int) -> dict[str, Any]:
    """(b): median seconds of a training step and of the batch's pseudo labels alone, per refiner."""
    import torch

    from aakit.bench import _synthetic_batch, timeit_many
    from aakit.method import PseudoLabeler, build_objective, losses_of_batch, training_cam

    data = _synthetic_batch(cfg, batch)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    objective = build_objective(cfg)
    labelers = {r: PseudoLabeler.from_config(with_refiner(cfg, r), workers=0) for r in REFINERS}

    def step(lab: Any) -> Any:
        def run() -> None:
            opt.zero_grad(set_to_none=True)
            losses, _ = losses_of_batch(model, data, cfg, objective, epoch=cfg.train.epochs - 1,
                                        device=torch.device("cpu"), labeler=lab)
            losses.pending().backward()
            opt.step()
        return run

    with torch.no_grad():  # the batch's labeller inputs, as the step makes them
        out = model(data["image"])
        size = tuple(data["image"].shape[-2:])
        cams = training_cam(model, data["image"], out["cam"], tuple(cfg.model.cam_scales), size)
        inputs = (data["raw"], cams, data["labels"], out["cls_logits"].float().sigmoid())

    def labels(lab: Any) -> Any:
        return lambda: lab(*inputs)

    fns = {f"step {r}": step(lab) for r, lab in labelers.items()}
    fns.update({f"labels {r}": labels(lab) for r, lab in labelers.items()})
    times = timeit_many(fns, repeats)
    for lab in labelers.values():
        lab.close()
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a CLS-only run directory (checkpoints/last.pt)")
    p.add_argument("--config", type=Path, default=HERE.parent / "experiments" / "synthetic" / "full.yaml")
    p.add_argument("--images", type=int, default=100, help="training images for (a); 0 skips (a)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    import torch

    from aakit.config import load_config
    from aakit.engine.inference import load_run_model

    os.chdir(HERE.parent)  # data.root is relative to the repo root
    cfg = load_config(args.config, {"model.pretrained": None})
    _, model, _ = load_run_model(args.run, torch.device("cpu"))
    step = torch.load(args.run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False).get("step")
    print(f"machine: {machine()}")
    print(f"classifier: {args.run.name} step {step}; config {args.config.name}; data {cfg.data.root}", flush=True)
    if args.images:
        quality = pseudo_quality(model, cfg, args.images)
        print(f"\n(a) pseudo labels of {args.images} training images (CAM at scales {list(cfg.model.cam_scales)})")
        print(f"{'refiner':10s} {'mIoU %':>8s} {'labelled %':>11s}")
        for r, q in quality.items():
            print(f"{r:10s} {100 * q['miou']:8.1f} {100 * q['labelled']:11.1f}")
    times = step_cost(model, cfg, args.batch, args.repeats)
    base = {"step": times["step crf"], "labels": times["labels crf"]}
    print(f"\n(b) training step, batch {args.batch} at {cfg.data.crop} px, median of {args.repeats} "
          f"(lo-hi), load {os.getloadavg()[0]:.2f}")
    print(f"{'':14s} {'s':>7s} {'x crf':>7s}  range")
    for name, t in times.items():
        print(f"{name:14s} {t:7.3f} {t / base[name.split()[0]]:7.2f}  {t.lo:.3f}-{t.hi:.3f}{t.mark()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
