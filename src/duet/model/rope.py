"""Rotary position embeddings: 3-D for video tokens, 1-D time-scaled for audio tokens.

Ovi puts both modalities on one time axis by multiplying the audio tower's temporal
frequencies by `rope_time_scale`, so audio latent l and video latent frame f meet in the
cross-modal attention at positions 0.19676·l and f. The factor is a config value; the rule
that derives it is `duet.config.audio_rope_time_scale`, and this module only applies it.
Tables are real-valued (cos, sin) of shape [L, head_dim / 2], built in float64 and applied to
interleaved channel pairs (2k, 2k+1), as the official Wan/Ovi code does with complex numbers.
"""

from __future__ import annotations

import torch
from torch import Tensor

THETA = 10000.0


def head_dim_split(head_dim: int) -> tuple[int, int]:
    """Channels per head given to time (a) and to each spatial axis (b): 44/42/42 for 128."""
    b = 2 * (head_dim // 6)
    return head_dim - 2 * b, b


def frequencies(n: int, device: torch.device | None = None) -> Tensor:
    """The n/2 frequencies of a 1-D table of size n: theta^(-2j/n), float64."""
    return THETA ** (-torch.arange(0, n, 2, dtype=torch.float64, device=device) / n)


def _table(angles: Tensor) -> tuple[Tensor, Tensor]:
    return angles.cos(), angles.sin()


def video_rope(grid: tuple[int, int, int], head_dim: int,
               device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """(cos, sin) [F·H·W, head_dim/2] for tokens ordered f-major, then h, then w."""
    f, h, w = grid
    a, b = head_dim_split(head_dim)
    ft = torch.arange(f, dtype=torch.float64, device=device)[:, None] * frequencies(a, device)
    ht = torch.arange(h, dtype=torch.float64, device=device)[:, None] * frequencies(b, device)
    wt = torch.arange(w, dtype=torch.float64, device=device)[:, None] * frequencies(b, device)
    angles = torch.cat([
        ft[:, None, None, :].expand(f, h, w, a // 2),
        ht[None, :, None, :].expand(f, h, w, b // 2),
        wt[None, None, :, :].expand(f, h, w, b // 2),
    ], dim=-1)  # (F, H, W, head_dim/2)
    return _table(angles.reshape(f * h * w, head_dim // 2))


def audio_rope(length: int, head_dim: int, time_scale: float,
               device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """(cos, sin) [L, head_dim/2]: only the first a/2 pairs (the video time channels) rotate."""
    a, _ = head_dim_split(head_dim)
    pos = torch.arange(length, dtype=torch.float64, device=device)[:, None]
    angles = torch.zeros(length, head_dim // 2, dtype=torch.float64, device=device)
    angles[:, : a // 2] = pos * (frequencies(a, device) * time_scale)  # unrotated rest: angle 0
    return _table(angles)


def apply_rope(x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
    """Rotate channel pairs of x [B, L, H, D] by the table's angles; returns x's dtype.

    Eagerly, as one complex multiply (pair = re + i·im, times cos + i·sin): the same products
    as the real-valued formula, bit for bit, in one kernel instead of six and a stack (15x
    faster on a CPU, where RoPE was a tenth of a forward). Under torch.compile, the real
    formula: inductor fuses it into its neighbours but generates no code for complex ops."""
    cos, sin = rope
    dtype = torch.promote_types(x.dtype, torch.float32)
    cos, sin = cos.to(dtype)[None, :, None, :], sin.to(dtype)[None, :, None, :]  # (1, L, 1, D/2)
    pairs = x.to(dtype).unflatten(-1, (-1, 2))  # (B, L, H, D/2, 2)
    if torch.compiler.is_compiling():
        re, im = pairs[..., 0], pairs[..., 1]
        out = torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1)
    else:
        out = torch.view_as_real(torch.view_as_complex(pairs.contiguous()) * torch.complex(cos, sin))
    return out.flatten(-2).type_as(x)
