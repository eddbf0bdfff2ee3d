#!/usr/bin/env bash
# GPU check in one go (under 8 minutes on one H200, installation included):
#   1. a Python whose TensorFlow sees the GPU: the current one if it does, else a virtual
#      environment ($GPU_VENV, default ~/.cache/albert-tf-gpu-venv) with the project's
#      requirements and tensorflow[and-cuda]==2.20.* (reused when it is already there);
#   2. fp32-vs-mixed precision parity on the original fixture: tests/test_precision.py on
#      the GPU (TensorFloat-32 off for the float32 reference);
#   3. benchmarks/gpu_check.py: the pretraining step of ALBERT-base and -large at sequence
#      512, fp32 / bf16 / fp16, XLA on and off, albert_tf against tf-models-official, with
#      examples/s and MFU, in the time left of the budget (what does not fit is skipped
#      and listed).
#
# Usage (from anywhere):
#   benchmarks/gpu_check.sh [--quick] [more benchmarks/gpu_check.py flags]
# Environment:
#   GPU_CHECK_BUDGET_S  the whole script's budget in seconds (default 450)
#   GPU_VENV            where to create / reuse the GPU virtual environment
#   PIP_FIND_LINKS, PIP_NO_INDEX, PIP_INDEX_URL   pip's own settings, e.g. an offline
#                       wheelhouse: PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels benchmarks/gpu_check.sh
#   RESULTS_DIR         where to write gpu_check.json and the logs (default: $OUT if set,
#                       else a new temporary folder)
#   PARITY_TIMEOUT_S    limit of the parity tests (default 240)
#   GPU_CHECK_ALLOW_CPU=1  accept a Python without a GPU (a dry run of this script on a CPU:
#                       GPU_CHECK_ALLOW_CPU=1 PYTHON=.venv/bin/python benchmarks/gpu_check.sh
#                       --quick --config=tiny)
# Exit status: 1 if the parity tests fail or nothing could be measured, else 0.
set -uo pipefail

START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-450}
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
RESULTS_DIR=${RESULTS_DIR:-${OUT:-$(mktemp -d)}}
mkdir -p "$RESULTS_DIR"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

elapsed() { echo $(( $(date +%s) - START )); }
say() { echo "[gpu_check $(elapsed)s] $*"; }

sees_gpu() {  # $1: a python; true if its TensorFlow lists a GPU (or GPU_CHECK_ALLOW_CPU=1)
  [ "${GPU_CHECK_ALLOW_CPU:-0}" = 1 ] && "$1" -c "import tensorflow" >/dev/null 2>&1 && return 0
  "$1" - <<'EOF' >/dev/null 2>&1
import tensorflow as tf
raise SystemExit(0 if tf.config.list_physical_devices("GPU") else 1)
EOF
}

# --- 1. Python with GPU TensorFlow -----------------------------------------------------------
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
  --format=csv,noheader | sed 's/^/[gpu_check] GPU: /'
PY=""
for candidate in "${PYTHON:-}" "$REPO/.venv/bin/python" "${GPU_VENV:-$HOME/.cache/albert-tf-gpu-venv}/bin/python"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && sees_gpu "$candidate"; then
    PY="$candidate"; break
  fi
done
if [ -z "$PY" ]; then
  VENV=${GPU_VENV:-$HOME/.cache/albert-tf-gpu-venv}
  say "installing the GPU stack into $VENV"
  python3 -m venv "$VENV" || { say "cannot create a virtual environment"; exit 1; }
  PY="$VENV/bin/python"
  "$PY" -m pip install -q --upgrade pip &&
    "$PY" -m pip install -q -r requirements.txt -e . &&
    "$PY" -m pip install -q 'tensorflow[and-cuda]==2.20.*' ||
    { say "pip install failed (no network? set PIP_FIND_LINKS to a wheelhouse)"; exit 1; }
  sees_gpu "$PY" || { say "TensorFlow in $VENV sees no GPU:"; "$PY" -c \
    "import tensorflow as tf; print(tf.config.list_physical_devices())"; exit 1; }
fi
say "python: $PY ($("$PY" -c 'import tensorflow as tf; print("TensorFlow", tf.__version__)' 2>/dev/null))"

# --- 2. Precision parity on the original fixture ---------------------------------------------
say "tests/test_precision.py on the GPU"
timeout "${PARITY_TIMEOUT_S:-240}" "$PY" -m pytest -q -p no:cacheprovider tests/test_precision.py 2>&1 |
  tee "$RESULTS_DIR/test_precision.log" | tail -n 15
PARITY=${PIPESTATUS[0]}
say "parity tests: $([ "$PARITY" = 0 ] && echo passed || echo "FAILED (status $PARITY)")"

# --- 3. Throughput against tf-models-official ------------------------------------------------
LEFT=$(( BUDGET - $(elapsed) - 20 ))
if [ "$LEFT" -lt 60 ]; then
  say "only ${LEFT}s of the budget left: benchmark skipped"
  BENCH=1
else
  say "benchmarks/gpu_check.py with ${LEFT}s"
  timeout $(( LEFT + 120 )) "$PY" benchmarks/gpu_check.py --budget_s="$LEFT" \
    --results_json="$RESULTS_DIR/gpu_check.json" "$@" 2>&1 | tee "$RESULTS_DIR/gpu_check.log"
  BENCH=${PIPESTATUS[0]}
fi
say "done: parity status $PARITY, benchmark status $BENCH; results in $RESULTS_DIR"
[ "$PARITY" = 0 ] && [ "$BENCH" = 0 ]
