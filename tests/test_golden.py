"""Golden run: a fixed-seed two-epoch training gives the stored numbers on any CPU (issues 13, 27).

What is exact and what is tolerant, and why:

- **Exact, on one machine.** Two trainings of the golden config in one process give the same
  weights bit for bit (sha256 of every tensor). Nothing in a step may depend on time, thread
  scheduling or state left over from an earlier run.
- **Tolerant, against the stored golden.** The bits of a float32 training depend on the kernels
  that torch, oneDNN and MKL pick for the processor (AVX-512, AVX2, the portable ``default``,
  NEON on arm64): sums are associated differently, so results differ in the last bits and two
  epochs of SGD carry that to about 1e-6 of a tensor. Pinning the dispatch does not remove it:
  on one AVX2 machine ``ATEN_CPU_CAPABILITY=default`` and ``=avx2`` gave different weight hashes.
  So the stored golden is a *fingerprint* of the weights (each tensor's L2 norm and three fixed
  random projections) compared within ``WEIGHT_TOL`` of each tensor's norm, with the losses,
  val mIoU and pseudo-label mIoU within tolerances of their own.

How the tolerances were chosen (measured, issue 27): between ``ATEN_CPU_CAPABILITY=default`` and
``avx2`` on one AVX2 machine the worst tensor moved by 1.5e-6 of its norm; changing one loss
weight by a relative 1e-3 (``loss.lambda_aa`` 0.1 -> 0.1001) moved the worst tensor by 4.7e-3 of
its norm. ``WEIGHT_TOL = 2e-4`` sits 130x above the first and 20x below the second;
``test_a_1e3_change_of_one_loss_weight_fails_the_golden`` keeps the second true (and the
same for ``loss.lambda_lr``: 8.3e-3). The losses are
weighted, so the last step's losses move with a loss weight directly, but a 1e-3 change moved the
unweighted ``ce`` by only 4e-6 of itself, no more than the processors do (3e-6 between the stored
AVX-512 numbers and AVX2): the weights, not the losses, are what catch a change to a step.

If a change is *meant* to alter training, regenerate the constants below with
``python tests/test_golden.py`` in the same commit and say why in its message.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch

from conftest import REPO, tiny_overrides

WEIGHT_TOL = 2e-4  # of each tensor's L2 norm (see the module docstring)
LOSS_REL_TOL = 5e-5  # of each last-step loss
MIOU_ABS_TOL = 1e-3  # val / pseudo mIoU (fractions): a few pixels of the tiny val set

# Measured on an AVX2 x86-64 (AMD EPYC, torch 2.13.0+cpu) with ATEN_CPU_CAPABILITY unset (issue 27).
GOLDEN_METRICS = {
    "val": 0.192901575919801,
    "val_rfpc": 0.2787028674942991,
    "pseudo_miou": 0.3168582074895351,
    "last_losses": {"aa": 1.203174829483, "ce": 2.671638965607, "cls": 0.60194760561, "lr": 0.12796266377,
                    "total": 4.604723930359},
}
# The same run on the AVX-512 machine where the first golden was stored (issue 13): a
# different processor's numbers, which the tolerances must admit.
AVX512_METRICS = {
    "val": 0.192901575919801,
    "val_rfpc": 0.2787028674942991,
    "pseudo_miou": 0.3168815516071169,
    "last_losses": {"aa": 1.203174948692, "ce": 2.671630382538, "cls": 0.601948618889, "lr": 0.127962499857,
                    "total": 4.604716777802},
}
GOLDEN_WEIGHTS_FILE = Path(__file__).with_name("golden_weights.json")


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name and bytes: equal iff the weights are bit-identical."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _directions(name: str, n: int) -> torch.Tensor:
    """Three fixed N(0, 1) directions for the tensor ``name`` (seeded by its name only)."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    return torch.randn(3, n, generator=g, dtype=torch.float64)


def weights_fingerprint(state: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """Per tensor: [L2 norm, three random projections]. A projection of a difference d has the
    size of ||d|| (a Gaussian direction), so comparing projections measures how far each tensor
    moved, in the units of its norm, without storing the weights."""
    out = {}
    for k in sorted(state):
        w = state[k].detach().cpu().double().flatten()
        out[k] = [w.norm().item(), *(_directions(k, w.numel()) @ w).tolist()]
    return out


def fingerprint_distance(got: dict[str, list[float]], want: dict[str, list[float]]) -> tuple[float, str]:
    """The worst tensor's move as a fraction of its stored norm, and that tensor's name."""
    assert sorted(got) == sorted(want), "the network's tensors differ from the golden's"
    worst, where = 0.0, ""
    for k, (norm, *proj) in want.items():
        scale = max(norm, 1e-12)
        d = max(abs(a - b) for a, b in zip([got[k][0], *got[k][1:]], [norm, *proj])) / scale
        if d > worst:
            worst, where = d, k
    return worst, where


def metrics_mismatches(got: dict, want: dict) -> list[str]:
    """Every metric outside its tolerance, as 'name: got vs want' (empty when all agree)."""
    bad = [f"{k}: {got[k]} vs {want[k]}" for k in ("val", "val_rfpc", "pseudo_miou")
           if abs(got[k] - want[k]) > MIOU_ABS_TOL]
    if sorted(got["last_losses"]) != sorted(want["last_losses"]):
        return [*bad, f"loss terms {sorted(got['last_losses'])} vs {sorted(want['last_losses'])}"]
    for k, v in want["last_losses"].items():
        if not math.isclose(got["last_losses"][k], v, rel_tol=LOSS_REL_TOL):
            bad.append(f"loss {k}: {got['last_losses'][k]} vs {v}")
    return bad


def golden_run(root: Path, results: Path, extra: dict[str, object] | None = None) -> dict[str, object]:
    """Train the golden config (one thread, CRFs in process) and read back what it left."""
    from aakit.config import load_config
    from aakit.engine.train import train
    from aakit.runs import read_metrics

    over = tiny_overrides(root) | {"pseudo.workers": 0, "eval.save_examples": 0, "train.seed": 11} | (extra or {})
    cfg = load_config(REPO / "experiments/synthetic/full.yaml", over)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = train(cfg, results=results, progress=False)
    finally:
        torch.set_num_threads(threads)
    summary = json.loads((run / "summary.json").read_text())
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    steps = [r for r in read_metrics(run / "metrics.jsonl")[0] if r.get("kind") == "step"]
    return {
        "weights_sha256": weights_digest(state),
        "fingerprint": weights_fingerprint(state),
        "val": summary["metrics"]["val"]["miou"],
        "val_rfpc": summary["metrics"]["val_rfpc"]["miou"],
        "pseudo_miou": summary["pseudo_miou"],
        "last_losses": {k: round(v, 12) for k, v in sorted(steps[-1]["losses"].items())},
    }


def assert_matches_golden(got: dict) -> None:
    distance, where = fingerprint_distance(got["fingerprint"], json.loads(GOLDEN_WEIGHTS_FILE.read_text()))
    bad = metrics_mismatches(got, GOLDEN_METRICS)
    assert distance <= WEIGHT_TOL and not bad, f"weights moved {distance:.2e} of {where}'s norm; {bad}"


@pytest.fixture(scope="module")
def golden_twice(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    return (golden_run(tiny_synth, tmp_path_factory.mktemp("g1")),
            golden_run(tiny_synth, tmp_path_factory.mktemp("g2")))


def test_golden_training_is_bit_identical_on_this_machine(golden_twice: tuple[dict, dict]) -> None:
    first, second = golden_twice
    assert first["weights_sha256"] == second["weights_sha256"]
    assert first["last_losses"] == second["last_losses"]
    assert (first["val"], first["pseudo_miou"]) == (second["val"], second["pseudo_miou"])


def test_golden_training_matches_the_stored_golden(golden_twice: tuple[dict, dict]) -> None:
    assert_matches_golden(golden_twice[0])


def test_the_tolerances_admit_the_avx512_machines_numbers() -> None:
    assert metrics_mismatches(AVX512_METRICS, GOLDEN_METRICS) == []


def test_the_portable_kernels_match_the_golden_too(tiny_synth: Path, tmp_path: Path) -> None:
    """The same run with ATEN_CPU_CAPABILITY=default (the kernels every CPU has), in a subprocess."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "PYTHONPATH": str(Path(__file__).parent)}
    code = ("import json, sys; from pathlib import Path; import test_golden as g; "
            "print(json.dumps(g.golden_run(Path(sys.argv[1]), Path(sys.argv[2]))))")
    out = subprocess.run([sys.executable, "-c", code, str(tiny_synth), str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert_matches_golden(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize("key", ["loss.lambda_aa", "loss.lambda_lr"])
def test_a_1e3_change_of_one_loss_weight_fails_the_golden(key: str, tiny_synth: Path, tmp_path: Path) -> None:
    """A loss weight 0.1 -> 0.1001 (a relative 1e-3) must fall outside the weight tolerance."""
    got = golden_run(tiny_synth, tmp_path, {key: 0.1001})
    distance, _ = fingerprint_distance(got["fingerprint"], json.loads(GOLDEN_WEIGHTS_FILE.read_text()))
    assert distance > 5 * WEIGHT_TOL, distance
    with pytest.raises(AssertionError):
        assert_matches_golden(got)


if __name__ == "__main__":  # regenerate the stored golden (a change *meant* to alter training)
    import tempfile

    from aakit.data import synth

    with tempfile.TemporaryDirectory() as tmp:
        synth.generate(Path(tmp) / "set", n_train=16, n_val=8, num_classes=4, size=64, seed=3)
        got = golden_run(Path(tmp) / "set", Path(tmp) / "results")
    GOLDEN_WEIGHTS_FILE.write_text(json.dumps(got.pop("fingerprint"), indent=1) + "\n")
    print(json.dumps({k: v for k, v in got.items() if k != "weights_sha256"}, indent=1))
