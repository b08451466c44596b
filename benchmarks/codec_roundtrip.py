"""How much timing survives the demo codecs: sync of held-out ground-truth bounce clips
after encode -> decode, per video-codec stride.

    python benchmarks/codec_roundtrip.py [--clips 20]

This is the ceiling a model trained on the codec's latents can reach: a perfect model
reproduces a clip's latents, and the viewer sees their decoding. Rows: the audio through
the MelCodec (Griffin-Lim) with the original picture; then for each PixelCodec stride the
video round trip alone and both together.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from duet.codecs.mel import MelCodec
from duet.codecs.pixels import PixelCodec
from duet.data.world import HELDOUT_SEED_START, make_clip
from duet.eval.sync import measure, merge

STRIDES = ((1, 4, 4), (1, 8, 8), (2, 4, 4), (4, 8, 8))


def video_roundtrip(frames: np.ndarray, stride: tuple[int, int, int]) -> np.ndarray:
    x = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    codec = PixelCodec(stride=stride)
    y = codec.decode(codec.encode(x))[0].permute(1, 2, 3, 0)
    return ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def audio_roundtrip(wave: np.ndarray, codec: MelCodec) -> np.ndarray:
    n = codec.latent_length(len(wave)) * codec.hop
    return codec.decode(codec.encode(torch.from_numpy(wave[:n])[None].float()))[0].numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=20)
    args = p.parse_args()
    mel = MelCodec()
    clips = [make_clip(HELDOUT_SEED_START + i, kind="bounce") for i in range(args.clips)]
    audio = [audio_roundtrip(c.audio, mel) for c in clips]
    print("| video codec stride | round trip | pairs | median offset ms | median abs ms | "
          "within 1 frame | within 2 frames | missed | extra |")
    print("|---|---|---|---|---|---|---|---|---|")

    def row(stride: str, what: str, reports: list) -> None:
        r = merge(reports)
        print(f"| {stride} | {what} | {r.table_cells()} |", flush=True)

    row("—", "audio", [measure(c.video, a, 24.0, 16000, "bounce") for c, a in zip(clips, audio)])
    for stride in STRIDES:
        video = [video_roundtrip(c.video, stride) for c in clips]
        name = "×".join(map(str, stride))
        row(name, "video", [measure(v, c.audio, 24.0, 16000, "bounce") for c, v in zip(clips, video)])
        row(name, "video + audio", [measure(v, a, 24.0, 16000, "bounce") for v, a in zip(video, audio)])


if __name__ == "__main__":
    main()
