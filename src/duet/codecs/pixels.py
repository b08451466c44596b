"""`PixelCodec`: a fixed, weight-free stand-in for a video VAE, for the small CPU model.

A latent is the clip shrunk by the stride with area averaging, in a rotated colour basis.
It has the same contract as Wan's causal VAE, so everything above the codec (patching, RoPE,
the sampler, the pipeline) runs unchanged when the real VAE is swapped in:

- time is causal: latent frame 0 is pixel frame 0 alone; latent frame k >= 1 is the mean of
  pixel frames st*(k-1)+1 .. st*k (frames 1-4, 5-8, ... for st = 4);
- space is area-averaged over sh x sw blocks;
- colour: `latent = scale * (Q @ rgb)` with the orthonormal opponent basis
  Q = [(1,1,1)/sqrt3, (1,-1,0)/sqrt2, (1,1,-2)/sqrt6] (brightness, red-green, blue-yellow).
  The default `scale = sqrt(3)` gives unit variance per channel for flat regions of uniformly
  random colour in [-1, 1] (each RGB channel has variance 1/3 and Q preserves it).

Decoding inverts the colour map, places each latent frame at the centre of the frames it
averaged (frame 0 at 0, frame k at st*k - (st-1)/2) and interpolates linearly in time between
those centres (held constant past the last one), then upsamples space bilinearly. Both are
convex blends, so values in range stay in range; the result is clamped to [-1, 1]. Linear
rather than nearest in time matters for sync: repeating a latent frame over its stride would
make motion jump in steps of st frames, and every visible event would land on that grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from duet.codecs.base import WeightFree, check_frame_size, check_video_tensor
from duet.errors import ConfigError, InputError

# Rows: brightness, red-green, blue-yellow. Orthonormal, so its inverse is its transpose.
_OPPONENT = (
    (1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)),
    (1 / math.sqrt(2), -1 / math.sqrt(2), 0.0),
    (1 / math.sqrt(6), 1 / math.sqrt(6), -2 / math.sqrt(6)),
)
DEFAULT_SCALE = math.sqrt(3.0)


class PixelCodec(WeightFree):
    """Area-averaging causal video codec with 3 latent channels; see the module docstring."""

    latent_channels: int = 3

    def __init__(self, stride: Sequence[int] = (4, 8, 8),
                 scale: float | Sequence[float] = DEFAULT_SCALE, opponent: bool = True) -> None:
        st = [int(s) for s in stride]
        if len(st) != 3 or min(st) < 1:
            raise ConfigError(f"stride must be three positive integers (t, h, w), got {stride}")
        sc = [float(scale)] * 3 if isinstance(scale, (int, float)) else [float(s) for s in scale]
        if len(sc) != 3 or not all(math.isfinite(s) and s > 0 for s in sc):
            raise ConfigError(f"scale must be a positive number or three of them, got {scale!r}")
        self.stride: tuple[int, int, int] = (st[0], st[1], st[2])
        self.scale: tuple[float, float, float] = (sc[0], sc[1], sc[2])
        self.opponent = opponent

    def __repr__(self) -> str:
        return f"PixelCodec(stride={self.stride}, scale={self.scale}, opponent={self.opponent})"

    # -- sizes -----------------------------------------------------------------------------

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """`(3, (frames-1)//st + 1, height//sh, width//sw)`; raises InputError on bad sizes."""
        self._check_size(frames, height, width)
        st, sh, sw = self.stride
        return (self.latent_channels, (frames - 1) // st + 1, height // sh, width // sw)

    def _check_size(self, frames: int, height: int, width: int) -> None:
        st, sh, sw = self.stride
        if frames < 1 or (frames - 1) % st:
            k = max(0, round((frames - 1) / st))
            raise InputError(
                f"video has {frames} frames; this codec needs {st}k + 1 frames (1, {st + 1}, "
                f"{2 * st + 1}, ...): trim or pad to {st * k + 1}")
        check_frame_size(height, width, sh, sw)

    # -- transforms ------------------------------------------------------------------------

    def _colour(self, like: Tensor, inverse: bool) -> Tensor:
        """The 3x3 colour map for `like`'s device and dtype (built per call: 9 numbers)."""
        q = torch.tensor(_OPPONENT, dtype=torch.float64) if self.opponent else torch.eye(3)
        s = torch.tensor(self.scale, dtype=torch.float64)
        m = q.T.double() / s[None, :] if inverse else s[:, None] * q.double()
        return m.to(device=like.device, dtype=like.dtype)

    def encode(self, video: Tensor) -> Tensor:
        """`[B, 3, T, H, W]` in [-1, 1] -> `[B, 3, (T-1)//st + 1, H/sh, W/sw]`."""
        check_video_tensor(video, "video", 3)
        self._check_size(*video.shape[2:])
        st, sh, sw = self.stride
        first = _block_mean(video[:, :, :1], (1, sh, sw))  # [B, 3, 1, h, w]
        rest = _block_mean(video[:, :, 1:], (st, sh, sw))  # [B, 3, (T-1)/st, h, w]
        x = torch.cat([first, rest], dim=2)  # [B, 3, F, h, w]
        return torch.einsum("oc,bcfhw->bofhw", self._colour(x, inverse=False), x)

    def decode(self, latents: Tensor) -> Tensor:
        """`[B, 3, F, h, w]` -> `[B, 3, st*(F-1) + 1, h*sh, w*sw]` in [-1, 1]."""
        check_video_tensor(latents, "latents", self.latent_channels)
        st, sh, sw = self.stride
        x = torch.einsum("oc,bcfhw->bofhw", self._colour(latents, inverse=True), latents)
        x = torch.einsum("tf,bcfhw->bcthw", _time_weights(latents.shape[2], st).to(x), x)
        b, c, t, h, w = x.shape  # t = st*(F-1) + 1
        if (sh, sw) != (1, 1):
            x = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # [B*T, 3, h, w]
            x = F.interpolate(x, size=(h * sh, w * sw), mode="bilinear", align_corners=False)
            x = x.reshape(b, t, c, h * sh, w * sw).permute(0, 2, 1, 3, 4)  # [B, 3, T, H, W]
        return x.clamp(-1.0, 1.0)


def _time_weights(latent_frames: int, st: int) -> Tensor:
    """`[st*(F-1) + 1, F]` linear-interpolation weights from latent-frame centres to frames."""
    centres = torch.tensor([0.0] + [st * k - (st - 1) / 2 for k in range(1, latent_frames)],
                           dtype=torch.float64)
    t = torch.arange(st * (latent_frames - 1) + 1, dtype=torch.float64).clamp(max=centres[-1])
    hi = torch.searchsorted(centres, t, right=False).clamp(1, max(latent_frames - 1, 1))
    w = torch.zeros(len(t), latent_frames, dtype=torch.float64)
    if latent_frames == 1:
        return w + 1.0
    lo = hi - 1
    frac = ((t - centres[lo]) / (centres[hi] - centres[lo])).clamp(0.0, 1.0)
    rows = torch.arange(len(t))
    w[rows, lo] = 1.0 - frac
    w[rows, hi] += frac
    return w


def _block_mean(x: Tensor, block: tuple[int, int, int]) -> Tensor:
    """Mean over non-overlapping (t, h, w) blocks of `[B, C, T, H, W]` (any float dtype;
    CPU avg_pool3d has no bfloat16 kernel)."""
    b, c, t, h, w = x.shape
    bt, bh, bw = block
    x = x.reshape(b, c, t // bt, bt, h // bh, bh, w // bw, bw)
    return x.mean(dim=(3, 5, 7))

