"""Sync and generation time under each guidance term, on held-out bounce prompts.

    python benchmarks/sync_guidance.py [--model demo] [--clips 16] [--steps 25] [--rows 0 2 4] \
        [--mp4 DIR]

Rows: Ovi's plain CFG (the default), + the cross-modal (dual-CFG) term at three scales, + STG,
and all together with std rescale; then lower text-CFG scales and the empty negative prompt
(for models trained with `text_dropout`), σ grids that keep the audio noisier than the
video for longer (`--shift V,A`), then rows 15-17 for a video tower without an
unconditional prediction (video text CFG off, the audio's against the empty prompt), with
the cross-modal attention on, off, and guided. Every row uses the same captions and seeds,
so the rows differ only in guidance; s/clip counts the extra forward passes each term costs
(they are batched into one call per step). The last column is the ruler's chance level on
the row's clips (`duet.eval.sync.chance_report`: each clip's onsets moved around it, so
picture and sound no longer belong together). `--mp4 DIR` keeps the clips (DIR/row<N>/<i>.mp4),
so `duet eval sync DIR/row<N>/*.mp4` re-measures them, with another ruler for instance.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from duet.data.world import HELDOUT_SEED_START, make_clip
from duet.eval.sync import chance_report, file_events, merge, sync_report
from duet.pipeline import DuetPipeline

ROWS: list[tuple[str, dict]] = [
    ("plain CFG (default)", {}),
    ("+ cross-modal 2.0", dict(cross_modal_guidance=2.0)),
    ("+ cross-modal 3.0", dict(cross_modal_guidance=3.0)),
    ("+ cross-modal 4.0", dict(cross_modal_guidance=4.0)),
    ("+ STG 1.0", dict(stg_guidance=1.0)),
    ("+ cross-modal 3.0 + STG 1.0, rescale 0.7", dict(cross_modal_guidance=3.0, stg_guidance=1.0, guidance_rescale=0.7)),
    ("text CFG off (scales 1)", dict(video_guidance=1.0, audio_guidance=1.0)),
    ("video text CFG 2", dict(video_guidance=2.0)),
    ("video text CFG 2 + cross-modal 3.0", dict(video_guidance=2.0, cross_modal_guidance=3.0)),
    ("video text CFG off + cross-modal 3.0", dict(video_guidance=1.0, cross_modal_guidance=3.0)),
    ("empty negative prompts", dict(video_negative="", audio_negative="")),
    ("empty negative prompts + cross-modal 3.0", dict(video_negative="", audio_negative="", cross_modal_guidance=3.0)),
    ("audio σ behind the video's: shift 5,20", dict(shift=(5.0, 20.0))),
    ("audio σ behind the video's: shift 3,30", dict(shift=(3.0, 30.0))),
    ("audio σ behind the video's: shift 2,50", dict(shift=(2.0, 50.0))),
    ("video text CFG off, empty audio negative", dict(video_guidance=1.0, audio_negative="")),
    ("video text CFG off, empty audio negative, cross-modal attention off",
     dict(video_guidance=1.0, audio_negative="", cross_modal=False)),
    ("video text CFG off, empty audio negative + cross-modal 3.0",
     dict(video_guidance=1.0, audio_negative="", cross_modal_guidance=3.0)),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--steps", type=int)
    p.add_argument("--rows", type=int, nargs="+", choices=range(len(ROWS)), default=range(len(ROWS)),
                   metavar="N", help=f"which rows (0-{len(ROWS) - 1}, in the order above; default all)")
    p.add_argument("--mp4", type=Path, metavar="DIR", help="keep the clips in DIR/row<N>/")
    args = p.parse_args()
    pipe = DuetPipeline.from_pretrained(args.model, device="cpu")
    captions = [make_clip(HELDOUT_SEED_START + i, kind="bounce").caption for i in range(args.clips)]
    print("| guidance | pairs | median offset ms | median abs offset ms | within 1 frame | "
          "within 2 frames | missed | extra | s/clip | chance: within 2 frames, median abs ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for row in args.rows:
            name, kw = ROWS[row]
            folder = args.mp4 / f"row{row}" if args.mp4 else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            reports, chance, seconds = [], [], 0.0
            for i, caption in enumerate(captions):
                start = time.perf_counter()
                clip = pipe(caption, seed=i, steps=args.steps, progress=False, **kw)
                path = clip.save(folder / f"{i:03d}.mp4")
                seconds += time.perf_counter() - start
                events = file_events(path, kind="bounce")
                reports.append(sync_report(events))
                chance.append(chance_report(events))
            r, c = merge(reports), merge(chance)
            print(f"| {name} | {r.table_cells()} | {seconds / len(captions):.1f} | "
                  f"{c.within_2_frames:.0%}, {c.median_abs_offset_ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
