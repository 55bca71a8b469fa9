#!/usr/bin/env bash
# The GPU check, run on a lent CUDA machine (see benchmarks/RESULTS.md, "GPU" tables):
# throughput and MFU of the default step in bf16, a real `selfsup pretrain` through Lightning on
# the GPU, and (METHODS set) a short pretrain + kNN of each named method, which is the only place
# their CUDA paths (queues, top-k mixing, per-sample temperatures, sorting networks, guided
# batches) run at all. Wheels missing there (kornia) travel in .whl/, Fashion-MNIST in .fmnist/.
#   bash benchmarks/device_check.sh OUT_DIR
#   MFU_BATCHES="" METHODS="simclr dcl moco" BUDGET=20s bash benchmarks/device_check.sh OUT_DIR
# Each part writes into OUT_DIR as it finishes, so a run cut short still returns what it did,
# and into few files (the device tool brings back at most 8).
set -uo pipefail
out=${1:-/tmp/device_check}
mfu_batches=${MFU_BATCHES-256 1024 4096 16384}
methods=${METHODS-}
budget=${BUDGET:-20s}
cd "$(dirname "$0")/.."  # the checkout (or a snapshot of it) that holds this script
mkdir -p "$out"
whl=$(ls .whl/*.whl ../.whl/*.whl 2>/dev/null)
if [ -n "$whl" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site $whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
[ -d .fmnist ] && export SELFSUP_DATA_DIR=$PWD/.fmnist
[ -d ../.fmnist ] && export SELFSUP_DATA_DIR=$PWD/../.fmnist
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/bench.log"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$out/bench.log"
cp benchmarks/RESULTS.md /tmp/results_before.md
python3 benchmarks/throughput.py --device cuda --no-lightly 2>&1 | tee -a "$out/bench.log"
if [ -n "$mfu_batches" ]; then
  python3 benchmarks/mfu.py --device cuda --batch-size $mfu_batches 2>&1 | tee -a "$out/bench.log"
fi
diff /tmp/results_before.md benchmarks/RESULTS.md | sed -n 's/^> //p' > "$out/results_added.md"
if [ -z "$methods" ]; then
  timeout 240 python3 -m selfsup.cli pretrain --epochs 2 --run-dir /tmp/gpu_run --no-progress \
    2>&1 | tail -25 | tee "$out/pretrain.log"
  cp /tmp/gpu_run/eval.json "$out/" 2>/dev/null
  tail -3 /tmp/gpu_run/metrics.jsonl >> "$out/pretrain.log" 2>/dev/null
fi
for method in $methods; do
  run=/tmp/gpu_runs/$method
  echo "== $method $(date -u +%T)" >> "$out/methods.log"
  timeout 150 python3 -m selfsup.cli pretrain --method "$method" --time-budget "$budget" \
    --run-dir "$run" --no-progress --no-eval 2>&1 | tail -12 >> "$out/methods.log"
  timeout 90 python3 -m selfsup.cli evaluate "$run" --protocol knn,raw_knn 2>&1 | tail -4 \
    >> "$out/methods.log"
  echo "$method done $(date -u +%T)"
done
ls benchmarks/out/*.json >/dev/null 2>&1 && cat benchmarks/out/*.json > "$out/records.json"
exit 0
