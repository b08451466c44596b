"""Does the video tower read its caption? Its x0 estimate at high t, moved by the noise and
by the caption.

    python benchmarks/caption_use.py WEIGHTS [WEIGHTS ...] [--clips 8] [--frames 97]

WEIGHTS as in `benchmarks/video_quality.py` (bundle, model.safetensors or training
checkpoint with EMA). Real held-out bounce clips (their first `--frames` latent frames; 1:
single pictures, for an image-pretraining stage) are noised to t = 0.8 and t = 1, and the
tower estimates x0 three times: as is, with other noise, and with another clip's caption.
At t = 1 the input holds nothing of the clip, so a trained tower's estimate is the caption's
mean picture: it moves with the caption (up to the spread of real clips, printed beside)
and not with the noise. A tower that moves more with the noise than with the caption has
not learned to read its caption, and the sampler's first steps then commit to noise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from video_quality import model_config, weights_with_ema

from duet.codecs.frames import FrameCodec
from duet.components import build_text_encoder
from duet.data.dataset import encode_texts
from duet.data.world import HELDOUT_SEED_START, make_clip
from duet.model import ModalityInput, TwinModel
from duet.presets import get_preset
from duet.weights import load_into


def rms(x: torch.Tensor) -> float:
    return x.pow(2).mean().sqrt().item()


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", nargs="+", type=Path)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--frames", type=int, default=97)
    args = p.parse_args()
    preset = get_preset("demo")
    codec = FrameCodec(None)
    clips = [make_clip(HELDOUT_SEED_START + i, kind="bounce") for i in range(args.clips)]
    context = encode_texts(build_text_encoder(preset), [c.caption for c in clips],
                           preset.model.video.text_len)
    pixels = torch.stack([torch.as_tensor(c.video[:args.frames]) for c in clips])
    x0 = codec.encode(pixels.permute(0, 4, 1, 2, 3).float() / 127.5 - 1)
    print(f"real clips differ from each other by {rms(x0 - x0.roll(1, 0)):.3f} RMS\n")
    print("| weights | t | x0 moved by other noise | x0 moved by other caption |\n|---|---|---|---|")
    for path in args.weights:
        model = TwinModel.from_config(model_config(path)).eval()
        load_into(model, weights_with_ema(path), dtype=torch.float32)
        for t in (0.8, 1.0):
            g = torch.Generator().manual_seed(0)
            noise = [torch.randn(x0.shape, generator=g) for _ in range(2)]

            def estimate(eps: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
                xt = (1 - t) * x0 + t * eps
                v = model.video_model(ModalityInput(xt, torch.full((len(clips),), 1000.0 * t), ctx))
                return xt - t * v

            base = estimate(noise[0], context)
            print(f"| {path} | {t} | {rms(base - estimate(noise[1], context)):.3f} "
                  f"| {rms(base - estimate(noise[0], context.roll(1, 0))):.3f} |", flush=True)


if __name__ == "__main__":
    main()
