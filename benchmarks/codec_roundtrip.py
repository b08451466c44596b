"""How much timing survives the demo codecs: sync of held-out ground-truth bounce clips
after encode -> decode, per video codec.

    python benchmarks/codec_roundtrip.py [--clips 20] [--frames FILE]

This is the ceiling a model trained on the codec's latents can reach: a perfect model
reproduces a clip's latents, and the viewer sees their decoding. Rows: the audio through
the MelCodec (Griffin-Lim) with the original picture; then for the learned FrameCodec (the
shipped weights, or --frames FILE) and each PixelCodec stride, the video round trip alone
and both together, with the video's PSNR and the ruler's colour score of the round-tripped
clips (`prompt_adherence`: Jaccard index of the ball colours seen and named; 1.0 = every
clip's colours survive).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from duet.codecs.frames import FrameCodec
from duet.codecs.mel import MelCodec
from duet.codecs.pixels import PixelCodec
from duet.data.world import HELDOUT_SEED_START, make_clip
from duet.eval.adherence import prompt_adherence
from duet.eval.sync import measure, merge

STRIDES = ((1, 4, 4), (1, 8, 8), (2, 4, 4), (4, 8, 8))


def video_roundtrip(frames: np.ndarray, codec: FrameCodec | PixelCodec) -> np.ndarray:
    x = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    y = codec.decode(codec.encode(x))[0].permute(1, 2, 3, 0)
    return ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def audio_roundtrip(wave: np.ndarray, codec: MelCodec) -> np.ndarray:
    n = codec.latent_length(len(wave)) * codec.hop
    return codec.decode(codec.encode(torch.from_numpy(wave[:n])[None].float()))[0].numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--frames", help="a FrameCodec weights file (default: the shipped one)")
    args = p.parse_args()
    mel = MelCodec()
    clips = [make_clip(HELDOUT_SEED_START + i, kind="bounce") for i in range(args.clips)]
    audio = [audio_roundtrip(c.audio, mel) for c in clips]
    print("| video codec (t×h×w stride) | round trip | PSNR dB | colour score | pairs | "
          "median offset ms | median abs ms | within 1 frame | within 2 frames | missed | extra |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    def row(name: str, what: str, db: str, colour: str, reports: list) -> None:
        r = merge(reports)
        print(f"| {name} | {what} | {db} | {colour} | {r.table_cells()} |", flush=True)

    row("—", "audio", "—", "—",
        [measure(c.video, a, 24.0, 16000, "bounce") for c, a in zip(clips, audio)])
    codecs = [(f"frames {'×'.join(map(str, c.stride))} (learned)", c) for c in [FrameCodec(args.frames)]]
    codecs += [(f"pixels {'×'.join(map(str, s))}", PixelCodec(stride=s)) for s in STRIDES]
    for name, codec in codecs:
        video = [video_roundtrip(c.video, codec) for c in clips]
        db = f"{psnr([c.video for c in clips], video):.1f}"
        colour = np.mean([prompt_adherence(v, c.audio, c.caption)["colour_score"]
                          for c, v in zip(clips, video)])
        row(name, "video", db, f"{colour:.2f}",
            [measure(v, c.audio, 24.0, 16000, "bounce") for c, v in zip(clips, video)])
        row(name, "video + audio", db, f"{colour:.2f}",
            [measure(v, a, 24.0, 16000, "bounce") for v, a in zip(video, audio)])


def psnr(original: list[np.ndarray], decoded: list[np.ndarray]) -> float:
    err = np.mean([np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(original, decoded)])
    return float(10 * np.log10(255.0**2 / err))


if __name__ == "__main__":
    main()
