#!/usr/bin/env bash
# One prepared GPU check (about 4 minutes on one H200, at most ~7.5): the CUDA tests, then
# benchmarks/gpu_check.py part by part (batched FE vs direct on the presets, 64x64 generation,
# training throughput), each step in its own process under its own `timeout`, a failed or killed
# step recorded and the next one run anyway; everything lands in ${OUT:-out/gpu_check}
# (gpu_check.json, one log per step, steps.tsv), and a short summary is printed at the end.
#
#   bash benchmarks/gpu_check.sh                                   # on the GPU machine
#   OUT=/tmp/gpucheck bash benchmarks/gpu_check.sh --quick --device cpu   # dry run, ~1-2 min
#
# Arguments go to every gpu_check.py call (--device, --quick, --out). PYTHON picks the
# interpreter (default: .venv/bin/python when it imports torch, else python3, else python);
# GPU_CHECK_BUDGET (seconds, default 450) caps the whole run: later steps get what is left.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
OUT="${OUT:-out/gpu_check}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export OUT
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
BUDGET="${GPU_CHECK_BUDGET:-450}"
START=$SECONDS

if [[ -z "${PYTHON:-}" ]]; then
    for cand in "$REPO/.venv/bin/python" python3 python; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import torch" >/dev/null 2>&1; then
            PYTHON="$cand"
            break
        fi
    done
fi
if [[ -z "${PYTHON:-}" ]]; then
    echo "gpu_check: no python that imports torch (set PYTHON=...)" >&2
    exit 2
fi
echo "gpu_check: python $PYTHON, out $OUT, budget ${BUDGET}s"

rm -f "$OUT/gpu_check.json" "$OUT/steps.tsv" "$OUT"/cuda_tests.*
FAILED=0

# run_step NAME LIMIT_SECONDS CMD...: run under `timeout` (capped by what is left of the
# budget, keeping RESERVE seconds for the summary), log to $OUT/NAME.log, record rc and seconds
RESERVE=25
run_step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - (SECONDS - START) - RESERVE))
    if ((left < limit)); then limit=$left; fi
    if ((limit < 5)); then
        echo "gpu_check: step $name skipped: budget spent"
        printf '%s\t%s\t%s\n' "$name" 125 0 >>"$OUT/steps.tsv"
        FAILED=1
        return 0
    fi
    echo "== gpu_check step $name (timeout ${limit}s) =="
    local t0 t1 rc
    t0=$(date +%s.%N)
    set +e
    timeout -k 10 "$limit" "$@" --time-limit "$limit" 2>&1 | tee "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    set -e
    t1=$(date +%s.%N)
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')" \
        >>"$OUT/steps.tsv"
    if ((rc != 0)); then
        echo "gpu_check: step $name ended with rc $rc (recorded; going on)"
        FAILED=1
    fi
    return 0
}

PY=("$PYTHON" benchmarks/gpu_check.py --out "$OUT")
# 1. the CUDA tests (pytest -k "cuda or resolve_device"; "skipped: no CUDA" without a GPU)
run_step tests 60 "${PY[@]}" "$@" --part tests
# 2. the measured parts, one process each
run_step fe 70 "${PY[@]}" "$@" --part fe
run_step gen 140 "${PY[@]}" "$@" --part gen
run_step train 165 "${PY[@]}" "$@" --part train
# 3. the summary (merges steps.tsv and the pass/fail checks into the JSON)
set +e
timeout -k 5 20 "${PY[@]}" "$@" --part summary 2>&1 | tee "$OUT/summary.log"
rc=${PIPESTATUS[0]}
set -e
if ((rc != 0)); then FAILED=1; fi
echo "gpu_check: done in $((SECONDS - START)) s; JSON at $OUT/gpu_check.json"
exit "$FAILED"
