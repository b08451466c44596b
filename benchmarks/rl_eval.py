"""RL before/after on held-out world prompts: the rewards RL optimises, and the ruler's own
numbers beside them (to catch reward hacking).

    python benchmarks/rl_eval.py MODEL [MODEL ...] [--prompts 16] [--samples 2] [--steps N] \
        [--kinds bounce,talk] [--mp4 DIR] [--strip DIR] [--json FILE]

MODEL: a bundle directory or preset name (e.g. `demo`, the model before RL; `runs/rl/final`
after full-weight RL), or BUNDLE+ADAPTER for a LoRA run's adapter on its base bundle.
Prompts are captions of held-out world seeds (1,000,000 + i: never seen in training, nor by
RL, which draws training seeds); each is generated `--samples` times (seeds 0..) with the
preset's sampler and guidance (`--steps` overrides its step count). Per model, means over
all clips of:
- the RL rewards (`duet.train.rl`): sync, video adherence, motion, audio adherence, computed
  from the generated frames and waveform as the RL run computes them;
- the ruler from the written MP4 (what `duet eval sync` reports): paired events, median
  offset, within one frame, missed visual events, extra onsets;
- visual events per clip (floor contacts or mouth openings; the real held-out clips' count
  is printed first), the ball colour score and the share of ball frames whose colour is split
  over two blobs (`split_fraction`: a ball drawn twice, 0 in real clips), which a hacked
  reward would leave behind.
Every model after the first also gets its change against the first, paired clip by clip
(same prompt, same seed) and given ± one standard error over prompts
(`duet.eval.compare.paired_change`): a change under two standard errors is within the draw
of prompts.
--mp4 keeps the clips (then `duet eval sync DIR/*.mp4` re-measures them independently);
--strip writes one PNG per model: every 8th frame of each clip, the real clip below it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np

from duet.data.dataset import world_config_for
from duet.data.world import HELDOUT_SEED_START, make_clip
from duet.errors import InputError
from duet.eval.adherence import prompt_adherence
from duet.eval.compare import paired_change
from duet.eval.sync import measure_file, merge
from duet.eval.visual import split_fraction, visual_events
from duet.media import save_png
from duet.pipeline import DuetPipeline
from duet.train.rl import REWARDS, GeneratedClip

REWARD_NAMES = ("sync", "video_adherence", "motion", "audio_adherence")
PAIRED = (*REWARD_NAMES, "events_per_clip", "colour_score", "split_frames")


def load(model: str) -> DuetPipeline:
    """A bundle or preset, with a LoRA adapter merged for BUNDLE+ADAPTER."""
    base, _, adapter = model.partition("+")
    pipe = DuetPipeline.from_pretrained(base, device="cpu")
    return pipe.load_lora(adapter) if adapter else pipe


def evaluate(name: str, pipe: DuetPipeline, worlds: list, samples: int, steps: int | None,
             folder: Path, strip: Path | None) -> dict:
    """Per clip (NaN where a score does not apply: colour and split on talk clips) and
    pooled: the ruler's pairs from every clip together."""
    per_clip: dict[str, list[float]] = {n: [] for n in PAIRED}
    reports, rows = [], []
    for i, world in enumerate(worlds):
        for s in range(samples):
            clip = pipe(world.caption, seed=s, steps=steps, progress=False)
            frames, audio = clip.video.numpy(), clip.audio.numpy()
            generated = GeneratedClip(frames, audio, clip.fps, clip.sample_rate, world.caption)
            for n in REWARD_NAMES:
                per_clip[n].append(REWARDS[n](generated))
            reports.append(measure_file(clip.save(folder / f"{i:03d}_{s}.mp4"), kind=world.kind))
            per_clip["events_per_clip"].append(len(visual_events(frames, clip.fps, world.kind)))
            bounce = world.kind == "bounce"
            per_clip["colour_score"].append(
                prompt_adherence(frames, audio, world.caption)["colour_score"] if bounce
                else float("nan"))
            per_clip["split_frames"].append(split_fraction(frames) if bounce else float("nan"))
            if strip is not None:
                rows += [np.concatenate(list(frames[::8]), axis=1),
                         np.concatenate(list(world.video[::8]), axis=1)]
    if strip is not None:
        strip.mkdir(parents=True, exist_ok=True)
        save_png(strip / f"{name.replace('/', '_').replace('+', '_')}.png", np.concatenate(rows))
    sync = merge(reports)
    with warnings.catch_warnings():  # no bounce prompt: colour and split are NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        means = {n: float(np.nanmean(v)) for n, v in per_clip.items()}
    return {"model": name, **means,
            "ruler": sync.table_cells(), "pairs": len(sync.offsets_ms),
            "median_abs_offset_ms": sync.median_abs_offset_ms,
            "within_1_frame": sync.within_1_frame, "missed": sync.missed, "extra": sync.extra,
            "per_clip": {n: np.reshape(v, (len(worlds), samples)).tolist()
                         for n, v in per_clip.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="bundle dir, preset name, or BUNDLE+ADAPTER")
    p.add_argument("--prompts", type=int, default=16, help="held-out world prompts")
    p.add_argument("--samples", type=int, default=2, help="clips per prompt (seeds 0..)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the preset's)")
    p.add_argument("--kinds", default="bounce,talk", help="world clip kinds to draw")
    p.add_argument("--mp4", type=Path, help="keep the generated clips in this folder")
    p.add_argument("--strip", type=Path, help="folder for one frame-strip PNG per model")
    p.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = p.parse_args()
    pipes = {m: load(m) for m in args.models}
    world = world_config_for(next(iter(pipes.values())).preset, kinds=tuple(args.kinds.split(",")))
    worlds = [make_clip(HELDOUT_SEED_START + i, config=world) for i in range(args.prompts)]
    real = np.mean([len(visual_events(w.video, world.fps, w.kind)) for w in worlds])
    print(f"{args.prompts} held-out prompts (seeds {HELDOUT_SEED_START}..), {args.samples} "
          f"samples each; real clips: {real:.1f} visual events per clip\n")
    print("| model | sync reward | video adherence | motion | audio adherence | pairs "
          "| median offset ms | median abs offset ms | within 1 frame | within 2 frames | missed "
          "| extra | events / clip | colour score | split frames |\n" + "|---" * 15 + "|")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, pipe in pipes.items():
            folder = args.mp4 / name.replace("/", "_").replace("+", "_") if args.mp4 else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            r = evaluate(name, pipe, worlds, args.samples, args.steps, folder, args.strip)
            results.append(r)
            print(f"| {name} | {r['sync']:.3f} | {r['video_adherence']:.3f} | {r['motion']:.3f} | "
                  f"{r['audio_adherence']:.3f} | {r['ruler']} | {r['events_per_clip']:.1f} | "
                  f"{r['colour_score']:.2f} | {r['split_frames']:.0%} |", flush=True)
    if len(results) > 1:
        print(f"\nChange against {results[0]['model']}, paired by prompt and seed, ± one standard "
              f"error over the {args.prompts} prompts:\n")
        print("| model | " + " | ".join(n.replace("_", " ") for n in PAIRED) + " |\n"
              + "|---" * (len(PAIRED) + 1) + "|")
        for r in results[1:]:
            cells = []
            for n in PAIRED:
                try:
                    cells.append(str(paired_change(results[0]["per_clip"][n], r["per_clip"][n])))
                except InputError:  # e.g. colour with fewer than 2 bounce prompts
                    cells.append("-")
            print(f"| {r['model']} | " + " | ".join(cells) + " |")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
