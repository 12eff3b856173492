"""aakit's PAR (aakit.method.pseudo.par.par_refine) against AFA's own code, and the fixture that
lets tests/test_par.py check the agreement without AFA's code (issue 29).

Test-only: AFA's ``wetr/PAR.py`` is loaded from a checkout of github.com/rulixiang/afa given
with ``--afa`` (nothing of it is copied into aakit), run on the cases of tests/_par_cases.py,
and its float32 outputs are written with the inputs' checksums and the max |difference| to
aakit's ``par_refine`` into the fixture. It also prints the difference of both in float64.

    .venv/bin/python benchmarks/par_agreement.py --afa AFA_CHECKOUT [--out tests/fixtures/par_afa.npz]

AFA's PAR.py imports only torch and numpy, and is loaded as a single file (its package
``wetr/__init__.py`` and the rest of the repository are not needed).
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the cases
from _par_cases import CASES, case_inputs, checksum  # noqa: E402

from aakit.method.pseudo.par import par_refine  # noqa: E402


def load_afa_par(afa: Path) -> type:
    """AFA's ``PAR`` class, from ``<afa>/wetr/PAR.py``."""
    path = afa / "wetr" / "PAR.py"
    if not path.is_file():
        sys.exit(f"par_agreement: no wetr/PAR.py under --afa {afa}")
    spec = importlib.util.spec_from_file_location("afa_wetr_par", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PAR


def afa_commit(afa: Path) -> str:
    """The commit of the checkout, or '' when it is not a git work tree (an archive)."""
    out = subprocess.run(["git", "-C", str(afa), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def main() -> None:
    """Run both on every case, print the differences, write the fixture."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--afa", type=Path, required=True, help="a checkout of rulixiang/afa")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "par_afa.npz")
    ap.add_argument("--commit", default="", help="AFA's commit, if --afa is an archive")
    args = ap.parse_args()
    torch.set_num_threads(1)
    PAR = load_afa_par(args.afa)
    store: dict[str, np.ndarray] = {}
    worst32 = worst64 = 0.0
    for case in CASES:
        images, probs = case_inputs(case)
        afa = PAR(dilations=list(case.dilations), num_iter=case.iterations)
        with torch.no_grad():
            ref = afa(images, probs)
            ref64 = afa.double()(images.double(), probs.double())
        ours = par_refine(images, probs, case.dilations, case.iterations)
        ours64 = par_refine(images.double(), probs.double(), case.dilations, case.iterations)
        d32 = (ref - ours).abs().max().item()
        d64 = (ref64 - ours64).abs().max().item()
        worst32, worst64 = max(worst32, d32), max(worst64, d64)
        sums = ref.sum(1)
        print(f"{case.name:30s} out {tuple(ref.shape)}  max|d| float32 {d32:.1e}  float64 {d64:.1e}"
              f"  AFA's pixel sums {sums.min().item():.6f}..{sums.max().item():.6f}", flush=True)
        store[f"{case.name}/afa"] = ref.numpy().astype(np.float32)
        store[f"{case.name}/checksum"] = checksum(images, probs)
        store[f"{case.name}/max_abs_diff"] = np.array(d32)
    store["max_abs_diff_float32"] = np.array(worst32)
    store["max_abs_diff_float64"] = np.array(worst64)
    store["afa_commit"] = np.array(args.commit or afa_commit(args.afa))
    store["torch_version"] = np.array(torch.__version__)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **store)
    print(f"max |d| over all cases: float32 {worst32:.2e}, float64 {worst64:.2e}; wrote {args.out} "
          f"({args.out.stat().st_size / 1000:.0f} kB)")


if __name__ == "__main__":
    main()
