"""Does the frame codec's latent move smoothly with the ball? The average of the latents of
frames i - k and i + k, decoded, against the real frame i, over the frames of held-out bounce
clips where the ball moves.

    python benchmarks/codec_interpolation.py [--codec FILE] [--clips 8] [--gaps 2 4 8]

A diffusion tower that is unsure where the ball is in a frame predicts something between the
latents of the likely positions. In a latent where position is smooth that decodes as a ball
in between; where it is not, as two faint balls, or none the tracker can follow, which reads
as jitter, lost tracks and false contacts. Printed per gap (2k frames): the median and 90th
percentile of |tracked height - true height| where the ball is still tracked, and the share
of moving frames where it is lost.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from video_quality import decode

from duet.codecs.frames import FrameCodec
from duet.data.world import HELDOUT_SEED_START, make_clip
from duet.eval.visual import ball_tracks


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codec", default=None, help="frame codec weights (default: the shipped one)")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--gaps", type=int, nargs="+", default=[2, 4, 8])
    args = p.parse_args()
    codec = FrameCodec(args.codec)
    clips = [make_clip(HELDOUT_SEED_START + i, kind="bounce") for i in range(args.clips)]
    latents = [codec.encode(torch.as_tensor(c.video).permute(3, 0, 1, 2)[None].float() / 127.5 - 1)
               for c in clips]
    truth = [ball_tracks(decode(codec, z)[0]) for z in latents]  # the codec's own round trip
    print("| frames apart | median height error px | p90 px | ball lost |\n|---|---|---|---|")
    for gap in args.gaps:
        k = gap // 2
        errors, lost = [], []
        for z, true in zip(latents, truth):
            mid = z.clone()
            mid[:, :, k:-k] = 0.5 * (z[:, :, :-gap] + z[:, :, gap:])
            seen = ball_tracks(decode(codec, mid)[0])
            for name, y in true.items():
                moving = np.abs(y[gap:] - y[:-gap]) > 2  # frames k..-k whose ball moves
                got = seen.get(name, np.full_like(y, np.nan))[k:-k][moving]
                err = np.abs(got - y[k:-k][moving])
                errors.extend(err[np.isfinite(err)].tolist())
                lost.extend(np.isnan(got).tolist())
        print(f"| {gap} | {np.median(errors):.2f} | {np.percentile(errors, 90):.2f} "
              f"| {100 * np.mean(lost):.0f}% |", flush=True)


if __name__ == "__main__":
    main()
