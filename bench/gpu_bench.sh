#!/usr/bin/env bash
# The GPU measurement of issue 16 in under 5 minutes on one datacenter GPU:
#   batch 1 latency (ms per predicted 64x64 frame, all three experts, 4 sampler steps),
#   eager and compiled (torch.compile reduce-overhead: the network's forward as a CUDA graph),
#   and throughput with 64 paths predicted side by side (frames/s = 1000 / ms per frame).
# Targets: <= 10 ms per frame at batch 1, >= 200 frames/s batched, all three experts, bf16.
# Usage: bash bench/gpu_bench.sh [OUT_DIR]   (PYTHON=... to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${1:-out/gpu_bench}
mkdir -p "$OUT"
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device")'
run() {  # name, then mowm bench model arguments; each run is capped so the whole stays < 5 min
    local name=$1; shift
    echo "== $name"
    timeout 110 "$PYTHON" -m mowm_ros.cli bench model --device cuda --steps 4 --observe 40 \
        --repeats 10 --no-operating --out "$OUT/$name.json" "$@" | tee "$OUT/$name.md" \
        || echo "$name: failed or over its time limit (exit $?)"
}
run eager_batch1 --sets short_term 'all three'
run eager_paths64 --sets 'all three' --paths 64
run compiled_batch1 --sets short_term 'all three' --compile reduce-overhead
run compiled_paths64 --sets 'all three' --paths 64 --compile reduce-overhead
"$PYTHON" - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print('\n| run | experts | paths | ms per frame | frames/s |\n|---|---|---|---|---|')
for path in sorted(out.glob('*.json')):
    result = json.loads(path.read_text())
    for row in result['imagine']:
        print(f"| {path.stem} | {row['experts']} | {result['paths']} | {row['median']:.2f} | "
              f"{1000 / row['median']:.0f} |")
PY
