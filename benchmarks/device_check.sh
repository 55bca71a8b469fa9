#!/usr/bin/env bash
# The GPU check, run on a lent CUDA machine (see benchmarks/RESULTS.md, "GPU" tables):
# throughput and MFU of the default step in bf16, and a real `selfsup pretrain` epoch through
# Lightning on the GPU. Wheels missing there (kornia) travel in .whl/, Fashion-MNIST in .fmnist/.
#   bash benchmarks/device_check.sh OUT_DIR
set -uo pipefail
out=${1:-/tmp/device_check}
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
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$out/gpu.txt"
cp benchmarks/RESULTS.md /tmp/results_before.md
python3 benchmarks/throughput.py --device cuda --no-lightly 2>&1 | tee "$out/throughput.log"
python3 benchmarks/mfu.py --device cuda --batch-size 256 1024 4096 2>&1 | tee "$out/mfu.log"
diff /tmp/results_before.md benchmarks/RESULTS.md | sed -n 's/^> //p' > "$out/results_added.md"
timeout 240 python3 -m selfsup.cli pretrain --epochs 2 --run-dir /tmp/gpu_run --no-progress \
  2>&1 | tail -25 | tee "$out/pretrain.log"
cp /tmp/gpu_run/eval.json /tmp/gpu_run/config.yaml "$out/" 2>/dev/null
tail -3 /tmp/gpu_run/metrics.jsonl > "$out/metrics_tail.jsonl" 2>/dev/null
ls benchmarks/out/*.json >/dev/null 2>&1 && cat benchmarks/out/*.json > "$out/records.json"
exit 0
