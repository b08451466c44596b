#!/usr/bin/env bash
# The video tower of the next default model, alone (docs/default-model.md, "A frame codec
# that keeps colour in two channels"): a frame codec with two chroma channels, 1,024 world
# clips encoded with it, then three `duet train` stages whose configs sit beside this
# script, each from the previous one's bundle:
#   codec     `duet codec train --chroma-channels 2 --chroma-weight 4` (18 latent channels);
#   pictures  8,000 steps x 64 single frames (video_frames 1), x0 head, x0 loss weighting,
#             the two chroma channels' loss weighted 8x (every stage);
#   clips     2,000 steps x 8 whole clips;
#   uncond    1,200 steps with text_dropout 0.1 (the unconditional prediction text CFG needs).
# The stage configs name the codec under `codecs.video.weights`; every bundle carries a copy.
# Run from the folder that should hold data/ and runs/; a step whose output exists is
# skipped, an interrupted stage resumes.
#   bash recipes/video_tower/run.sh
#   python benchmarks/video_quality.py runs/video_tower/uncond/final --clips 16 --strip strips
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=${THREADS:-2}
CODEC=runs/video_tower/frames-chroma.safetensors
if [ ! -f "$CODEC" ]; then
    mkdir -p runs/video_tower
    duet codec train -o "$CODEC" --chroma-channels 2 --chroma-weight 4 -q
fi
if [ ! -f data/video_tower_chroma/captions.json ]; then
    duet data build -o data/video_tower_chroma --clips 1024 --shard-size 256 \
        --video-codec-weights "$CODEC" -q
fi
for s in pictures clips uncond; do
    if [ ! -f "runs/video_tower/$s/final/model.safetensors" ]; then
        duet train "$HERE/$s.json" -q
    fi
done
