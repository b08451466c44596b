"""Does the ball ruler count wobbles as bounces? Real clips' tracked heights with Gaussian
jitter added per frame, counted as floor contacts.

    python benchmarks/ruler_jitter.py [--clips 16] [--sigma 0 0.1 0.2 0.3 0.5 1]

A generated ball placed a fraction of a pixel off from frame to frame is invisible on a 64 px
frame, yet a second-difference threshold alone reads each such kink as a contact. Each row
adds jitter of `sigma` pixels to every held-out bounce clip's tracks (`ball_tracks`, seeded)
and prints the contacts per clip `contact_times` finds, against the clips' true count, and
how many the kink threshold alone would pass (the rule before the speed test).
"""

from __future__ import annotations

import argparse

import numpy as np

from duet.data.world import HELDOUT_SEED_START, WorldConfig, make_clip
from duet.eval.visual import ball_tracks, contact_times, kinks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--sigma", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5, 1.0])
    p.add_argument("--gravity", type=float, default=6.25, metavar="G")
    args = p.parse_args()
    world = WorldConfig(gravity=args.gravity)
    clips = [make_clip(HELDOUT_SEED_START + i, kind="bounce", config=world) for i in range(args.clips)]
    tracks = [ball_tracks(c.video) for c in clips]
    truth = np.mean([len(c.events) for c in clips])
    print(f"{args.clips} held-out bounce clips, {truth:.1f} true contacts per clip\n")
    print("| jitter px | contacts / clip | kinks alone / clip |\n|---|---|---|")
    for sigma in args.sigma:
        rng = np.random.default_rng(0)
        found = seen = 0
        for clip, ts in zip(clips, tracks):
            h = clip.video.shape[1]
            for y in ts.values():
                noisy = y + rng.normal(0.0, sigma, y.shape)
                found += len(contact_times(noisy, world.fps, h))
                seen += len(kinks(noisy, h))
        print(f"| {sigma:g} | {found / len(clips):.1f} | {seen / len(clips):.1f} |")


if __name__ == "__main__":
    main()
