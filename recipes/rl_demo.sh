#!/usr/bin/env bash
# OmniNFT RL on Duet's default model (the shipped `demo` bundle), then before/after on
# held-out prompts, on a 2-core CPU:
#
#   bash recipes/rl_demo.sh [OUT=runs/rl_demo]            # OmniNFT, <= 2 h, then evaluation
#   ABLATIONS="full routing surgery reweighting" bash recipes/rl_demo.sh   # the paper's table
#   SHORT=1 bash recipes/rl_demo.sh runs/rl_short          # a few minutes: checks the plumbing
#   CONFIG=motion bash recipes/rl_demo.sh runs/rl_motion    # the video tower on the motion reward
#
# 1. RL (duet rl): world training captions (seeds 0-255), 2 prompts x 8 samples per step,
#    8 UniPC steps with the preset's guidance, rewards sync (joint) + video adherence +
#    audio adherence, LoRA rank 32 / alpha 64 / lr 3e-4 (DiffusionNFT's official setting;
#    FULL=1 trains every weight at lr 1e-5 instead), trained on the 2 noisiest of the 8 times.
#    Each name in ABLATIONS is one run in OUT/<name>: "full" is OmniNFT, "routing" /
#    "surgery" / "reweighting" switch that one component off (advantage_routing,
#    gradient_surgery, region_reweighting = false).
# 2. A LoRA run's adapter is merged into a bundle (OUT/<name>/merged), so every run is
#    evaluated as a plain bundle.
# 3. Evaluation on held-out captions (seeds >= 1,000,000): benchmarks/rl_eval.py (the rewards,
#    the ruler, events per clip, colour, frame strips; OUT/eval), `duet eval sync` on its MP4s
#    and benchmarks/video_quality.py (the video tower alone), before (the base bundle) and
#    after each run.
# Cost: a full step (16 rollouts of 8 steps, 32 training passes) takes 24-36 s on an idle
# 2-core machine (about 8 min beside other work), so the default 15 steps take 7.5 min and
# STEPS=200 fits in 2 h (docs/rl.md).
# The RL config is recipes/rl_demo/$CONFIG.json (default omninft; motion: bounce prompts, the
# motion and video-adherence rewards, the 4 noisiest of 8 times, 50 steps), with paths relative
# to OUT, where OUT/base links to the starting bundle, which is also the config's `preset`: any
# bundle (BASE) brings its own shape and codecs. SHORT, FULL, STEPS and each ablation change the
# config with `duet rl --set`.
# A finished run is skipped, an interrupted one resumes.
# THREADS (default 2) sets torch's thread count; BASE overrides the starting bundle.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/rl_demo" && pwd)
CONFIG=${CONFIG:-omninft}
OUT=${1:-runs/rl_demo}
ABLATIONS=${ABLATIONS:-full}
export OMP_NUM_THREADS=${THREADS:-2}
BASE=$(realpath -m "${BASE:-$(python -c "from importlib import resources; print(resources.files('duet') / 'assets' / 'demo')")}")

SET=()
if [ "${SHORT:-0}" = 1 ]; then  # the plumbing only: minutes, not a result
    SET+=(--set steps=2 --set group_size=2 --set sampling_steps=2 --set timestep_fraction=0.5)
    EVAL_PROMPTS=2 EVAL_SAMPLES=1 EVAL_STEPS=2
else
    if [ -n "${STEPS:-}" ]; then SET+=(--set "steps=$STEPS"); fi
    EVAL_PROMPTS=16 EVAL_SAMPLES=2 EVAL_STEPS=25
fi
if [ "${FULL:-0}" = 1 ]; then SET+=(--set lr=1e-5 --set lora=null); fi

mkdir -p "$OUT/eval"
if [ ! -e "$OUT/base" ] || [ -L "$OUT/base" ]; then ln -sfn "$BASE" "$OUT/base"; fi
models=("$BASE")
for name in $ABLATIONS; do
    case $name in
        full) switch=() ;;
        routing) switch=(--set advantage_routing=false) ;;
        surgery) switch=(--set gradient_surgery=false) ;;
        reweighting) switch=(--set region_reweighting=false) ;;
        *) echo "unknown ablation $name (full, routing, surgery, reweighting)" >&2; exit 2 ;;
    esac
    run=$OUT/$name
    if [ ! -f "$run/final/config.json" ] && [ ! -f "$run/final/adapter.json" ]; then
        (cd "$OUT" && duet rl "$HERE/$CONFIG.json" -q "${SET[@]}" --set "out_dir=$name" "${switch[@]}")
    fi
    if [ -f "$run/final/adapter.json" ]; then  # LoRA: merge the adapter into a bundle
        python -c "import sys; from duet.pipeline import DuetPipeline as P; P.from_pretrained(sys.argv[1]).load_lora(sys.argv[2]).save_pretrained(sys.argv[3])" \
            "$BASE" "$run/final" "$run/merged"
        models+=("$run/merged")
    else
        models+=("$run/final")
    fi
done

python benchmarks/rl_eval.py "${models[@]}" --prompts "$EVAL_PROMPTS" --samples "$EVAL_SAMPLES" \
    --steps "$EVAL_STEPS" --mp4 "$OUT/eval/mp4" --strip "$OUT/eval/strips" \
    --json "$OUT/eval/rl_eval.json" | tee "$OUT/eval/rl_eval.md"
for m in "$OUT"/eval/mp4/*/; do
    echo "duet eval sync $m"
    duet eval sync "$m"*.mp4 | tail -n 1
done | tee "$OUT/eval/eval_sync.txt"
python benchmarks/video_quality.py "${models[@]}" --clips "$EVAL_PROMPTS" --steps "$EVAL_STEPS" \
    | tee "$OUT/eval/video_quality.md"
