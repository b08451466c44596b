"""Accuracy of the curation's weight-free sync estimate on synthetic-world clips.

    python benchmarks/curate_sync.py [--clips 20]

For held-out bounce and talk clips, the sound is delayed or advanced by a known amount
(zeros fill the gap, as in a badly muxed file) and `duet.data.curate.avsync.estimate` is
asked for the offset. Prints one markdown row per kind and shift: median estimate, median
absolute error, the fraction within 45 ms (about one frame at 24 fps) and the median score.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from duet.data.curate.avsync import estimate
from duet.data.curate.filters import optical_flow
from duet.data.world import HELDOUT_SEED_START, make_clip

SHIFTS_MS = (-300, -150, 0, 150, 300)


def shifted(audio: np.ndarray, ms: int, sample_rate: int = 16000) -> np.ndarray:
    """The waveform played `ms` later (positive) or earlier, zero filled."""
    n = round(abs(ms) * sample_rate / 1000)
    zeros = np.zeros(n, audio.dtype)
    if ms > 0:
        return np.concatenate([zeros, audio])[: len(audio)]
    return np.concatenate([audio[n:], zeros]) if ms < 0 else audio


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=20)
    args = p.parse_args()
    cv2.setNumThreads(1)
    print("| kind | true offset ms | median estimate ms | median abs error ms | within 45 ms | "
          "median score |")
    print("|---|---|---|---|---|---|")
    for kind in ("bounce", "talk"):
        clips = [make_clip(HELDOUT_SEED_START + i, kind=kind) for i in range(args.clips)]
        flows = [optical_flow(c.video, 128) for c in clips]
        for ms in SHIFTS_MS:
            est = [estimate(f, shifted(c.audio, ms), 16000, 24.0, 500.0)
                   for c, f in zip(clips, flows)]
            off = np.array([e.offset_ms for e in est])
            err = np.abs(off - ms)
            print(f"| {kind} | {ms:+d} | {np.median(off):+.0f} | {np.median(err):.0f} | "
                  f"{np.mean(err <= 45):.0%} | {np.median([e.score for e in est]):.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
