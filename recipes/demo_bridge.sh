#!/usr/bin/env bash
# The `demo-bridge` comparison model (MOVA's asymmetric towers at demo scale), on the same
# data and video tower as the default model, on a 2-core CPU:
#
#   VIDEO_FROM=runs/demo/video/final bash recipes/demo_bridge.sh [OUT=runs/demo-bridge]
#
# Run `recipes/demo.sh` first: this recipe reuses its frame codec, its data (DATA, default
# data/world) and its `video` stage (the bridge preset keeps the demo's video tower).
# 1. stage "audio": the small audio tower (dim 128, 2 blocks) alone, with the aligned
#    time axis of the bridge preset (audio RoPE unscaled: the bridge maps the two rates);
# 2. stage "fusion": video tower from VIDEO_FROM, audio tower from step 1, the bridge new;
#    FFNs frozen, 0.85 L_v + 0.15 L_a, as the symmetric model's fusion stage (so the two
#    fusion bundles differ only in how the towers are joined);
# 3. stage "sync": every parameter, 600 steps, one t per modality, clean_partner 0.5, times
#    shifted toward noise (time_shift 3), loss 0.5 / 0.5 (the symmetric model's post-fusion
#    stages in one; there is no alignment prior for a bridge, whose RoPE is aligned already).
# THREADS (default 2) sets torch's thread count.
set -euo pipefail
OUT=${1:-runs/demo-bridge}
DATA=${DATA:-data/world}
VIDEO_FROM=${VIDEO_FROM:-runs/demo/video/final}
export OMP_NUM_THREADS=${THREADS:-2}

stage() {  # name, out folder, init_from (JSON), steps, lr, ema_decay, [warmup, seed, more keys]
    mkdir -p "$2"
    cat > "$2.json" <<JSON
{"preset": "demo-bridge", "stage": "$1", "init_from": $3,
 "data": ["$DATA/part0", "$DATA/part1"], "batch_size": 8, "steps": $4, "lr": $5,
 "warmup_steps": ${7:-100}, "ema_decay": $6, "checkpoint_every": 100, "keep_checkpoints": 2,
 "log_every": 50, "out_dir": "$2", "seed": ${8:-0}${9:-}}
JSON
    if [ ! -f "$2/final/model.safetensors" ]; then duet train "$2.json" -q; fi
}
stage audio "$OUT/audio" null 600 3e-4 0.99
stage fusion "$OUT/fusion" "{\"video\": \"$VIDEO_FROM\", \"audio\": \"$OUT/audio/final\"}" 800 2e-4 0.995
stage full "$OUT/sync" "\"$OUT/fusion/final\"" 600 2e-4 0.99 20 8 \
    ", \"independent_t\": true, \"clean_partner\": 0.5, \"video_weight\": 0.5, \"audio_weight\": 0.5, \"timestep_sampler\": \"shifted\", \"time_shift\": 3.0"
echo "done: $OUT/sync/final"
