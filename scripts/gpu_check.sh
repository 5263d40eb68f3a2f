#!/usr/bin/env bash
# One command on a machine with one CUDA GPU: forward latency and memory of DMTNet-T/B and Restormer at 1680 x 1120
# (fp32, bf16, bf16 + compile), DMTNet-B training speed at 512 x 512 batch 8 (bf16, eager and compiled) and a
# 200-iteration DMTNet-T training in bf16 with validation and EMA; one table, within about 8 minutes.
# Details in scripts/gpu_check.py and docs/performance.md.
#
#   bash scripts/gpu_check.sh                     # PYTHON=/path/to/python to choose the interpreter
#   GPU_CHECK_SMOKE=1 bash scripts/gpu_check.sh   # CPU dry run at tiny sizes (tests/test_gpu_check.py)
#
# Without a GPU it stops at once (exit status 2) with a message saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"

if [[ "${GPU_CHECK_SMOKE:-0}" == "1" ]]; then
    exec "$PYTHON" scripts/gpu_check.py --smoke "$@"
fi
if ! command -v nvidia-smi > /dev/null 2>&1 || ! nvidia-smi -L > /dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi is missing or lists none). This check needs one CUDA GPU;" \
        "for a CPU dry run of its steps at tiny sizes, set GPU_CHECK_SMOKE=1." >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
exec "$PYTHON" scripts/gpu_check.py "$@"
