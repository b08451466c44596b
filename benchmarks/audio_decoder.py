"""The MelCodec's decoder on held-out world audio: how many sounds the round trip adds.

    python benchmarks/audio_decoder.py [--clips 16] [--synthesis-hops 512 256 128] [--iters 64]

Each real held-out clip (`--clips` bounce and as many talk) is encoded and decoded with
Griffin-Lim at each synthesis hop (512: the latents' own and the default, 50 % window
overlap; 256: 75 %). Per row and kind: onsets the ruler finds (`duet.media.onsets.audio_onsets`)
against the original's, how many of them lie within 40 ms of an original onset, the median
|offset| from each original onset to the nearest decoded one (within 100 ms), the RL
rewards `sync` and `audio_adherence` with the real picture (the ceiling a perfect model
reaches through this decoder), the log-spectral distance to the original (dB, STFT hop
256) and the decoder's time per clip.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from duet.codecs.mel import MelCodec
from duet.data.world import HELDOUT_SEED_START, WorldConfig, make_clip
from duet.media.onsets import audio_onsets
from duet.train.rl import REWARDS, GeneratedClip


def log_spectral_distance(y: np.ndarray, ref: np.ndarray) -> float:
    def db(x: np.ndarray) -> torch.Tensor:
        s = torch.stft(torch.as_tensor(x), 1024, 256, window=torch.hann_window(1024),
                       return_complex=True)
        return 20 * s.abs().clamp(min=1e-5).log10()
    return float(((db(y) - db(ref)) ** 2).mean(0).sqrt().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=16, help="held-out clips per kind")
    p.add_argument("--synthesis-hops", type=int, nargs="+", default=[512, 256])
    p.add_argument("--iters", type=int, default=64, help="Griffin-Lim iterations")
    args = p.parse_args()
    world = WorldConfig()
    codecs = {hop: MelCodec(synthesis_hop=hop, griffin_lim_iters=args.iters)
              for hop in args.synthesis_hops}
    encoder = next(iter(codecs.values()))  # encoding does not depend on the synthesis hop
    print(f"{args.clips} held-out clips per kind, Griffin-Lim {args.iters} iterations\n")
    print("| decoder | kind | onsets (original) | near an original | sync reward | "
          "median abs offset ms | audio adherence | log-spectral distance dB | decode s / clip |\n"
          + "|---" * 9 + "|")
    for kind in ("bounce", "talk"):
        clips = [make_clip(HELDOUT_SEED_START + i, kind=kind, config=world)
                 for i in range(args.clips)]
        rows = {hop: np.zeros(6) for hop in codecs}
        offsets: dict[int, list[float]] = {hop: [] for hop in codecs}
        original = 0
        for clip in clips:
            wave = torch.as_tensor(clip.audio, dtype=torch.float32)
            wave = wave[None, : encoder.latent_length(len(wave)) * encoder.hop]
            ref = wave[0].numpy()
            ref_onsets = audio_onsets(ref, world.sample_rate)
            original += len(ref_onsets)
            z = encoder.encode(wave)
            for hop, c in codecs.items():
                start = time.perf_counter()
                y = c.decode(z)[0].numpy()
                seconds = time.perf_counter() - start
                found = audio_onsets(y, world.sample_rate)
                near = sum(len(ref_onsets) > 0 and np.abs(ref_onsets - t).min() < 0.04
                           for t in found)
                if len(found):
                    nearest = [found[np.abs(found - t).argmin()] - t for t in ref_onsets]
                    offsets[hop] += [1000 * abs(d) for d in nearest if abs(d) < 0.1]
                g = GeneratedClip(clip.video, y, world.fps, world.sample_rate, clip.caption)
                rows[hop] += (len(found), near, REWARDS["sync"](g), REWARDS["audio_adherence"](g),
                              log_spectral_distance(y, ref), seconds)
        for hop, r in rows.items():
            n = len(clips)
            print(f"| hop {hop} | {kind} | {r[0]:.0f} ({original}) | {r[1]:.0f} | {r[2] / n:.3f} | "
                  f"{np.median(offsets[hop]):.1f} | {r[3] / n:.3f} | {r[4] / n:.2f} | "
                  f"{r[5] / n:.2f} |", flush=True)


if __name__ == "__main__":
    main()
