"""Tiny random MMAudio checkpoints in the official file formats, for tests.

`vae_shapes` writes out the parameter names and shapes of `VAE` in hkchengrex/MMAudio
`mmaudio/ext/autoencoder/vae.py` (Encoder1D / Decoder1D of ResnetBlock1D, AttnBlock1D and
MPConv1D, attention only in the middle since `attn_layers=[3]` names no level).
`vocoder_shapes` does the same for `BigVGANVocoder` of `mmaudio/ext/bigvgan/models.py` with
`bigvgan_vocoder.yml`, every convolution weight-normalised as `weight_g` / `weight_v` (how the
released `best_netG.pt` stores them). Both are written from the official structure, not from
diffusers or `duet.codecs.mmaudio`, so loading them is a real check of the key map.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

Shapes = dict[str, tuple[int, ...]]


def vae_shapes(hidden: int = 384, mel_bins: int = 80, latent: int = 20,
               ch_mult: tuple[int, ...] = (1, 2, 4), num_res_blocks: int = 2) -> Shapes:
    """Official key -> shape; the defaults are `VAE_16k` (v1-16.pth)."""
    shapes: Shapes = {"data_mean": (1, mel_bins, 1), "data_std": (1, mel_bins, 1)}

    def mpconv(name: str, cin: int, cout: int, k: int) -> None:
        shapes[f"{name}.weight"] = (cout, cin, k)  # MPConv1D: no bias

    def resnet(name: str, cin: int, cout: int) -> None:
        mpconv(f"{name}.conv1", cin, cout, 3)
        mpconv(f"{name}.conv2", cout, cout, 3)
        if cin != cout:
            mpconv(f"{name}.nin_shortcut", cin, cout, 1)

    def middle(name: str, c: int) -> None:
        resnet(f"{name}.block_1", c, c)
        mpconv(f"{name}.attn_1.qkv", c, 3 * c, 1)
        mpconv(f"{name}.attn_1.proj_out", c, c, 1)
        resnet(f"{name}.block_2", c, c)

    widths = [hidden * m for m in ch_mult]
    mpconv("encoder.conv_in", mel_bins, hidden, 3)
    c = hidden
    for level, w in enumerate(widths):
        for b in range(num_res_blocks):
            resnet(f"encoder.down.{level}.block.{b}", c, w)
            c = w
        if level == 0:  # down_layers=[0]: Downsample1D = 1x1 conv, avg-pool 2, 1x1 conv
            mpconv(f"encoder.down.{level}.downsample.conv1", c, c, 1)
            mpconv(f"encoder.down.{level}.downsample.conv2", c, c, 1)
    middle("encoder.mid", c)
    mpconv("encoder.conv_out", c, 2 * latent, 3)
    shapes["encoder.learnable_gain"] = ()

    mpconv("decoder.conv_in", latent, c, 3)
    middle("decoder.mid", c)
    for level in reversed(range(len(widths))):
        for b in range(num_res_blocks + 1):
            resnet(f"decoder.up.{level}.block.{b}", c, widths[level])
            c = widths[level]
        if level == 1:  # the decoder's up_layers are the encoder's down_layers + 1
            mpconv(f"decoder.up.{level}.upsample.conv", c, c, 3)
    mpconv("decoder.conv_out", c, mel_bins, 3)
    shapes["decoder.learnable_gain"] = ()
    return shapes


def vae_state(seed: int = 0, **sizes: int) -> dict[str, Tensor]:
    """Random weights as MMAudio trains them (MPConv1D starts from randn; its forward pass
    normalises them), plausible per-bin log-mel statistics."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in vae_shapes(**sizes).items():  # type: ignore[arg-type]
        if key == "data_mean":
            state[key] = torch.linspace(-1.6, -3.0, shape[1]).view(shape)
        elif key == "data_std":
            state[key] = 0.9 + 0.2 * torch.rand(shape, generator=g)
        else:
            state[key] = torch.randn(shape, generator=g)  # learnable_gain: a 0-dim tensor
    return state


def vocoder_shapes(channels: int = 1536, mel_bins: int = 80,
                   rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2),
                   kernels: tuple[int, ...] = (8, 8, 4, 4, 4, 4),
                   resblock_kernels: tuple[int, ...] = (3, 7, 11)) -> Shapes:
    """Official generator key -> shape; the defaults are `bigvgan_vocoder.yml` (best_netG.pt)."""
    shapes: Shapes = {}

    def wn_conv(name: str, d0: int, d1: int, k: int, out: int) -> None:
        shapes[f"{name}.weight_g"] = (d0, 1, 1)  # weight_norm(dim=0) magnitude
        shapes[f"{name}.weight_v"] = (d0, d1, k)
        shapes[f"{name}.bias"] = (out,)

    def activation(name: str, c: int) -> None:  # Activation1d(SnakeBeta), 12-tap filters
        shapes[f"{name}.act.alpha"] = (c,)
        shapes[f"{name}.act.beta"] = (c,)
        shapes[f"{name}.upsample.filter"] = (1, 1, 12)
        shapes[f"{name}.downsample.lowpass.filter"] = (1, 1, 12)

    wn_conv("conv_pre", channels, mel_bins, 7, channels)
    for i, k in enumerate(kernels[: len(rates)]):
        cin, cout = channels // 2**i, channels // 2 ** (i + 1)
        wn_conv(f"ups.{i}.0", cin, cout, k, cout)  # ConvTranspose1d weight: [in, out, k]
    for i in range(len(rates)):
        c = channels // 2 ** (i + 1)
        for j, k in enumerate(resblock_kernels):
            block = f"resblocks.{i * len(resblock_kernels) + j}"
            for n in range(3):  # AMPBlock1: dilations (1, 3, 5)
                wn_conv(f"{block}.convs1.{n}", c, c, k, c)
                wn_conv(f"{block}.convs2.{n}", c, c, k, c)
            for n in range(6):
                activation(f"{block}.activations.{n}", c)
    c = channels // 2 ** len(rates)
    activation("activation_post", c)
    wn_conv("conv_post", 1, c, 7, 1)
    return shapes


def _lowpass(taps: int = 12, cutoff: float = 0.25, half_width: float = 0.3) -> Tensor:
    """The anti-aliasing filter of a 2x Activation1d: Kaiser-windowed sinc, unit sum."""
    attenuation = 2.285 * (taps // 2 - 1) * math.pi * 4 * half_width + 7.95
    window = torch.kaiser_window(taps, periodic=False, beta=0.1102 * (attenuation - 8.7))
    t = torch.arange(-(taps // 2), taps // 2) + 0.5
    f = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
    return (f / f.sum()).view(1, 1, taps)


def vocoder_state(seed: int = 0, **sizes: int) -> dict[str, Tensor]:
    """Random generator weights: directions v ~ randn, magnitudes g chosen so each filter has
    a fan-in-scaled norm (activations stay O(1)), snake parameters near their log-scale 0."""
    g = torch.Generator().manual_seed(seed)
    shapes = vocoder_shapes(**sizes)  # type: ignore[arg-type]
    state = {}
    for key, shape in shapes.items():
        if key.endswith(".weight_g"):
            fan_in = math.prod(shapes[key[: -len("_g")] + "_v"][1:])
            state[key] = torch.full(shape, 1.0 / math.sqrt(max(fan_in // 4, 1)))
        elif key.endswith(".filter"):
            state[key] = _lowpass()
        elif key.endswith((".alpha", ".beta", ".bias")):
            state[key] = 0.1 * torch.randn(shape, generator=g)
        else:
            state[key] = torch.randn(shape, generator=g)
    return state


def write_vae(path: str | Path, state: dict[str, Tensor] | None = None, **sizes: int) -> Path:
    """`v1-16.pth`: the state dict itself; base width 8 unless `hidden` is given."""
    path = Path(path)
    torch.save(state if state is not None else vae_state(**{"hidden": 8, **sizes}), path)
    return path


def write_vocoder(path: str | Path, state: dict[str, Tensor] | None = None,
                  **sizes: int) -> Path:
    """`best_netG.pt`: {"generator": state dict}; 64 channels after conv_pre (1 at the end)
    unless `channels` is given."""
    path = Path(path)
    generator = state if state is not None else vocoder_state(**{"channels": 64, **sizes})
    torch.save({"generator": generator}, path)
    return path


def write_ext_weights(root: str | Path) -> tuple[Path, Path]:
    """`root/ext_weights/v1-16.pth` and `root/ext_weights/best_netG.pt`, as Ovi lays them out
    under `MMAudio/`."""
    folder = Path(root) / "ext_weights"
    folder.mkdir(parents=True, exist_ok=True)
    return write_vae(folder / "v1-16.pth"), write_vocoder(folder / "best_netG.pt")
