"""Does the video tower draw the colour its caption names? Two numbers per WEIGHTS:

    python benchmarks/colour_binding.py WEIGHTS [WEIGHTS ...] [--clips 32] [--codec FILE]

- **Colour word gap**: real held-out single-ball pictures (each clip's middle frame) are
  noised to t = 0.3 / 0.5 / 0.7 and the tower estimates x0 twice, with the caption and with
  the same caption naming another colour. The x0 error on the ball's latent cells (those
  that differ from the clip's median frame) is printed for both; a tower that binds the
  colour word errs less with the right one. No gap means the colour comes from the noise.
- **Picture colour score**: single pictures sampled from noise (UniPC, 25 steps, shift 3)
  for held-out bounce captions and scored by the ruler (`prompt_adherence`: Jaccard index
  of the ball colours seen and named). Chance, a ball of a random colour, is about 0.15.

WEIGHTS as in `benchmarks/video_quality.py`. Pictures are the image-pretraining stage's
task, so this reads a pictures bundle as well as a clips one.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import torch
from video_quality import decode, frame_codec, model_config, weights_with_ema

from duet.codecs.frames import FrameCodec
from duet.components import build_text_encoder
from duet.presets import get_preset
from duet.data.dataset import encode_texts
from duet.data.world import HELDOUT_SEED_START, PALETTE, make_clip
from duet.eval.adherence import prompt_adherence
from duet.model import ModalityInput, TwinModel
from duet.sampling.guidance import Conditioning, Guidance, guided_velocity
from duet.sampling.sampler import sample
from duet.sampling.schedule import flow_sigmas
from duet.weights import load_into

COLOURS = list(PALETTE)


def other_colour(caption: str) -> str:
    """The caption with its (single) ball colour replaced by the one 3 places on."""
    for c in COLOURS:
        if f" {c} " in caption:
            return caption.replace(f" {c} ", f" {COLOURS[(COLOURS.index(c) + 3) % 7]} ", 1)
    raise ValueError(f"no palette colour in {caption!r}")


def word_gap(model: TwinModel, x0: torch.Tensor, ball: torch.Tensor, right: torch.Tensor,
             wrong: torch.Tensor, t: float) -> tuple[float, float]:
    """RMS x0 error on the ball cells at time t, with the right and the wrong colour word."""
    g = torch.Generator().manual_seed(0)
    xt = (1 - t) * x0 + t * torch.randn(x0.shape, generator=g)
    time = torch.full((len(x0),), 1000.0 * t)
    out = []
    for ctx in (right, wrong):
        err = xt - t * model.video_model(ModalityInput(xt, time, ctx)) - x0
        out.append((err.pow(2) * ball).sum().div(ball.sum() * x0.shape[1]).sqrt().item())
    return out[0], out[1]


def picture_score(model: TwinModel, codec: FrameCodec, context: torch.Tensor,
                  captions: list[str], size: tuple[int, int]) -> float:
    """Mean ruler colour score of single pictures sampled for `captions`."""
    cond = Conditioning(context, None)
    denoise = functools.partial(guided_velocity, model, cond=cond, uncond=cond,
                                guidance=Guidance(video_scale=1.0, audio_scale=1.0,
                                                  negative_skip_blocks=()))
    shape = codec.latent_shape(1, *size)
    noise = torch.randn(len(captions), *shape, generator=torch.Generator().manual_seed(0))
    latents, _ = sample(denoise, noise, None, flow_sigmas(25, 3.0, dtype=torch.float64),
                        disable=True)
    frames = decode(codec, latents)
    # The ruler reads clips: a picture held for 8 frames is a still clip of it.
    return float(np.mean([prompt_adherence(np.repeat(f, 8, 0), np.zeros(16000), c)["colour_score"]
                          for f, c in zip(frames, captions)]))


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", nargs="+", type=Path)
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--codec", default=None,
                   help="frame codec weights the models' latents use (default: the one the "
                        "first WEIGHTS bundle names, else the shipped codec)")
    args = p.parse_args()
    preset = get_preset("demo")
    codec = frame_codec(args.weights[0], args.codec)
    text = build_text_encoder(preset)
    clips = [make_clip(HELDOUT_SEED_START + i, kind="bounce") for i in range(args.clips)]
    single = [c for c in clips if " and a " not in c.caption]
    enc = functools.partial(encode_texts, text, text_len=preset.model.video.text_len)
    right = enc([c.caption for c in single])
    wrong = enc([other_colour(c.caption) for c in single])
    mid = len(single[0].video) // 2
    frame = torch.stack([torch.as_tensor(c.video[mid]) for c in single])
    still = torch.stack([torch.as_tensor(np.median(c.video, axis=0)) for c in single])
    x0, scene = (codec.encode(x.permute(0, 3, 1, 2)[:, :, None].float() / 127.5 - 1)
                 for x in (frame, still))
    ball = ((x0 - scene).pow(2).mean(1, keepdim=True).sqrt() > 0.2).float()
    context = enc([c.caption for c in clips])
    print(f"{len(single)} single-ball pictures, {ball.sum().item() / len(single):.1f} ball cells "
          f"each; {len(clips)} captions sampled\n")
    print("| weights | x0 error on the ball, right / other colour word: t = 0.3 | 0.5 | 0.7 "
          "| picture colour score |\n|---|---|---|---|---|")
    for path in args.weights:
        model = TwinModel.from_config(model_config(path)).eval()
        load_into(model, weights_with_ema(path), dtype=torch.float32)
        gaps = [word_gap(model, x0, ball, right, wrong, t) for t in (0.3, 0.5, 0.7)]
        score = picture_score(model, codec, context, [c.caption for c in clips],
                              clips[0].video.shape[1:3])
        cells = " | ".join(f"{a:.3f} / {b:.3f}" for a, b in gaps)
        print(f"| {path} | {cells} | {score:.2f} |", flush=True)


if __name__ == "__main__":
    main()
