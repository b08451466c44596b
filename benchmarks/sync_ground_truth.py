"""The sync evaluator on ground-truth world clips: how exact is the ruler?

    python benchmarks/sync_ground_truth.py [--clips 40] [--shift-ms 80]

For held-out clips of each kind it measures the clip as generated, after an MP4 round
trip (H.264 + AAC), and with the audio delayed by --shift-ms (the evaluator should read
that shift back). Positive offsets = audio late.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from duet.data.world import HELDOUT_SEED_START, make_clip
from duet.eval.sync import measure, measure_file, merge
from duet.media import write_mp4


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=40, help="clips per kind")
    p.add_argument("--shift-ms", type=float, default=80.0)
    args = p.parse_args()
    print("| kind | condition | pairs | median offset ms | median abs ms | within 1 frame | missed | extra |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("bounce", "talk"):
            rows: dict[str, list] = {"as generated": [], "MP4 round trip": [],
                                     f"audio +{args.shift_ms:g} ms": []}
            for i in range(args.clips):
                clip = make_clip(HELDOUT_SEED_START + i, kind=kind)
                sr = 16000
                rows["as generated"].append(measure(clip.video, clip.audio, 24.0, sr, kind))
                path = write_mp4(Path(tmp) / "c.mp4", clip.video, clip.audio, 24, sr)
                rows["MP4 round trip"].append(measure_file(path, kind))
                late = np.concatenate([np.zeros(round(args.shift_ms / 1000 * sr), np.float32),
                                       clip.audio])[: len(clip.audio)]
                rows[f"audio +{args.shift_ms:g} ms"].append(measure(clip.video, late, 24.0, sr, kind))
            for cond, reports in rows.items():
                r = merge(reports)
                print(f"| {kind} | {cond} | {len(r.offsets_ms)} | {r.median_offset_ms:+.2f} | "
                      f"{r.median_abs_offset_ms:.2f} | {r.within_1_frame:.0%} | {r.missed} | {r.extra} |")


if __name__ == "__main__":
    main()
