#!/usr/bin/env bash
# The dense-CRF figures of issue 15 and the PAR figures of issue 29 on a machine with a CUDA GPU,
# in a few minutes:
#   bash benchmarks/gpu.sh                 (from the repository root)
# Sets up the environment (make setup: torch, aakit, pydensecrf as the reference), then runs
# benchmarks/crf_devices.py (pydensecrf on the CPU, the torch back-end batched on the CPU and on
# every GPU, 164 and 321 px, 3 and 21 labels, time per image and peak memory) and writes
# benchmarks/gpu-crf.json; then benchmarks/par_time.py (PAR, issue 29: 164 px with 11 classes and
# 512 px with 21, batches of 1 and 8, time per image and peak memory on every GPU) and writes
# benchmarks/gpu-par.json. Without a GPU it runs the quick CPU fallbacks (benchmarks/crf-cpu.json,
# benchmarks/par-cpu.json).
# Not measured here yet (issue 15, part 5): the VOC training step with each back-end.
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then make setup; fi
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  "$PY" benchmarks/crf_devices.py --out benchmarks/gpu-crf.json
  "$PY" benchmarks/par_time.py --no-cpu --out benchmarks/gpu-par.json
else
  echo "gpu.sh: no CUDA device, running the quick CPU fallback" >&2
  OMP_NUM_THREADS=1 "$PY" benchmarks/crf_devices.py --quick --out benchmarks/crf-cpu.json
  OMP_NUM_THREADS=1 "$PY" benchmarks/par_time.py --quick --threads 1 --out benchmarks/par-cpu.json
fi
