#!/usr/bin/env bash
# The video tower of the next default model, alone (docs/default-model.md, "Image
# pretraining, then clips"): 1,024 world clips, then three `duet train` stages whose configs
# sit beside this script, each from the previous one's bundle:
#   pictures  1,500 steps x 64 single frames (video_frames 1), x0 head, x0 loss weighting;
#   clips     2,000 steps x 8 whole clips;
#   uncond    1,200 steps with text_dropout 0.1 (the unconditional prediction text CFG needs).
# About 75 min on 2 idle CPU cores. Run from the folder that should hold data/ and runs/;
# a stage whose final bundle exists is skipped, an interrupted one resumes.
#   bash recipes/video_tower/run.sh
#   python benchmarks/video_quality.py runs/video_tower/uncond/final --clips 16 --strip strips
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=${THREADS:-2}
if [ ! -f data/video_tower/captions.json ]; then
    duet data build -o data/video_tower --clips 1024 --shard-size 256 -q
fi
for s in pictures clips uncond; do
    if [ ! -f "runs/video_tower/$s/final/model.safetensors" ]; then
        duet train "$HERE/$s.json" -q
    fi
done
