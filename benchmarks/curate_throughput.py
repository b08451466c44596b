"""Throughput of `duet data curate` (demo preset) on synthetic-world inputs.

    python benchmarks/curate_throughput.py [--inputs 12] [--scenes 3] [--workers 2] [--ray]

Each input is `--scenes` world bounce clips joined into one MP4 (a scene cut at each
join), so every stage runs: decode, scene detection, one clip per scene, loudness,
optical flow, the onsets-vs-motion sync score, caption (a sidecar .txt holding the first
scene's caption), encoding with the demo codecs and MiniLM.
The folder is written first (not timed); the timed part is the whole `curate` call,
worker start-up and model loading included. Prints one markdown row.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from duet.data.curate import CurateConfig, curate
from duet.data.world import make_clip
from duet.media import write_mp4


def write_inputs(folder: Path, inputs: int, scenes: int) -> None:
    for i in range(inputs):
        clips = [make_clip(1000 + scenes * i + k, kind="bounce") for k in range(scenes)]
        video = np.concatenate([c.video for c in clips])
        audio = np.concatenate([c.audio for c in clips])
        path = write_mp4(folder / f"input-{i:03d}.mp4", video, audio, 24, 16000)
        path.with_suffix(".txt").write_text(clips[0].caption)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", type=int, default=12)
    p.add_argument("--scenes", type=int, default=3, help="world clips joined per input")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ray", action="store_true", help="run as a local Ray Data pipeline")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_inputs(root / "in", args.inputs, args.scenes)
        t0 = time.perf_counter()
        s = curate(root / "in", root / "out", CurateConfig(workers=args.workers),
                   ray=args.ray, progress=False)
        wall = time.perf_counter() - t0
    backend = "ray (local)" if args.ray else "processes"
    print("| backend | workers | CPUs | inputs | clips measured | clips kept | wall s | "
          "clips/min | kept/min |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {backend} | {args.workers} | {os.cpu_count()} | {s.inputs} | {s.rows} | "
          f"{s.clips_kept} | {wall:.1f} | {60 * s.rows / wall:.1f} | {60 * s.clips_kept / wall:.1f} |")


if __name__ == "__main__":
    main()
