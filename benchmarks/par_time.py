"""Time per image and peak memory of PAR (aakit.method.pseudo.par.par_refine, issue 29) on the
available devices: the lab's crop (164 px, 11 classes, experiments/synthetic/base.yaml) and
VOC's 512 px with 21 classes, batches of 1 and 8, AFA's defaults (dilations 1-2-4-8-12-24,
10 iterations). Structured scenes of tests/test_crf_torch.py; the probabilities are given at
the image's size (PAR's upsampling is then a no-op). Writes JSON, one record per measurement:

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/par_time.py --out benchmarks/par-cpu.json [--threads 2] [--quick]

``--quick``: 164 px only, batch 1 and 8, one repeat. ``--afa DIR`` (a checkout of rulixiang/afa)
also times AFA's own ``wetr/PAR.py`` at 164 px on the same inputs (its memory grows with
B C K H W, so not at 512 px). On CUDA the clock stops after a
synchronize; the peak is CUDA's allocator peak (CPU: not measured, null).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test scenes
sys.path.insert(0, str(Path(__file__).resolve().parent))  # par_agreement's loader of AFA's PAR
from test_crf_torch import scene  # noqa: E402

from aakit.method.pseudo.par import DILATIONS, par_refine  # noqa: E402
from par_agreement import load_afa_par  # noqa: E402

SIZES = ((164, 11), (512, 21))  # (px, classes): the lab's crop, VOC's


def par_record(size: int, classes: int, batch: int, device: str, repeats: int,
               afa: type | None = None) -> dict[str, Any]:
    """Median seconds per image of par_refine (or of AFA's PAR class ``afa``) on ``batch`` copies
    of one scene, after a warm-up."""
    img, _, prob = scene(size, classes, size + classes)
    images = torch.from_numpy(np.stack([img] * batch)).permute(0, 3, 1, 2).float().contiguous().to(device)
    probs = torch.from_numpy(np.stack([prob / prob.sum(0, keepdims=True)] * batch)).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    refine = par_refine if afa is None else torch.no_grad()(afa(list(DILATIONS), 10).to(device))
    refine(images, probs)
    sync()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        refine(images, probs)
        sync()
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.startswith("cuda") else None
    return {"code": "aakit" if afa is None else "afa", "px": size, "classes": classes, "batch": batch, "device": device,
            "ms_per_image": round(1000 * float(np.median(times)) / batch, 2),
            "repeats": repeats, "peak_mb": None if peak is None else round(peak, 1)}


def main() -> None:
    """Measure and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--afa", type=Path, help="a checkout of rulixiang/afa: time its PAR too (164 px, CPU)")
    ap.add_argument("--cpu", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the CPU (--no-cpu: the GPUs only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes, repeats = (SIZES[:1], 1) if args.quick else (SIZES, 3)
    devices = (["cpu"] if args.cpu else []) + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    records = []
    for device in devices:
        for size, classes in sizes:
            for batch in (1, 8):
                records.append(par_record(size, classes, batch, device, repeats))
                print(records[-1], flush=True)
                if args.afa and device == "cpu" and size == 164:
                    records.append(par_record(size, classes, batch, device, repeats, load_afa_par(args.afa)))
                    print(records[-1], flush=True)
    meta = {"torch": torch.__version__, "python": platform.python_version(), "threads": args.threads,
            "cpu": platform.processor() or platform.machine(),
            "cuda": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "records": records}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
