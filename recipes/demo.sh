#!/usr/bin/env bash
# The recipe of Duet's default model (the `demo` preset), end to end on a 2-core CPU:
#
#   bash recipes/demo.sh [OUT=runs/demo]                    # -> OUT/fusion/final, the shipped bundle
#   ROPE_SCALE=1.0 VIDEO_FROM=runs/demo/video/final bash recipes/demo.sh runs/unscaled
#                                                           # the unscaled-RoPE comparison model
#
# 0. codec: the learned frame codec (duet codec train, ~15 min), written into the package as
#    the shipped one when it is not there yet (it is part of the default model);
# 1. data: 5,120 world clips (seeds 0-5119, half bounce half talk) -> demo-codec latents and
#    MiniLM contexts, built by two processes at once (DATA, default data/world);
# 2. stage "audio" (Ovi stage 1): the audio tower alone, with its RoPE scale from the start;
# 3. stage "video": the video tower alone (a small model has no pretrained video tower; it
#    does not depend on the audio RoPE, so a comparison run may reuse it: VIDEO_FROM);
# 4. stage "fusion" (Ovi stage 2): each tower from its stage, the cross-modal layers new,
#    every FFN frozen, loss 0.85 L_v + 0.15 L_a, AdamW betas (0.9, 0.95).
# 5. sync stages, each from the previous one's bundle (docs/default-model.md):
#    "joint" 600 steps, every parameter, one t per modality, loss 0.5/0.5;
#    "partner" 500 steps of stage fusion with clean_partner 0.5 (v2a / a2v items);
#    "align" sets the temporal-alignment prior (alignment_prior 4) and trains 200 steps with
#    the cross-attention's query and fusion-key projections and norms frozen (so the prior
#    holds), loss 0.3 L_v + 0.7 L_a; "align2" (600 steps) and "align3" (1,000 steps) go on
#    with times shifted toward noise (time_shift 3), where timing from the partner matters.
# 6. SHIP=DIR (e.g. SHIP=src/duet/assets/demo): write the last stage's bundle there in
#    bfloat16, the form the package ships and `duet generate` loads by default.
# STAGES (default: all of them, in order) runs a subset; a stage whose final bundle exists is
# skipped, and fusion waits for its two inputs to appear, so stages can run in two processes.
# THREADS (default 2) sets torch's thread count (THREADS=1 for two processes side by side).
set -euo pipefail
OUT=${1:-runs/demo}
DATA=${DATA:-data/world}
THREADS=${THREADS:-2}
ROPE_SCALE=${ROPE_SCALE:-}
STAGES=${STAGES:-audio video fusion joint partner align align2 align3}
VIDEO_FROM=${VIDEO_FROM:-$OUT/video/final}
export OMP_NUM_THREADS=$THREADS

CODEC=$(python -c "from duet.codecs.frames import SHIPPED; from importlib import resources; print(resources.files('duet') / 'assets' / 'codecs' / SHIPPED)")
if [ ! -f "$CODEC" ]; then
    mkdir -p "$(dirname "$CODEC")"
    duet codec train -o "$CODEC" -q
fi
if [ ! -d "$DATA/part1" ]; then
    OMP_NUM_THREADS=1 duet data build -o "$DATA/part0" --clips 2560 --start-seed 0 -q &
    OMP_NUM_THREADS=1 duet data build -o "$DATA/part1" --clips 2560 --start-seed 2560 -q &
    wait
fi

model='{}'
if [ -n "$ROPE_SCALE" ]; then model="{\"audio\": {\"rope_time_scale\": $ROPE_SCALE}}"; fi
stage() {  # name, out folder, init_from (JSON), steps, lr, ema_decay, [warmup, seed, more keys]
    mkdir -p "$2"
    cat > "$2.json" <<JSON
{"preset": "demo", "model": $model, "stage": "$1", "init_from": $3,
 "data": ["$DATA/part0", "$DATA/part1"], "batch_size": 8, "steps": $4, "lr": $5,
 "warmup_steps": ${7:-100}, "ema_decay": $6, "checkpoint_every": 100, "keep_checkpoints": 2,
 "log_every": 50, "out_dir": "$2", "seed": ${8:-0}${9:-}}
JSON
    if [ ! -f "$2/final/model.safetensors" ]; then duet train "$2.json" -q; fi
}
PIN='"*.cross_attn.q.*", "*.cross_attn.k_fusion.*", "*.cross_attn.norm_q.*", "*.cross_attn.norm_k_fusion.*", "*.cross_attn.norm_k.*"'
ALIGN=", \"freeze\": [$PIN], \"independent_t\": true, \"clean_partner\": 0.5, \"video_weight\": 0.3, \"audio_weight\": 0.7"
SHIFT=", \"timestep_sampler\": \"shifted\", \"time_shift\": 3.0"
LAST=fusion
for s in $STAGES; do
    case $s in
        audio) stage audio "$OUT/audio" null 600 3e-4 0.99 ;;
        video) stage video "$OUT/video" null 1200 3e-4 0.995 ;;
        fusion)
            while [ ! -f "$VIDEO_FROM/model.safetensors" ] || [ ! -f "$OUT/audio/final/model.safetensors" ]; do
                sleep 30
            done
            stage fusion "$OUT/fusion" "{\"video\": \"$VIDEO_FROM\", \"audio\": \"$OUT/audio/final\"}" \
                800 2e-4 0.995 ;;
        joint) stage full "$OUT/joint" "\"$OUT/fusion/final\"" 600 1e-4 0.99 50 3 \
                   ", \"independent_t\": true, \"video_weight\": 0.5, \"audio_weight\": 0.5" ;;
        partner) stage fusion "$OUT/partner" "\"$OUT/joint/final\"" 500 3e-4 0.99 50 4 \
                     ", \"independent_t\": true, \"clean_partner\": 0.5, \"video_weight\": 0.5, \"audio_weight\": 0.5" ;;
        align) stage full "$OUT/align" "\"$OUT/partner/final\"" 200 3e-4 0.95 20 5 \
                   "$ALIGN, \"alignment_prior\": 4.0" ;;
        align2) stage full "$OUT/align2" "\"$OUT/align/final\"" 600 3e-4 0.98 20 6 "$ALIGN$SHIFT" ;;
        align3) stage full "$OUT/align3" "\"$OUT/align2/final\"" 1000 3e-4 0.99 20 7 "$ALIGN$SHIFT" ;;
    esac
    LAST=$s
done
if [ -n "${SHIP:-}" ]; then
    duet convert "$OUT/$LAST/final/model.safetensors" --preset demo --dtype bfloat16 -o "$SHIP"
fi
echo "done: $OUT/$LAST/final"
