#!/usr/bin/env bash
# The latency table on a GPU, in one go: `bash lekiwi_drift/bench/gpu_latency.sh [OUT_DIR]`.
#
# Runs `lekiwi-drift bench latency` at full SmolVLA shapes (3 cameras 480x640, chunk 50, batch 1) three
# ways: bf16 eager (the headline: targets drift-1 <= 20 ms on an H100 and FM-10/drift-1 >= 4.6x),
# bf16 with the expert pass under torch.compile, and fp32 eager (the paper's laptop figures are fp32).
# Ours encodes the three cameras in one batched vision call (config batch_vision, DriftFlowMatching.embed_prefix); the
# LeRobot stock baseline runs unchanged with the same weights. Each run writes latency.json and
# latency.png under OUT_DIR. Needs a CUDA GPU and the project venv; no network (random weights).
set -euo pipefail
OUT="${1:-latency_gpu}"
LEKIWI="${LEKIWI:-lekiwi-drift}"
ROUNDS="${ROUNDS:-30}"
mkdir -p "$OUT"
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: this script is for a GPU machine"
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
echo "== bf16, eager =="
"$LEKIWI" bench latency --device cuda --dtype bfloat16 --rounds "$ROUNDS" --warmup 3 --out "$OUT/bf16"
echo "== bf16, expert pass compiled =="
"$LEKIWI" bench latency --device cuda --dtype bfloat16 --compile --rounds "$ROUNDS" --warmup 5 --out "$OUT/bf16_compile" \
  || echo "compiled run failed (see above); the eager bf16 table stands"
echo "== fp32, eager =="
"$LEKIWI" bench latency --device cuda --dtype float32 --rounds "$ROUNDS" --warmup 3 --out "$OUT/fp32"
