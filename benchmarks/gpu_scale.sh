#!/usr/bin/env bash
# Issue 10's scale run, prepared for a lent GPU (planned for about 9 minutes on one H200): 64x64
# mixed designs generated in batches by the torch SIMP on the GPU, a cvae trained there (bf16
# autocast, the Trainer's default on CUDA), and `evaluate` on held-out problems of that set.
# Everything small lands in ${OUT:-out/gpu_scale}: the model (best.pt), the evaluation report
# (report.json/.md/.html and PNGs), the training log and metrics, one log per step, steps.tsv.
# The dataset stays on the machine (hundreds of MB).
#
#   bash benchmarks/gpu_scale.sh                                   # on the GPU machine
#   OUT=/tmp/scale DEVICE=cpu PROBE=24 MAX_N=48 EPOCHS=1 PHYS_EPOCHS=1 LIMIT=4 \
#       bash benchmarks/gpu_scale.sh                               # dry run
#
# Steps, each under its own `timeout`, a failed step recorded and the rest run where they can:
#   1. probe:    generate PROBE designs to measure designs/s on this device at batch BATCH;
#   2. generate: N = min(MAX_N, rate * GEN_SECONDS) designs (seed 0, --ctol 3e-4: labels within a
#                median 0.1 % of the converged compliance, bench_labels.py), kept if cut short;
#   3. train:    a cvae (the 64x64 settings of the CPU run: latent 32, base width 16, depth 4,
#                beta 0.5, lr 2e-3) for EPOCHS epochs at batch TRAIN_BATCH; best.pt is written
#                every time validation improves, so a cut-short run still leaves a model;
#   4. physics:  PHYS_EPOCHS (default 3) epochs of the physics term from that model (weight 200,
#                PHYS_SAMPLES = 64 judged designs per batch, lr 3e-4, at most PHYS_SECONDS);
#                PHYS_EPOCHS=0 skips it; its best.pt (picked with the term) lands as physics.pt;
#   5. evaluate: `evaluate MODEL data --split test -k 8 --polish 10 --limit LIMIT`, MODEL the
#                fine-tuned model when step 4 left one, else the trained one (evaluated.txt says).
# Needs on the machine: torch (CUDA), numpy, scipy, h5py, click, matplotlib, tqdm, and the
# wheels of threadpoolctl, cma, markdown-it-py and mdurl (see the device notes on carrying
# wheels); the script stops at once, naming what is missing.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
OUT="${OUT:-out/gpu_scale}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
DEVICE="${DEVICE:-cuda}"
BATCH="${BATCH:-1024}"
PROBE="${PROBE:-1024}"
MAX_N="${MAX_N:-30000}"
GEN_SECONDS="${GEN_SECONDS:-150}"
EPOCHS="${EPOCHS:-40}"
TRAIN_BATCH="${TRAIN_BATCH:-256}"
TRAIN_SECONDS="${TRAIN_SECONDS:-240}"
PHYS_EPOCHS="${PHYS_EPOCHS:-3}"
PHYS_SAMPLES="${PHYS_SAMPLES:-64}"
PHYS_SECONDS="${PHYS_SECONDS:-120}"
LIMIT="${LIMIT:-300}"
WORK="${WORK:-/tmp/topovae_scale}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$WORK"
START=$SECONDS
: >"$OUT/steps.tsv"

missing=$("$PYTHON" - <<'EOF'
import importlib.util as u
need = ["torch", "numpy", "scipy", "h5py", "click", "matplotlib", "tqdm", "threadpoolctl", "cma",
        "markdown_it", "mdurl"]
print(" ".join(n for n in need if u.find_spec(n) is None))
EOF
)
if [[ -n "$missing" ]]; then
    echo "gpu_scale: missing Python packages: $missing" | tee "$OUT/missing.txt" >&2
    exit 2
fi
TOPOVAE=("$PYTHON" -m topovae)

# step NAME LIMIT CMD...: run under timeout, log to $OUT/NAME.log, record rc and seconds
step() {
    local name=$1 limit=$2
    shift 2
    echo "== gpu_scale step $name (timeout ${limit}s) =="
    local t0=$SECONDS
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >>"$OUT/steps.tsv"
    ((rc == 0)) || echo "gpu_scale: step $name ended with rc $rc"
    return "$rc"
}

# 1. the probe: designs/s of the batched generator on this device
rm -f "$WORK/probe.h5"
t0=$(date +%s.%N)
step probe 120 "${TOPOVAE[@]}" generate -n "$PROBE" --size 64x64 --device "$DEVICE" \
    --batch "$BATCH" --ctol 3e-4 --seed 1 --out "$WORK/probe.h5" -q
t1=$(date +%s.%N)
N=$(awk -v a="$t0" -v b="$t1" -v p="$PROBE" -v g="$GEN_SECONDS" -v m="$MAX_N" \
    'BEGIN{r = p / (b - a); n = int(r * g); if (n > m) n = m; if (n < 3 * p) n = 3 * p; print n}')
echo "gpu_scale: probe rate $(awk -v a="$t0" -v b="$t1" -v p="$PROBE" 'BEGIN{printf "%.1f", p/(b-a)}') designs/s; generating $N" \
    | tee -a "$OUT/probe.log"

# 2. the dataset (N sized from the probe; should it still be cut short, the probe's file is used)
DATA="$WORK/mixed64.h5"
rm -f "$DATA"
if ! step generate "$((GEN_SECONDS * 2))" "${TOPOVAE[@]}" generate -n "$N" --size 64x64 \
    --device "$DEVICE" --batch "$BATCH" --ctol 3e-4 --seed 0 --out "$DATA" -q; then
    echo "gpu_scale: generation cut short; training on the probe's $PROBE designs instead"
    DATA="$WORK/probe.h5"
fi
"${TOPOVAE[@]}" info "$DATA" 2>&1 | tee "$OUT/info.log"

# 3. training
rm -rf "$WORK/run"
step train "$TRAIN_SECONDS" "${TOPOVAE[@]}" train "$DATA" --model cvae --latent-dim 32 \
    --base-width 16 --depth 4 --beta 0.5 --kl-warmup 200 --epochs "$EPOCHS" \
    --batch-size "$TRAIN_BATCH" --lr 2e-3 --device "$DEVICE" --out "$WORK/run" -q
cp "$WORK/run/best.pt" "$WORK/run/metrics.csv" "$WORK/run/metrics.jsonl" "$OUT/" 2>/dev/null

# 4. the physics fine-tune: the FE compliance of each training problem's first design (prior mean)
#    relative to SIMP's, through the batched FE on the device (issue 10's route on the CPU took the
#    64x64 first-design median CE from 10.9 % to 8.8 %; benchmarks/route64.sh)
MODEL="$WORK/run/best.pt"
rm -rf "$WORK/phys"
if [[ -f "$MODEL" ]] && ((PHYS_EPOCHS > 0)); then
    step physics "$PHYS_SECONDS" "${TOPOVAE[@]}" train "$DATA" --model cvae --latent-dim 32 \
        --base-width 16 --depth 4 --beta 0.5 --kl-warmup 0 --epochs "$PHYS_EPOCHS" \
        --batch-size "$TRAIN_BATCH" --lr 3e-4 --compliance-weight 200 \
        --compliance-samples "$PHYS_SAMPLES" --init "$MODEL" --device "$DEVICE" --out "$WORK/phys" -q
    if [[ -f "$WORK/phys/best.pt" ]]; then
        MODEL="$WORK/phys/best.pt"
        cp "$WORK/phys/best.pt" "$OUT/physics.pt"
        cp "$WORK/phys/metrics.csv" "$OUT/physics_metrics.csv" 2>/dev/null
    fi
fi

# 5. evaluation on held-out problems of the same set (the fine-tuned model when there is one)
if [[ -f "$MODEL" ]]; then
    echo "gpu_scale: evaluating $MODEL" | tee "$OUT/evaluated.txt"
    step evaluate 180 "${TOPOVAE[@]}" evaluate "$MODEL" "$DATA" --split test -k 8 \
        --polish 10 --limit "$LIMIT" --device "$DEVICE" --out "$OUT/report" -q
fi
echo "gpu_scale: done in $((SECONDS - START)) s; files in $OUT"
cat "$OUT/steps.tsv"
