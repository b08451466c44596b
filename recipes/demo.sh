#!/usr/bin/env bash
# The recipe of Duet's default model (the `demo` preset), end to end on a 2-core CPU:
#
#   bash recipes/demo.sh [OUT=runs/demo]            # -> OUT/fusion/final, the shipped bundle
#   ROPE_SCALE=1.0 bash recipes/demo.sh runs/unscaled   # the unscaled-RoPE comparison model
#
# 1. data: 5,120 world clips (seeds 0-5119, half bounce half talk) -> demo-codec latents and
#    MiniLM contexts, built by two processes at once (DATA, default data/world);
# 2. stage "audio" (Ovi stage 1): the audio tower alone, scaled RoPE from the start;
# 3. stage "video": the video tower alone (a small model has no pretrained video tower);
# 4. stage "fusion" (Ovi stage 2): both towers + the cross-modal layers, every FFN frozen,
#    loss 0.85 L_v + 0.15 L_a, AdamW betas (0.9, 0.95).
# Each stage starts from the previous stage's exported (EMA) bundle. THREADS (default 2)
# sets torch's thread count; two recipes side by side run with THREADS=1 each.
set -euo pipefail
OUT=${1:-runs/demo}
DATA=${DATA:-data/world}
THREADS=${THREADS:-2}
ROPE_SCALE=${ROPE_SCALE:-}
export OMP_NUM_THREADS=$THREADS

if [ ! -d "$DATA/part1" ]; then
    duet data build -o "$DATA/part0" --clips 2560 --start-seed 0 -q &
    duet data build -o "$DATA/part1" --clips 2560 --start-seed 2560 -q &
    wait
fi

model='{}'
if [ -n "$ROPE_SCALE" ]; then model="{\"audio\": {\"rope_time_scale\": $ROPE_SCALE}}"; fi
stage() {  # name, init_from ("" for a random init), steps, lr, ema_decay
    local init=null
    if [ -n "$2" ]; then init="\"$OUT/$2/final\""; fi
    mkdir -p "$OUT/$1"
    cat > "$OUT/$1.json" <<JSON
{"preset": "demo", "model": $model, "stage": "$1", "init_from": $init,
 "data": ["$DATA/part0", "$DATA/part1"], "batch_size": 8, "steps": $3, "lr": $4,
 "warmup_steps": 100, "ema_decay": $5, "checkpoint_every": 250, "keep_checkpoints": 2,
 "log_every": 50, "out_dir": "$OUT/$1", "seed": 0}
JSON
    if [ ! -f "$OUT/$1/final/model.safetensors" ]; then duet train "$OUT/$1.json" -q; fi
}
stage audio "" 1500 3e-4 0.995
stage video audio 1200 3e-4 0.995
stage fusion video 3200 2e-4 0.998
echo "done: $OUT/fusion/final"
