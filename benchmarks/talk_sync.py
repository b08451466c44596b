"""Does the generated face's mouth open on its syllables? Talk prompts, from the MP4s alone.

    python benchmarks/talk_sync.py [--model demo] [--clips 16] [--steps 25] [--no-fusion]

Captions come from held-out world seeds (>= 1,000,000); each clip is generated, written to
MP4, decoded, and `duet.eval.sync.mouth_speech_sync` correlates the mouth's opening with the
speech's loudness frame by frame. The real held-out clips of the same seeds give the
reference row. `--no-fusion` adds a row with the cross-modal attention off at inference.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from duet.data.world import HELDOUT_SEED_START, WorldConfig, make_clip
from duet.eval.sync import mouth_speech_sync
from duet.media import read_mp4
from duet.pipeline import DuetPipeline


def row(name: str, results: list[dict[str, float]]) -> str:
    corr = np.array([r["correlation"] for r in results])
    lag = np.array([r["best_lag"] for r in results])
    return (f"| {name} | {len(results)} | {np.mean(corr):.2f} | {np.median(corr):.2f} "
            f"| {np.mean(np.abs(lag) <= 1):.0%} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo", help="bundle directory or preset")
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--steps", type=int)
    p.add_argument("--no-fusion", action="store_true")
    args = p.parse_args()
    clips = [make_clip(HELDOUT_SEED_START + i, kind="talk") for i in range(args.clips)]
    print("| clips | n | mean correlation | median correlation | peak within 1 frame |\n|---|---|---|---|---|")
    world = WorldConfig()
    print(row("real", [mouth_speech_sync(c.video, c.audio, world.fps, world.sample_rate)
                       for c in clips]), flush=True)
    pipe = DuetPipeline.from_pretrained(args.model, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        for fusion in (True, False) if args.no_fusion else (True,):
            results = []
            for i, c in enumerate(clips):
                clip = pipe(c.caption, seed=i, steps=args.steps, cross_modal=fusion, progress=False)
                frames, audio, fps, sr = read_mp4(clip.save(Path(tmp) / "clip.mp4"))
                results.append(mouth_speech_sync(frames, audio, fps, sr))
            print(row(f"{args.model}, fusion {'on' if fusion else 'off'}", results), flush=True)


if __name__ == "__main__":
    main()
