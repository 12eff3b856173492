"""Dense CRF time per image and peak memory on the available devices (issue 15, part 5).

For 164 and 321 px scenes (tests/test_crf_torch.py's ``scene``) with 3 and 21 labels and RRM's
training CRF: pydensecrf in process (if installed), and the torch back-end batched (1, 4, 8
images) on the CPU and on every CUDA device. Writes JSON (one record per measurement):

    .venv/bin/python benchmarks/crf_devices.py --out benchmarks/crf-devices.json [--quick]

``--quick``: 164 px only, batch 1 and 2, one repeat (what benchmarks/gpu.sh's CPU fallback runs).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test scenes
from test_crf_torch import scene  # noqa: E402

from aakit.config import CRFParams  # noqa: E402
from aakit.bench import crf_devices, crf_torch_figures, timeit  # noqa: E402
from aakit.method.crf import dense_crf, pydensecrf_available  # noqa: E402


def torch_record(img: np.ndarray, prob: np.ndarray, batch: int, device: str, repeats: int) -> dict[str, Any]:
    """Time per image (median, as aakit bench) and peak memory of dense_crf_batch."""
    seconds, peak_mb = crf_torch_figures(img, prob, batch, device, repeats, CRFParams())
    return {"backend": "torch", "device": device, "batch": batch, "ms_per_image": 1000 * seconds,
            "peak_mb": round(peak_mb, 1)}


def main() -> None:
    """Measure and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sizes, batches, repeats = ((164,), (1, 2), 1) if args.quick else ((164, 321), (1, 4, 8), 3)
    devices = crf_devices()
    records = []
    for size in sizes:
        for labels in (3, 21):
            img, _, prob = scene(size, labels, size + labels)
            case = {"px": size, "labels": labels}
            if pydensecrf_available():
                s = timeit(lambda: dense_crf(img, prob, CRFParams(), backend="pydensecrf"), repeats)
                records.append(case | {"backend": "pydensecrf", "device": "cpu", "batch": 1, "ms_per_image": 1000 * s})
                print(records[-1], flush=True)
            for device in devices:
                for batch in batches:
                    records.append(case | torch_record(img, prob, batch, device, repeats))
                    print(records[-1], flush=True)
    meta = {"torch": torch.__version__, "python": platform.python_version(), "threads": 1,
            "cuda": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "records": records}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
