"""Tiny random Wan2.2 VAE checkpoints in the official `Wan2.2_VAE.pth` format, for tests.

`official_shapes` writes out the parameter names and shapes of `WanVAE_` in Wan-Video/Wan2.2
`wan/modules/vae2_2.py` from that module's structure (Encoder3d / Decoder3d with
Down_/Up_ResidualBlock stages, `middle` and `head` Sequentials). It is deliberately independent
of diffusers and of `duet.codecs.wan`, so that comparing the two is a real check of the key map.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

Shapes = dict[str, tuple[int, ...]]


def official_shapes(dim: int = 160, dec_dim: int = 256, z_dim: int = 48,
                    dim_mult: tuple[int, ...] = (1, 2, 4, 4), num_res_blocks: int = 2,
                    temporal_downsample: tuple[bool, ...] = (False, True, True),
                    patch_size: int = 2) -> Shapes:
    """Official key -> shape; the defaults are the released TI2V-5B VAE (`Wan2_2_VAE`)."""
    shapes: Shapes = {}

    def conv(name: str, cin: int, cout: int, kernel: tuple[int, ...]) -> None:
        shapes[f"{name}.weight"] = (cout, cin, *kernel)
        shapes[f"{name}.bias"] = (cout,)

    def residual(name: str, cin: int, cout: int) -> None:
        # residual = Sequential(RMS_norm, SiLU, conv, RMS_norm, SiLU, Dropout, conv)
        shapes[f"{name}.residual.0.gamma"] = (cin, 1, 1, 1)
        conv(f"{name}.residual.2", cin, cout, (3, 3, 3))
        shapes[f"{name}.residual.3.gamma"] = (cout, 1, 1, 1)
        conv(f"{name}.residual.6", cout, cout, (3, 3, 3))
        if cin != cout:
            conv(f"{name}.shortcut", cin, cout, (1, 1, 1))

    def middle(name: str, c: int) -> None:
        residual(f"{name}.0", c, c)
        shapes[f"{name}.1.norm.gamma"] = (c, 1, 1)  # RMS_norm over images: 2 broadcast dims
        conv(f"{name}.1.to_qkv", c, 3 * c, (1, 1))
        conv(f"{name}.1.proj", c, c, (1, 1))
        residual(f"{name}.2", c, c)

    pixels = 3 * patch_size ** 2
    last = len(dim_mult) - 1

    enc = [dim * u for u in (1, *dim_mult)]
    conv("encoder.conv1", pixels, enc[0], (3, 3, 3))
    for i, (cin, cout) in enumerate(zip(enc, enc[1:])):
        stage = f"encoder.downsamples.{i}.downsamples"
        for j in range(num_res_blocks):
            residual(f"{stage}.{j}", cin if j == 0 else cout, cout)
        if i < last:  # Resample: ZeroPad2d + stride-2 Conv2d (+ stride-2 time conv)
            conv(f"{stage}.{num_res_blocks}.resample.1", cout, cout, (3, 3))
            if temporal_downsample[i]:
                conv(f"{stage}.{num_res_blocks}.time_conv", cout, cout, (3, 1, 1))
    middle("encoder.middle", enc[-1])
    shapes["encoder.head.0.gamma"] = (enc[-1], 1, 1, 1)
    conv("encoder.head.2", enc[-1], 2 * z_dim, (3, 3, 3))

    conv("conv1", 2 * z_dim, 2 * z_dim, (1, 1, 1))
    conv("conv2", z_dim, z_dim, (1, 1, 1))

    dec = [dec_dim * u for u in (dim_mult[-1], *reversed(dim_mult))]
    temporal_upsample = tuple(reversed(temporal_downsample))
    conv("decoder.conv1", z_dim, dec[0], (3, 3, 3))
    middle("decoder.middle", dec[0])
    for i, (cin, cout) in enumerate(zip(dec, dec[1:])):
        stage = f"decoder.upsamples.{i}.upsamples"
        for j in range(num_res_blocks + 1):
            residual(f"{stage}.{j}", cin if j == 0 else cout, cout)
        if i < last:  # Resample: nearest-exact x2 + Conv2d (+ time conv to 2x channels)
            conv(f"{stage}.{num_res_blocks + 1}.resample.1", cout, cout, (3, 3))
            if temporal_upsample[i]:
                conv(f"{stage}.{num_res_blocks + 1}.time_conv", cout, 2 * cout, (3, 1, 1))
    shapes["decoder.head.0.gamma"] = (dec[-1], 1, 1, 1)
    conv("decoder.head.2", dec[-1], pixels, (3, 3, 3))
    return shapes


def random_state_dict(shapes: Shapes, seed: int = 0, off_centre: float = 0.1) -> dict[str, Tensor]:
    """Random weights with fan-in scaling, so activations stay O(1) through the network.

    The spatial off-centre taps of 3x3 kernels are scaled by `off_centre`: a network of fully
    random 3x3 convolutions mixes its whole (huge) receptive field, while a trained VAE is
    mostly local. Locality is what makes tiled and untiled decoding comparable."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        x = torch.randn(shape, generator=g)
        if key.endswith(".gamma"):
            state[key] = 1.0 + 0.1 * x
        elif key.endswith(".bias"):
            state[key] = 0.01 * x
        else:
            w = x / math.sqrt(math.prod(shape[1:]))
            if shape[-2:] == (3, 3):
                taps = torch.full((3, 3), off_centre)
                taps[1, 1] = 1.0
                w = w * taps
            state[key] = w
    return state


def write_tiny_checkpoint(path: str | Path, *, nested: bool = False, legacy: bool = False,
                          seed: int = 0, **sizes: object) -> dict[str, Tensor]:
    """A torch.save'd official-format state dict with base widths 8 (override any
    `official_shapes` argument); `nested` wraps it as {"state_dict": ...} like a training
    checkpoint, `legacy` writes torch's pre-1.6 (non-zip) format. Returns the state dict."""
    sizes = {"dim": 8, "dec_dim": 8, **sizes}
    state = random_state_dict(official_shapes(**sizes), seed)  # type: ignore[arg-type]
    torch.save({"state_dict": state} if nested else state, path,
               _use_new_zipfile_serialization=not legacy)
    return state
