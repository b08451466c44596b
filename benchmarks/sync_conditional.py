"""Video-to-audio and audio-to-video with the joint model, measured on held-out world clips.

    python benchmarks/sync_conditional.py [--model demo] [--clips 16] [--steps 25]

v2a: the ground-truth picture of a held-out bounce clip is given (`from_video`), the model
writes its sound; a2v: the ground-truth sound is given (`from_audio`), the model draws the
picture. Each result is measured with `duet.eval.sync` against the given modality, beside
the ground truth itself and the joint (text-only) generation for the same captions.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from duet.data.world import HELDOUT_SEED_START, make_clip
from duet.eval.sync import measure, measure_file, merge
from duet.pipeline import DuetPipeline


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--steps", type=int)
    args = p.parse_args()
    pipe = DuetPipeline.from_pretrained(args.model, device="cpu")
    clips = [make_clip(HELDOUT_SEED_START + i, kind="bounce") for i in range(args.clips)]
    rows: dict[str, list] = {"ground truth": [], "text -> video + audio": [],
                             "video -> audio (v2a)": [], "audio -> video (a2v)": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        for i, c in enumerate(clips):
            rows["ground truth"].append(measure(c.video, c.audio, 24.0, 16000, "bounce"))
            for name, kw in (("text -> video + audio", {}), ("video -> audio (v2a)", dict(from_video=c.video)),
                             ("audio -> video (a2v)", dict(from_audio=c.audio))):
                clip = pipe(c.caption, seed=i, steps=args.steps, progress=False, **kw)
                rows[name].append(measure_file(clip.save(path), kind="bounce"))
    print("| mode | pairs | median offset ms | median abs offset ms | within 1 frame | within 2 frames | missed | extra |")
    print("|---|---|---|---|---|---|---|---|")
    for name, reports in rows.items():
        r = merge(reports)
        print(f"| {name} | {r.table_cells()} |")


if __name__ == "__main__":
    main()
