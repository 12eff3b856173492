"""Run ``aakit bench`` and keep its figures in ``benchmarks/<preset>.json``.

A plain script (no pytest-benchmark): speed is measured here, never asserted in the tests.

    python benchmarks/bench.py              # synthetic preset, median of 5: a few minutes on 2 cores
    python benchmarks/bench.py --voc        # also ResNet-38 at 321 px, batch 1 (long on a CPU)
    python benchmarks/bench.py --repeats 3
    python benchmarks/bench.py --threads 1  # torch with one intra-op thread -> synthetic-1thread.json

It prints the load average first: on a shared machine, figures taken under load are slower
and noisier (compare ratios from one run, not seconds across runs). ``docs/performance.md``
records the figures of the project's machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def bench(preset: str, repeats: int, threads: int | None = None) -> int:
    """``aakit bench --preset PRESET --repeats N --json benchmarks/PRESET.json`` from the repo root.

    ``threads`` sets OMP_NUM_THREADS (torch's intra-op threads) for the run; its figures then go
    to ``PRESET-<threads>thread.json``.
    """
    env = dict(os.environ)
    suffix = ""
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
        suffix = f"-{threads}thread"
    out = HERE / f"{preset}{suffix}.json"
    cmd = [sys.executable, "-m", "aakit.cli", "bench", "--preset", preset, "--repeats", str(repeats), "--json", str(out)]
    prefix = f"OMP_NUM_THREADS={threads} " if threads is not None else ""
    print(f"$ {prefix}aakit " + " ".join(cmd[3:]), flush=True)
    return subprocess.run(cmd, cwd=HERE.parent, env=env).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description="Run `aakit bench` for the synthetic preset (and --voc) "
                                                 "and write benchmarks/<preset>.json.")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per figure (median); default 5")
    parser.add_argument("--voc", action="store_true", help="also the voc preset (ResNet-38, 321 px, batch 1, "
                                                          "at most 2 repeats): several minutes on a CPU")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (OMP_NUM_THREADS); default: torch's own choice")
    a = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores", flush=True)
    code = bench("synthetic", a.repeats, a.threads)
    if code == 0 and a.voc:
        code = bench("voc", a.repeats, a.threads)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
