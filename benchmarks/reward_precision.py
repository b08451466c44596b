"""How much decoding rollouts in bf16 (`duet rl` with `reward_bf16`) moves the RL rewards.

    python benchmarks/reward_precision.py [--model demo] [--clips 16] [--kinds bounce,talk]

Held-out world clips (seeds 1,000,000 + i) go through the model's frame codec (encode once),
then are decoded twice, in float32 and under bf16 autocast, each with the real waveform
beside it; every world reward (`duet.train.rl`) is computed on both. Reported per reward: the
mean and largest |change| against the spread of the reward over the clips (what the group
advantage divides by), the share of pixels that moved and the decode time of each. A change
well under the spread leaves the advantages, and so the run, as they were.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from duet.data.dataset import world_config_for
from duet.data.world import HELDOUT_SEED_START, make_clip
from duet.pipeline import DuetPipeline
from duet.train.rl import REWARDS, GeneratedClip
from duet.train.rl.trainer import reward_frames

NAMES = ("sync", "video_adherence", "motion", "audio_adherence")


def decode(codec, latents: torch.Tensor, bf16: bool) -> tuple[np.ndarray, float]:
    """The frames `duet rl` scores (its own decoding path), and the seconds it took."""
    t0 = time.perf_counter()
    frames = reward_frames(codec, latents, latents.shape[2], bf16)
    return frames, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo", help="bundle or preset whose frame codec decodes")
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--kinds", default="bounce,talk")
    args = p.parse_args()
    pipe = DuetPipeline.from_pretrained(args.model, device="cpu")
    codec = pipe.video_codec
    world = world_config_for(pipe.preset, kinds=tuple(args.kinds.split(",")))
    clips = [make_clip(HELDOUT_SEED_START + i, config=world) for i in range(args.clips)]
    video = torch.stack([torch.from_numpy(c.video).permute(3, 0, 1, 2) for c in clips])
    latents = codec.encode(video.float() / 127.5 - 1)
    full, t_full = decode(codec, latents, bf16=False)
    half, t_half = decode(codec, latents, bf16=True)
    moved = float((full != half).mean())

    def rewards(frames: np.ndarray, name: str) -> list[float]:
        return [REWARDS[name](GeneratedClip(frames[i], c.audio, world.fps, world.sample_rate,
                                            c.caption)) for i, c in enumerate(clips)]

    scores = {n: np.array([rewards(full, n), rewards(half, n)]) for n in NAMES}
    print(f"{args.clips} held-out clips ({args.kinds}); decode float32 {t_full:.1f} s, bf16 "
          f"{t_half:.1f} s ({t_full / t_half:.2f}x); pixels changed {moved:.1%}, mean |change| "
          f"{np.abs(full.astype(np.int16) - half).mean():.2f} grey levels\n")
    print("| reward | mean (float32) | spread over clips (std) | mean abs change | largest change |")
    print("|---|---|---|---|---|")
    for n, (a, b) in scores.items():
        d = np.abs(a - b)
        print(f"| {n} | {a.mean():.3f} | {a.std():.3f} | {d.mean():.4f} | {d.max():.4f} |")


if __name__ == "__main__":
    main()
