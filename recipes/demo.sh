#!/usr/bin/env bash
# The recipe of Duet's default model (the `demo` preset), end to end on a 2-core CPU:
#
#   bash recipes/demo.sh [OUT=runs/demo]                    # -> OUT/chunks/final
#   ROPE_SCALE=1.0 VIDEO_FROM=runs/demo/uncond2/final bash recipes/demo.sh runs/unscaled
#                                                           # the unscaled-RoPE comparison model
#
# 0. codec: the frame codec with two chroma channels (`duet codec train --chroma-channels 2
#    --chroma-weight 4`, ~10 min) -> OUT/codec/frames.safetensors; every stage names it
#    (`codecs.video.weights`) and every bundle carries a copy;
# 1. data: 3,072 world clips -> latents of that codec (18 channels), mel latents and MiniLM
#    contexts: part0 2,048 bounce clips (seeds 0-2047), part1 1,024 talk clips (seeds
#    2048-3071), built by two processes at once (DATA, default data/world-3k; OUT/data links
#    to it);
# 2. the `duet train` stages, whose configs are recipes/demo/<stage>.json (paths in them are
#    relative to OUT), each from the previous one's bundle (docs/default-model.md):
#    audio (Ovi stage 1: the audio tower alone, with its RoPE scale from the start);
#    pictures, clips, uncond, uncond2 (the video tower alone: single frames, then whole clips
#    at lr 3e-4, then at lr 1e-4 with text dropout 0.1, twice: 1,500 then 3,000 steps, each
#    with its own warmup and cosine decay; x0 head and x0 loss weighting, the
#    chroma channels' loss weighted 8x, extra weight on what moves and on the error's
#    frame-to-frame change; it does not depend on the audio RoPE, so a comparison run may
#    reuse it: VIDEO_FROM);
#    fusion (Ovi stage 2: each tower from its stage, the cross-modal layers new), joint (every
#    parameter, one t per modality), align, align2, align3 (the temporal-alignment prior,
#    then times shifted toward noise: what makes the sound follow the picture). The video tower
#    stays as the `uncond2` stage left it (`keep_towers`: only its fusion layers train): the
#    fusion stage that trained it lost half its bounces. Every stage after the video tower
#    keeps text dropout 0.1, the unconditional prediction the default guidance needs.
#    chunks: the joint model's video tower alone, 600 steps on 49-frame windows taken
#    anywhere in the clips, half of them holding their first 1-6 latent frames clean
#    (`video_prefix`): the task of a long clip's next chunk, and more thuds within two frames.
#    With RL=1 two more stages follow (46 min; not in the shipped weights: the picture gains
#    events but the sound follows it less, docs/rl.md § "Run 9"):
#    rl: OmniNFT (`duet rl recipes/demo/rl.json`, 48 steps of 4 prompts x 7 rollouts of 5
#    sampling steps, LoRA), rewarded for sync, the named colour, motion and the material's
#    sound: the balls fall and bounce more; its adapter is merged into OUT/rl/merged
#    (`duet convert --lora`);
#    realign: align3's setting for 400 steps from rl/merged, the video tower kept: the sound
#    follows the new picture again.
# 3. SHIP=DIR (e.g. SHIP=src/duet/assets/demo): write the last stage's bundle there in
#    bfloat16, the form the package ships and `duet generate` loads by default, with the
#    sampler defaults of the `demo` preset the stages recorded (video text CFG off, empty
#    negative prompts: docs/default-model.md).
# STAGES (default: all of them, in order) runs a subset; a stage whose final bundle exists is
# skipped, an interrupted one resumes from its newest checkpoint, and fusion waits for its
# two inputs to appear, so stages can run in two processes. ROPE_SCALE sets the audio RoPE
# factor of every stage (`duet train --set model.audio.rope_time_scale=...`).
# THREADS (default 2) sets torch's thread count (THREADS=1 for two processes side by side).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/demo" && pwd)
OUT=${1:-runs/demo}
DATA=${DATA:-data/world-3k}
STAGES=${STAGES:-audio pictures clips uncond uncond2 fusion joint align align2 align3 chunks}
if [ -n "${RL:-}" ]; then STAGES="$STAGES rl realign"; fi
export OMP_NUM_THREADS=${THREADS:-2}
SET=()
if [ -n "${ROPE_SCALE:-}" ]; then SET+=(--set "model.audio.rope_time_scale=$ROPE_SCALE"); fi
VIDEO_FROM=$(realpath -m "${VIDEO_FROM:-$OUT/uncond2/final}")

mkdir -p "$OUT/codec"
CODEC=$(realpath "$OUT/codec/frames.safetensors")
if [ ! -f "$CODEC" ]; then
    duet codec train -o "$CODEC" --chroma-channels 2 --chroma-weight 4 -q
fi
if [ ! -f "$DATA/part0/captions.json" ] || [ ! -f "$DATA/part1/captions.json" ]; then
    OMP_NUM_THREADS=1 duet data build -o "$DATA/part0" --clips 2048 --start-seed 0 \
        --kinds bounce --video-codec-weights "$CODEC" -q &
    OMP_NUM_THREADS=1 duet data build -o "$DATA/part1" --clips 1024 --start-seed 2048 \
        --kinds talk --video-codec-weights "$CODEC" -q &
    wait
fi
mkdir -p "$OUT"
if [ ! -e "$OUT/data" ] || [ -L "$OUT/data" ]; then ln -sfn "$(realpath "$DATA")" "$OUT/data"; fi

LAST=$OUT/fusion/final
for s in $STAGES; do
    more=()
    if [ "$s" = fusion ]; then
        more=(--set "init_from.video=$VIDEO_FROM")
        while [ ! -f "$VIDEO_FROM/model.safetensors" ] || [ ! -f "$OUT/audio/final/model.safetensors" ]; do
            sleep 30
        done
    fi
    if [ "$s" = rl ]; then  # an adapter, merged into the bundle the next stage trains on
        if [ ! -f "$OUT/rl/merged/model.safetensors" ]; then
            (cd "$OUT" && duet rl "$HERE/rl.json" -q && duet convert chunks/final --lora rl/final --dtype float32 -o rl/merged)
        fi
    elif [ ! -f "$OUT/$s/final/model.safetensors" ]; then
        (cd "$OUT" && duet train "$HERE/$s.json" -q "${SET[@]}" "${more[@]}")
    fi
    LAST=$OUT/$s/final
    if [ "$s" = rl ]; then LAST=$OUT/rl/merged; fi
done
if [ -n "${SHIP:-}" ]; then
    duet convert "$LAST" --dtype bfloat16 -o "$SHIP"
fi
echo "done: $LAST"
