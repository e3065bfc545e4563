#!/usr/bin/env bash
# Checks the CUDA training path on a machine with an NVIDIA GPU: builds the training
# comparison (services/strategy/examples/gpu_check.rs) with `--features cuda` in release, trains
# the original ktrdr's network (36-128-64-32-3, Adam, no dropout) from the same initial weights
# on the CPU and on the GPU with the same batches, and prints samples/s of both, the GPU's name
# and how far the final test accuracy and loss differ. Exits 1 when they differ by more than the
# tolerances (floating-point rounding only: default 0.01 each). When PyTorch with CUDA can be
# imported (python3, or $KTRDR_GPU_CHECK_PYTHON), it also times PyTorch on the GPU with the same
# network, rows, batch and epochs (scripts/bench_torch.py --device cuda).
#
# Without nvidia-smi or a GPU it says so and exits 0.
#
#   scripts/gpu-check.sh                       # defaults: batch 4096, 10 epochs, 200 000 rows
#   GPU_CHECK_BATCH=8192 GPU_CHECK_EPOCHS=20 scripts/gpu-check.sh
#   GPU_CHECK_BIN=path/to/gpu_check scripts/gpu-check.sh   # a binary built elsewhere, no cargo
#
# On a GPU machine without cargo or network, build the binary where cargo is (burn 0.21's
# `cuda` needs no CUDA toolkit or driver to build) and bring it along:
#   cargo build --release -p ktrdr-strategy --features cuda --example gpu_check
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu-check: no GPU here (nvidia-smi is not installed); nothing to check"
  exit 0
fi
gpus=$(nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true)
if [ -z "$gpus" ]; then
  echo "gpu-check: no GPU here (nvidia-smi lists none); nothing to check"
  exit 0
fi

ordinal="${GPU_CHECK_DEVICE:-0}"
batch="${GPU_CHECK_BATCH:-4096}"
epochs="${GPU_CHECK_EPOCHS:-10}"
train_rows="${GPU_CHECK_TRAIN_ROWS:-200000}"
eval_rows="${GPU_CHECK_EVAL_ROWS:-20000}"
tolerance="${GPU_CHECK_TOLERANCE:-0.01}"
echo "gpu-check: GPUs (index, name, memory, driver):"
echo "$gpus" | sed 's/^/  /'
name=$(echo "$gpus" | awk -F', ' -v i="$ordinal" '$1 == i {print $2}')
echo "gpu-check: training on cuda:$ordinal (${name:-unknown}) and on the CPU; batch $batch, $epochs epochs, $train_rows rows"

bin="${GPU_CHECK_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release -p ktrdr-strategy --features cuda --example gpu_check
  bin="${CARGO_TARGET_DIR:-target}/release/examples/gpu_check"
fi
status=0
result=$("$bin" --device "cuda:$ordinal" --batch "$batch" --epochs "$epochs" \
  --train-rows "$train_rows" --eval-rows "$eval_rows" \
  --accuracy-tolerance "$tolerance" --loss-tolerance "$tolerance") || status=$?
echo "$result"

python="${KTRDR_GPU_CHECK_PYTHON:-python3}"
torch_line="PyTorch CUDA: not measured (no PyTorch with CUDA for $python)"
if "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  torch=$("$python" scripts/bench_torch.py --device "cuda:$ordinal" --inputs 36 --hidden 128,64,32 \
    --batch "$batch" --train-rows "$train_rows" --eval-rows "$eval_rows" --epochs "$epochs" \
    --dropout 0 --threads "$(nproc)")
  torch_line="PyTorch CUDA: $torch"
fi

GPU_CHECK_RESULT="$result" python3 - <<'PY' || true
import json, os
r = json.loads(os.environ["GPU_CHECK_RESULT"])
print("| device | samples/s | test accuracy | test loss |")
print("|---|---:|---:|---:|")
print("| CPU (burn ndarray) | %.0f | %.4f | %.4f |" % (r["cpu_samples_per_second"], r["cpu_test_accuracy"], r["cpu_test_loss"]))
print("| %s (burn cuda) | %.0f | %.4f | %.4f |" % (r["device"], r["device_samples_per_second"], r["device_test_accuracy"], r["device_test_loss"]))
print("GPU / CPU: %.1fx; accuracy difference %.5f, loss difference %.5f (tolerance %s each): %s" % (
    r["speedup"], r["accuracy_difference"], r["loss_difference"], r["accuracy_tolerance"],
    "agree" if r["agree"] else "DISAGREE"))
PY
echo "$torch_line"
if [ "$status" -ne 0 ]; then
  echo "gpu-check: FAILED (the CPU and the GPU disagree beyond the tolerance, or the run failed)" >&2
fi
exit "$status"
