#!/usr/bin/env bash
# The pseudo-label error profile of benchmark version 2 with each phenomenon on and off
# (issue 14, part 3). For each variant: generate the set, train the preset's classification
# pre-training on it (experiments/synthetic/cls.yaml; the WSSS runs of the preset start from it),
# then profile its online pseudo labels on 200 train images. Resumable: finished steps are kept.
#   bash benchmarks/profile_v2.sh            (from the repository root; about 10 min a variant here)
set -euo pipefail
A=${AAKIT:-.venv/bin/aakit}
OUT=results/benchmark-v2
mkdir -p "$OUT"
variant() {  # name, data root, knobs...
  local name=$1 root=$2; shift 2
  local knobs=()
  for k in "$@"; do knobs+=(--knob "$k"); done
  $A data synth --out "$root" "${knobs[@]}"
  $A train experiments/synthetic/cls.yaml --set "data.root=$root" --no-progress
  local run
  run=$(ls -d results/runs/synth-cls-* | while read -r d; do
          python3 - "$d" "$root" <<'PY'
import json, sys
d, root = sys.argv[1], sys.argv[2]
try:
    cfg = open(d + "/config.yaml").read()
    s = json.load(open(d + "/summary.json"))
except OSError:
    sys.exit(0)
if f"root: {root}\n" in cfg and s.get("status") == "finished":
    print(d)
PY
        done | tail -1)
  $A data profile "$run" --images 200 --json "$OUT/profile-$name.json" > /dev/null
  echo "$name: $run -> $OUT/profile-$name.json"
}
variant default data/synth
variant boundary-off data/synth-v2-boundary-off boundary_blend=0
variant decoys-off data/synth-v2-decoys-off decoy_prob=0
