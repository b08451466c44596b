"""Audio-visual sync and prompt adherence of generated clips on held-out bounce prompts.

    python benchmarks/sync_generated.py --model runs/demo/final [--clips 20] [--steps 25]

Captions come from held-out world seeds (>= 1,000,000: never trained on); each clip is
generated, written to MP4, decoded and measured with `duet.eval.sync`. Rows: the model as
is, the same model with the cross-modal attention disabled at inference, and (with
--compare DIR ...) other bundles, e.g. one trained with unscaled RoPE. Wall time per clip
includes decoding and the MP4 write.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from duet.data.world import HELDOUT_SEED_START, make_clip
from duet.eval.adherence import prompt_adherence
from duet.eval.sync import measure_file, merge
from duet.media import read_mp4
from duet.pipeline import DuetPipeline


def evaluate(pipe: DuetPipeline, captions: list[str], steps: int | None, cross_modal: bool,
             tmp: Path) -> tuple:
    reports, colour, material, seconds = [], [], [], []
    for i, caption in enumerate(captions):
        start = time.perf_counter()
        clip = pipe(caption, seed=i, steps=steps, cross_modal=cross_modal, progress=False)
        path = clip.save(tmp / "clip.mp4")
        seconds.append(time.perf_counter() - start)
        reports.append(measure_file(path, kind="bounce"))
        frames, audio, fps, sr = read_mp4(path)
        adh = prompt_adherence(frames, audio, caption, fps, sr)
        colour.append(bool(adh.get("colour_match")))
        material.append(bool(adh.get("material_match")))
    return merge(reports), sum(colour) / len(colour), sum(material) / len(material), sum(seconds) / len(seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo", help="bundle directory or preset")
    p.add_argument("--compare", nargs="*", default=[], help="more bundles to measure the same way")
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--steps", type=int)
    args = p.parse_args()
    captions = [make_clip(HELDOUT_SEED_START + i, kind="bounce").caption for i in range(args.clips)]
    rows = [(args.model, True), (args.model, False)] + [(m, True) for m in args.compare]
    print("| model | fusion | pairs | median offset ms | median abs offset ms | within 1 frame | within 2 frames | missed | extra | colour ok | material ok | s/clip |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        pipes: dict[str, DuetPipeline] = {}
        for model, fusion in rows:
            pipe = pipes.setdefault(model, DuetPipeline.from_pretrained(model, device="cpu"))
            r, col, mat, sec = evaluate(pipe, captions, args.steps, fusion, Path(tmp))
            print(f"| {model} | {'on' if fusion else 'off'} | {r.table_cells()} | "
                  f"{col:.0%} | {mat:.0%} | {sec:.1f} |", flush=True)


if __name__ == "__main__":
    main()
