#!/usr/bin/env bash
# The real-GPU run of issue 9, in one command, on a Linux machine with an
# NVIDIA GPU, its Vulkan driver and PyTorch (CUDA):
#
#     bash bench/gpu.sh [--quick] [python]        # python defaults to python3
#
# --quick measures one small shape (CI runs it on lavapipe to keep the script
# working; numbers from it mean nothing).
# Prints, in one run on one GPU: our encoder through wgpu/Vulkan beside
# PyTorch CUDA fp32 eager (TF32 off) on the same shapes with each kernel's
# time (--profile), then our linear kernel's GFLOP/s on bert-base's shapes at
# 4096 tokens beside torch's (cuBLAS) on the same products, then the encoder
# and the linear kernel with each of wgpu's shader checks switched off in
# turn, then fine-tuning speed (the whole model,
# MRPC pairs from tests/fixtures/glue-tiny) beside transformers' Trainer on
# CUDA (bench/pytorch_finetune.py --cuda). Builds the release binary only if it is
# missing (set BERTLAB to use another). On a machine without a Vulkan loader
# put the loader's .deb files in .gl/ (bench/RESULTS.md, "GPU", says how).
set -euo pipefail
cd "$(dirname "$0")/.."
SHAPES=(--models minilm,bert-base --batches 1,8,32 --seqs 8,128 --matmul-tokens 4096 --min-seconds 2)
CHECK_SHAPES=(--models bert-base --batches 1,32 --seqs 8,128 --matmul-tokens 4096 --min-seconds 1)
TRAIN_MODEL=models/all-MiniLM-L6-v2 TRAIN_PAIRS=240 TRAIN_STEPS=15
if [ "${1:-}" = --quick ]; then
  SHAPES=(--models minilm --batches 1 --seqs 8 --matmul-tokens 64 --min-seconds 0.1)
  CHECK_SHAPES=(--models minilm --batches 1 --seqs 8 --matmul-tokens 64 --min-seconds 0.1)
  TRAIN_MODEL=tests/fixtures/tiny-bert TRAIN_PAIRS=32 TRAIN_STEPS=2
  shift
fi
PY=${1:-python3}
BIN=${BERTLAB:-target/release/bertlab}
if ls .gl/*.deb >/dev/null 2>&1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
fi
[ -x "$BIN" ] || cargo build --release --locked --bin bertlab
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
"$BIN" bench --backends gpu "${SHAPES[@]}" --compare-pytorch "$PY" --profile
echo
echo "| torch.nn.functional.linear (cuBLAS), TF32 off | m × n × k | ms | GFLOP/s |"
echo "|---|---|---|---|"
"$PY" - <<'PY' || echo "| (PyTorch CUDA not available here) | | | |"
import sys, time
try:
    import torch
except ImportError:
    sys.exit(3)
if not torch.cuda.is_available():
    sys.exit(3)
torch.backends.cuda.matmul.allow_tf32 = False
m = 4096
for name, n, k in [("QKV", 2304, 768), ("attention out", 768, 768), ("FFN in", 3072, 768), ("FFN out", 768, 3072)]:
    x = torch.randn(m, k, device="cuda")
    w = torch.randn(n, k, device="cuda")
    b = torch.randn(n, device="cuda")
    torch.nn.functional.linear(x, w, b)
    torch.cuda.synchronize()
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < 1.0:
        for _ in range(10):
            torch.nn.functional.linear(x, w, b)
        torch.cuda.synchronize()
        runs += 10
    ms = (time.perf_counter() - start) * 1e3 / runs
    print(f"| {name} | {m} × {n} × {k} | {ms:.3f} | {2 * m * n * k / ms / 1e6:.1f} |")
PY

echo
echo "What each of wgpu's shader runtime checks costs (the engine runs with all of them):"
"$BIN" bench --backends gpu "${CHECK_SHAPES[@]}" --shader-checks all,no-bounds,no-loop-bounding,none

echo
echo "| fine-tuning $TRAIN_MODEL, whole model, batch 16, MRPC pairs (tests/fixtures/glue-tiny) | train samples/s |"
echo "|---|---|"
DATA=tests/fixtures/glue-tiny
ours=$("$BIN" finetune --model "$TRAIN_MODEL" --data "$DATA" --train-layers all --backend gpu --max-train-samples "$TRAIN_PAIRS" \
  --num-train-epochs 1 --no-cache --json | tail -1 | "$PY" -c 'import sys, json; print(round(json.load(sys.stdin)["train_samples_per_second"], 1))')
echo "| ours, wgpu ($WGPU_BACKEND) | $ours |"
torch_rate=$("$PY" bench/pytorch_finetune.py --model-dir "$TRAIN_MODEL" --data "$DATA" --max-steps "$TRAIN_STEPS" --cuda 2>/dev/null \
  | tail -1 | "$PY" -c 'import sys, json; print(round(json.load(sys.stdin)["pairs_per_second"], 1))' 2>/dev/null) \
  || torch_rate="PyTorch CUDA (with transformers) is not available here"
echo "| transformers' Trainer, PyTorch CUDA fp32 (TF32 off) | $torch_rate |"
