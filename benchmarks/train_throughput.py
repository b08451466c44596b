"""Training throughput of a preset's architecture at several video latent sizes.

    python benchmarks/train_throughput.py [--preset demo] [--batch 8]

One step = forward + backward + AdamW on random latents (fp32, CPU by default). The rows
differ only in the video latent grid (the codec's temporal/spatial stride) and the video
tower's patch size, i.e. in the number of video tokens; the last row is the demo preset.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from duet.model import ModalityInput, TwinModel
from duet.presets import get_preset

# (latent frames, latent side, spatial patch) for a 97-frame 64x64 clip: codec strides
# (4, 8, 8), (2, 8, 8), (1, 8, 8) with 2x2 patches, then (1, 4, 4) with 4x4 and 8x8 patches
GRIDS = ((25, 8, 2), (49, 8, 2), (97, 8, 2), (97, 16, 4), (97, 16, 8))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="demo")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    preset = get_preset(args.preset)
    b = args.batch
    n_audio = preset.media.audio_length(preset.media.frames)
    print("| video latent (C, F, h, w) | patch | video tokens | audio tokens | s/step | clips/s |")
    print("|---|---|---|---|---|---|")
    for f, side, patch in GRIDS:
        cfg = dataclasses.replace(preset.model, video=dataclasses.replace(
            preset.model.video, patch_size=(1, patch, patch)))
        model = TwinModel.from_config(cfg, device=args.device).train()
        opt = torch.optim.AdamW(model.parameters(), 1e-4)
        ctx = lambda: torch.randn(b, cfg.video.text_len, cfg.video.text_dim, device=args.device)  # noqa: E731
        t = lambda: torch.rand(b, device=args.device) * 1000  # noqa: E731
        video = ModalityInput(torch.randn(b, cfg.video.in_dim, f, side, side, device=args.device), t(), ctx())
        audio = ModalityInput(torch.randn(b, n_audio, cfg.audio.in_dim, device=args.device), t(), ctx())
        for i in range(3):  # step 0 warms up
            if i == 1:
                start = time.perf_counter()
            v, a = model(video, audio)
            (v.square().mean() + a.square().mean()).backward()
            opt.step()
            opt.zero_grad()
        sec = (time.perf_counter() - start) / 2
        tokens = f * (side // patch) ** 2
        print(f"| ({cfg.video.in_dim}, {f}, {side}, {side}) | 1×{patch}×{patch} | {tokens:,} | {n_audio} | "
              f"{sec:.2f} | {b / sec:.1f} |")


if __name__ == "__main__":
    main()
