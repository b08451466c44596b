"""Long clips made in chunks: generation time by duration, seams, and sync against one chunk.

    python benchmarks/long_clips.py [--model demo] [--clips 3] [--long 20] [--durations 4,8,12,20] [--steps N]

Captions are held-out bounce prompts (world seeds >= 1,000,000). Each caption is generated
once at the model's native length (one chunk) and once at `--long` seconds; both go through
an MP4 and are measured from it: `duet.eval.sync` over the whole clip (as `duet eval sync`
does), and again in windows of the native length (each window gets its own common lag, as
a one-chunk clip does), and `duet.eval.seams` at every seam of the long one. The same seams
are measured on real world clips of `--long` seconds (same seeds, through an MP4, no chunks):
what uncut video of the world scores, since a bouncing ball moves in bursts and the seam
ratio compares the largest change in a span with the median change of one frame. The first
caption is also timed at every `--durations` value (wall time of `pipe(...)`: sampling and
decoding, not the MP4 write). `--keep DIR` keeps the MP4s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from duet.chunks import plan_chunks
from duet.data.dataset import world_config_for
from duet.data.world import HELDOUT_SEED_START, make_clip
from duet.eval.seams import VIDEO_LIMIT, measure_seams, plan_seams
from duet.eval.sync import measure, measure_file, merge
from duet.inputs import clip_frames
from duet.media import read_mp4, write_mp4
from duet.pipeline import DuetPipeline


def timed(pipe: DuetPipeline, caption: str, seconds: float | None, seed: int, steps: int | None):
    start = time.perf_counter()
    clip = pipe(caption, duration=seconds, seed=seed, steps=steps, progress=False)
    return clip, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo", help="bundle directory or preset")
    p.add_argument("--clips", type=int, default=3)
    p.add_argument("--long", type=float, default=20.0)
    p.add_argument("--durations", default="4,8,12,20")
    p.add_argument("--steps", type=int, help="denoising steps (the preset's: 25 for demo)")
    p.add_argument("--keep", metavar="DIR", help="write the clips here")
    args = p.parse_args()
    pipe = DuetPipeline.from_pretrained(args.model, device="cpu")
    media = pipe.preset.media
    captions = [make_clip(HELDOUT_SEED_START + i, kind="bounce").caption for i in range(args.clips)]
    pipe(captions[0], duration=0.5, steps=1, progress=False)  # warm up: text encoder, kernels
    times: dict[float, float] = {}
    short, long, windows, seams, real_seams = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp)
        for i, caption in enumerate(captions):
            for seconds, reports in ((None, short), (args.long, long)):
                clip, sec = timed(pipe, caption, seconds, i, args.steps)
                if i == 0:
                    times[round(clip.duration)] = sec
                path = clip.save(out / f"clip{i}_{seconds or 'native'}.mp4")
                reports.append(measure_file(path, kind="bounce"))
                if seconds is not None:
                    frames, audio, fps, sr = read_mp4(path)
                    plan = plan_chunks(clip.video.shape[0], media, caption)
                    spans = plan_seams(plan, media.fps, pipe.audio_codec.hop, sr)
                    seams += measure_seams(frames, audio, fps, sr, spans)
                    real = make_clip(HELDOUT_SEED_START + i, kind="bounce",
                                     config=world_config_for(pipe.preset, frames=len(frames)))
                    real_path = write_mp4(out / f"real{i}_{seconds}.mp4", real.video, real.audio,
                                          media.fps, media.sample_rate)
                    real_seams += measure_seams(*read_mp4(real_path), spans)
                    for s in range(0, len(frames) - media.frames + 1, media.frames):
                        a = slice(round(s / fps * sr), round((s + media.frames) / fps * sr))
                        windows.append(measure(frames[s:s + media.frames], audio[a], fps, sr, kind="bounce"))
        for d in (float(x) for x in args.durations.split(",")):
            if round(d) not in times:
                times[round(d)] = timed(pipe, captions[0], d, 0, args.steps)[1]
    print("| duration s | chunks | generate s | s per clip second |")
    print("|---|---|---|---|")
    for d in sorted(times):
        n = len(plan_chunks(clip_frames(media, float(d)), media, "x").chunks)
        print(f"| {d} | {n} | {times[d]:.1f} | {times[d] / d:.2f} |")
    print(f"\nseams: {len(seams)} over {args.clips} clips of {args.long:g} s")
    for name, found in (("chunked", seams), ("real, uncut", real_seams)):
        ratios = np.array([s.video_ratio for s in found])
        ordinary = np.array([s.video_ordinary for s in found])
        print(f"picture ({name}): seam change / median in-chunk change: median "
              f"{np.median(ratios):.2f}; within {VIDEO_LIMIT}x: {np.mean(ratios <= VIDEO_LIMIT):.0%}; "
              f"stretches of the same length inside chunks: median {np.median(ordinary):.2f}; "
              f"seams at or below their clip's ordinary stretch: {np.mean(ratios <= ordinary):.0%}")
    print(f"sound: seams within the clip's ordinary range: {np.mean([s.audio_ok for s in seams]):.0%}"
          f" (click {np.mean([s.click <= s.click_limit for s in seams]):.0%}, level step "
          f"{np.mean([s.level_step_db <= s.level_step_limit_db for s in seams]):.0%}, level "
          f"{np.mean([s.level_range_db[0] <= s.level_db <= s.level_range_db[1] for s in seams]):.0%});"
          f" real, uncut: {np.mean([s.audio_ok for s in real_seams]):.0%}")
    print("\n| clips | pairs | median offset ms | median abs offset ms | within 1 frame | "
          "within 2 frames | missed | extra |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {media.duration:.2f} s (one chunk) | {merge(short).table_cells()} |")
    print(f"| {args.long:g} s (chunked), whole clip | {merge(long).table_cells()} |")
    print(f"| {args.long:g} s (chunked), {media.duration:.2f} s windows | {merge(windows).table_cells()} |")


if __name__ == "__main__":
    main()
