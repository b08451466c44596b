"""`WanVAECodec`: the Wan2.2 video VAE (`Wan2.2_VAE.pth`, from Wan2.2-TI2V-5B) as a `VideoCodec`.

Why this codec: Ovi's video tower is Wan2.2-5B's, and it denoises in this VAE's latent space,
so real Ovi weights are only meaningful with exactly this encoder/decoder and its latent
statistics.

What it is: a causal 3D-convolutional VAE. Frames are folded 2x2 into channels (12 = 3 * 2 * 2),
then three stride-2 stages halve height and width (16x in all with the fold), two of which
also halve time, causally: T = 4k + 1 frames <-> k + 1 latent frames (frame 0 alone). The
stage shortcuts are parameter-free averages / repeats ("residual" down/up sampling, new in
Wan2.2); the decoder is wider than the encoder (base 256 vs 160). 48 latent channels.

Where the code comes from: the network is diffusers' `AutoencoderKLWan`. The weights are the
official file, not diffusers' converted folder, because that file is what Wan and Ovi
distribute; `duet.weights.official.wan_vae_key` renames its keys by a handful of structural rules (the
two implementations nest the same layers differently), and loading is strict both ways.
Sizes are read from the checkpoint's shapes (`WanVAEArch.from_shapes`), so a tiny file with
the official layout exercises the same loading code as the 2.8 GB one.

Latents are standardised per channel, `(mu - mean) / std`, with the 48 statistics that
Wan2.2 ships in code (not in the checkpoint); the encoder returns the posterior mean, so
encoding is deterministic.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from duet.codecs.base import check_frame_size, check_video_tensor
from duet.errors import CheckpointError, ConfigError, InputError
from duet.weights import key_problems, read_torch_file, tensor_dict, wan_vae_key

if TYPE_CHECKING:  # diffusers takes seconds to import: only codecs that are built pay for it
    from diffusers import AutoencoderKLWan

log = logging.getLogger(__name__)

# Per-channel latent statistics of the Wan2.2 VAE, as given by `Wan2_2_VAE` in
# Wan-Video/Wan2.2 wan/modules/vae2_2.py (and diffusers' Wan2.2 TI2V config).
WAN22_LATENT_MEAN: tuple[float, ...] = (
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
    -0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825,
    -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230,
    -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
    0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
)
WAN22_LATENT_STD: tuple[float, ...] = (
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013,
    0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
    0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
    0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
    0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
)

_DOWNLOAD_HINT = ("use the official Wan2.2_VAE.pth from the Wan-AI/Wan2.2-TI2V-5B model "
                  "repository (Wan2.1_VAE.pth and diffusers' converted `vae/` folder have other "
                  "layouts)")


def latent_stats(z_dim: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) that standardise the latents. Wan2.2's own numbers for its 48 channels; a
    checkpoint with another width (a test model) has no published statistics, so it gets the
    identity (0, 1) rather than numbers that belong to a different model."""
    if z_dim == len(WAN22_LATENT_MEAN):
        return WAN22_LATENT_MEAN, WAN22_LATENT_STD
    return (0.0,) * z_dim, (1.0,) * z_dim


@dataclass(frozen=True)
class WanVAEArch:
    """Sizes of a Wan2.2-layout VAE; the defaults are the released TI2V-5B VAE.

    Names follow the official `WanVAE_` (`dim`, `dec_dim`, ...), not diffusers."""

    dim: int = 160  # encoder base width
    dec_dim: int = 256  # decoder base width (the decoder is wider than the encoder)
    z_dim: int = 48  # latent channels
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)  # width per stage; all but the last halve H, W
    num_res_blocks: int = 2  # residual blocks per encoder stage; decoder stages have one more
    temporal_downsample: tuple[bool, ...] = (False, True, True)  # which halvings also halve T
    patch_size: int = 2  # pixels folded into channels before the first convolution

    def __post_init__(self) -> None:
        if len(self.temporal_downsample) != len(self.dim_mult) - 1:
            raise ConfigError(f"Wan VAE needs one temporal_downsample flag per downsampling stage "
                              f"({len(self.dim_mult) - 1}), got {self.temporal_downsample}")
        if sum(self.temporal_downsample) != 2:
            # diffusers encodes causally in chunks of 4 frames, which assumes stride 4 in time
            raise ConfigError(f"Wan VAE must halve time exactly twice (4x), got "
                              f"temporal_downsample={self.temporal_downsample}")
        if min(self.dim, self.dec_dim, self.z_dim, self.num_res_blocks, self.patch_size,
               *self.dim_mult) < 1:
            raise ConfigError(f"Wan VAE sizes must be positive, got {self}")

    @property
    def stride(self) -> tuple[int, int, int]:
        """(t, h, w) pixels per latent."""
        s = self.patch_size * 2 ** (len(self.dim_mult) - 1)
        return (2 ** sum(self.temporal_downsample), s, s)

    def diffusers_config(self) -> dict[str, Any]:
        """Constructor arguments of `diffusers.AutoencoderKLWan` for this architecture (for the
        defaults, the values of diffusers' own Wan2.2 TI2V conversion)."""
        mean, std = latent_stats(self.z_dim)
        pixels = 3 * self.patch_size ** 2
        st, s, _ = self.stride
        return {"base_dim": self.dim, "decoder_base_dim": self.dec_dim, "z_dim": self.z_dim,
                "dim_mult": list(self.dim_mult), "num_res_blocks": self.num_res_blocks,
                "temperal_downsample": list(self.temporal_downsample), "is_residual": True,
                "in_channels": pixels, "out_channels": pixels, "patch_size": self.patch_size,
                "scale_factor_temporal": st, "scale_factor_spatial": s,
                "latents_mean": list(mean), "latents_std": list(std)}

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, tuple[int, ...]], source: str) -> WanVAEArch:
        """Read the sizes from an official state dict's key names and shapes. Only what the
        sizes depend on is read here; every other key and shape is checked on load."""

        def shape(key: str) -> tuple[int, ...]:
            if key not in shapes:
                raise CheckpointError(f"{source} is not a Wan2.2 VAE checkpoint: it has no "
                                      f"{key!r}; {_DOWNLOAD_HINT}")
            return tuple(shapes[key])

        dim, pixels = shape("encoder.conv1.weight")[:2]
        patch = math.isqrt(pixels // 3)
        stages = len(_child_indices(shapes, "encoder.downsamples."))
        blocks = len(_child_indices(shapes, "encoder.downsamples.0.downsamples.", "residual."))
        if 3 * patch * patch != pixels or stages < 2 or blocks < 1:
            raise CheckpointError(
                f"{source} does not have the Wan2.2 VAE layout (first conv takes {pixels} "
                f"channels, {stages} encoder stages of {blocks} residual blocks); {_DOWNLOAD_HINT}")
        mult = tuple(shape(f"encoder.downsamples.{i}.downsamples.0.residual.2.weight")[0] // dim
                     for i in range(stages))
        if 0 in mult:
            raise CheckpointError(f"{source}: encoder stages are narrower than its first "
                                  f"convolution ({dim} channels); {_DOWNLOAD_HINT}")
        temporal = tuple(f"encoder.downsamples.{i}.downsamples.{blocks}.time_conv.weight" in shapes
                         for i in range(stages - 1))
        try:
            return cls(dim=dim, dec_dim=shape("decoder.head.2.weight")[1] // mult[0],
                       z_dim=shape("conv2.weight")[0], dim_mult=mult, num_res_blocks=blocks,
                       temporal_downsample=temporal, patch_size=patch)
        except ConfigError as e:
            raise CheckpointError(f"{source} is not a usable Wan2.2 VAE: {e}") from None


def _child_indices(keys: Iterable[str], prefix: str, then: str = "") -> set[int]:
    """The N of keys `{prefix}N.{then}...`: the children of a Sequential/ModuleList."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\." + re.escape(then))
    return {int(m.group(1)) for m in map(pattern.match, keys) if m}


def build_vae(arch: WanVAEArch) -> AutoencoderKLWan:
    """The diffusers network on the meta device: it holds no memory until weights are
    assigned, so the full model never exists twice while loading."""
    from diffusers import AutoencoderKLWan

    with torch.device("meta"):
        return AutoencoderKLWan(**arch.diffusers_config())


def load_wan_vae(path: str | os.PathLike) -> tuple[AutoencoderKLWan, WanVAEArch]:
    """The official checkpoint as a diffusers `AutoencoderKLWan` (float as stored, on CPU,
    eval mode, no gradients) and the architecture read from it."""
    path = Path(path)
    official = _read_state_dict(path)
    arch = WanVAEArch.from_shapes({k: tuple(v.shape) for k, v in official.items()}, str(path))
    vae = build_vae(arch)
    state = _rename(official, path)
    _check_layout(state, vae.state_dict(), arch, path)
    vae.load_state_dict(state, strict=True, assign=True)
    return vae.eval().requires_grad_(False), arch


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """The official file's flat state dict; training checkpoints nest it one level down."""
    obj = read_torch_file(path, "the Wan2.2 VAE checkpoint", _DOWNLOAD_HINT)
    while isinstance(obj, Mapping) and not any(isinstance(v, Tensor) for v in obj.values()):
        inner = [obj[k] for k in ("state_dict", "model", "vae") if isinstance(obj.get(k), Mapping)]
        if not inner:
            break
        obj = inner[0]
    return tensor_dict(obj, path, _DOWNLOAD_HINT)


def _rename(official: Mapping[str, Tensor], path: Path) -> dict[str, Tensor]:
    """Official -> diffusers names; two official keys landing on one name is a broken file."""
    state: dict[str, Tensor] = {}
    source: dict[str, str] = {}
    for key, value in official.items():
        new = wan_vae_key(key)
        if new in state:
            raise CheckpointError(f"{path}: keys {source[new]!r} and {key!r} are the same "
                                  f"parameter ({new!r}); {_DOWNLOAD_HINT}")
        state[new], source[new] = value, key
    return state


def _check_layout(state: Mapping[str, Tensor], expected: Mapping[str, Tensor], arch: WanVAEArch,
                  path: Path) -> None:
    """Strict both ways, with shapes, before anything is loaded: an error that lists a few
    offending keys beats torch's list of hundreds."""
    problems = key_problems(expected, state)
    if problems:
        raise CheckpointError(f"{path} does not match the Wan2.2 VAE layout its shapes imply "
                              f"({arch}); diffusers names: {problems}. {_DOWNLOAD_HINT}")


class WanVAECodec:
    """VideoCodec over the Wan2.2 VAE; see the module docstring.

    `path`: the official `Wan2.2_VAE.pth`. `tiled`: encode/decode frames larger than
    `tile_size` pixels in overlapping tiles `tile_stride` apart, blended at the seams (diffusers'
    tiling), which bounds activation memory by the tile instead of the frame at the cost of
    slight differences near seams. The sizes are in output pixels for decoding; diffusers
    applies the same numbers after the 2x2 fold when encoding, so encode tiles cover twice
    that. Weights run on `device` in `dtype`; latent standardisation runs in float32."""

    def __init__(self, path: str | os.PathLike, *, tiled: bool = False, tile_size: int = 256,
                 tile_stride: int = 192, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.path = Path(path)
        self.vae, self.arch = load_wan_vae(self.path)
        self.latent_channels: int = self.arch.z_dim
        self.stride: tuple[int, int, int] = self.arch.stride
        mean, std = latent_stats(self.arch.z_dim)
        self._mean = torch.tensor(mean).view(-1, 1, 1, 1)  # [C, 1, 1, 1], broadcasts over F, h, w
        self._std = torch.tensor(std).view(-1, 1, 1, 1)
        self.tiled = tiled
        if tiled:
            self._enable_tiling(tile_size, tile_stride)
        self.dtype = torch.float32
        self.to(device, dtype)

    def _enable_tiling(self, tile_size: int, tile_stride: int) -> None:
        s = self.stride[1]
        if tile_size < s or tile_size % s or tile_stride < s or tile_stride % s \
                or tile_stride > tile_size:
            raise ConfigError(f"Wan VAE tiles need tile_size and tile_stride as multiples of {s} "
                              f"with tile_stride <= tile_size, got {tile_size}, {tile_stride}; "
                              "e.g. tile_size=256, tile_stride=192")
        self.vae.enable_tiling(tile_size, tile_size, tile_stride, tile_stride)

    def __repr__(self) -> str:
        return (f"WanVAECodec(path={str(self.path)!r}, tiled={self.tiled}, "
                f"device={self._mean.device}, dtype={self.dtype})")

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        st, sh, sw = self.stride
        if frames < 1 or (frames - 1) % st:
            up = st * math.ceil(max(frames - 1, 0) / st) + 1
            fix = f"pad to {up}" + (f" or trim to {up - st}" if up > st else "")
            raise InputError(f"video has {frames} frames; the Wan2.2 VAE needs {st}k+1 frames "
                             f"(1, {st + 1}, {2 * st + 1}, ...): {fix}")
        check_frame_size(height, width, sh, sw)
        return (self.latent_channels, (frames - 1) // st + 1, height // sh, width // sw)

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> WanVAECodec:
        """Move the weights; `dtype` (e.g. bfloat16 on GPU) is what the network computes in."""
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise InputError(f"the Wan VAE computes in a floating-point dtype, got {dtype!r}")
        try:
            # nn.Module.to, not diffusers' override: that one warns about float32-only modules
            # on every dtype cast, and this model has none
            torch.nn.Module.to(self.vae, device=device, dtype=dtype)
            self._mean, self._std = self._mean.to(device), self._std.to(device)
        except (RuntimeError, AssertionError) as e:  # torch asserts when CUDA is not built in
            raise InputError(f"cannot move the Wan VAE to {device!r}: {e}") from None
        self.dtype = dtype or self.dtype
        return self

    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        """`[B, 3, T, H, W]` in [-1, 1], T = 4k + 1 -> standardised `[B, C, k + 1, H/16, W/16]`:
        the posterior mean, so the same clip always gives the same latents. Returned on the
        input's device, in its dtype."""
        check_video_tensor(video, "video", 3)
        self.latent_shape(*video.shape[2:])
        x = video.to(self._mean.device, self.dtype)
        mu = self.vae.encode(x).latent_dist.mode()  # [B, C, F, h, w]
        z = (mu.float() - self._mean) / self._std
        return z.to(video.device, video.dtype)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Standardised `[B, C, F, h, w]` -> `[B, 3, 4(F - 1) + 1, 16h, 16w]` in [-1, 1], on the
        input's device, in its dtype."""
        check_video_tensor(latents, "latents", self.latent_channels)
        if min(latents.shape[2:]) < 1:
            raise InputError(f"latents must have at least one frame, row and column, got "
                             f"{list(latents.shape)}")
        z = latents.to(self._mean.device, torch.float32) * self._std + self._mean
        x = self.vae.decode(z.to(self.dtype)).sample  # clamped to [-1, 1] by diffusers
        return x.to(latents.device, latents.dtype)
