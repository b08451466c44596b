#!/usr/bin/env bash
# The `demo-bridge` comparison model (MOVA's asymmetric towers at demo scale), on the same
# data and video tower as the default model, on a 2-core CPU:
#
#   VIDEO_FROM=runs/demo/uncond/final bash recipes/demo_bridge.sh [OUT=runs/demo-bridge]
#
# Run `recipes/demo.sh` first: this recipe reuses its frame codec (../demo/codec from OUT),
# its data (DATA, default data/world-3k; OUT/data links to it) and its video tower, the
# `uncond` stage (the bridge preset keeps the demo's video tower). The `duet train` configs are recipes/demo_bridge/<stage>.json, with
# paths relative to OUT:
# 1. audio: the small audio tower (dim 128, 2 blocks) alone, with the aligned time axis of
#    the bridge preset (audio RoPE unscaled: the bridge maps the two rates);
# 2. fusion: video tower from VIDEO_FROM, audio tower from step 1, the bridge new; FFNs
#    frozen, 0.85 L_v + 0.15 L_a, as the symmetric model's fusion stage (so the two fusion
#    bundles differ only in how the towers are joined);
# 3. sync: every parameter, one t per modality, clean_partner 0.5, times shifted toward
#    noise, loss 0.5 / 0.5 (the symmetric model's post-fusion stages in one; there is no
#    alignment prior for a bridge, whose RoPE is aligned already).
# A stage whose final bundle exists is skipped; an interrupted one resumes.
# THREADS (default 2) sets torch's thread count.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/demo_bridge" && pwd)
OUT=${1:-runs/demo-bridge}
DATA=${DATA:-data/world-3k}
VIDEO_FROM=$(realpath -m "${VIDEO_FROM:-runs/demo/uncond/final}")
export OMP_NUM_THREADS=${THREADS:-2}

mkdir -p "$OUT"
if [ ! -e "$OUT/data" ] || [ -L "$OUT/data" ]; then ln -sfn "$(realpath "$DATA")" "$OUT/data"; fi
for s in audio fusion sync; do
    more=()
    if [ "$s" = fusion ]; then more=(--set "init_from.video=$VIDEO_FROM"); fi
    if [ ! -f "$OUT/$s/final/model.safetensors" ]; then
        (cd "$OUT" && duet train "$HERE/$s.json" -q "${more[@]}")
    fi
done
echo "done: $OUT/sync/final"
