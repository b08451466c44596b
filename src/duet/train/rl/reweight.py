"""OmniNFT's region-wise reweighting of the video loss.

Where the audio attends in the picture is where the sound comes from (the ball hitting
the floor, the mouth), and that is where sync is won or lost. The rollout's audio -> video
attention map (audio queries over video keys, averaged over heads, blocks and 50-90 % of
the sampling steps) gives each video token the attention it receives from all audio
queries; z-normalised within its frame, it becomes a loss weight

    w = 1 + (w_max - 1)·σ((w_max - 1)·z)

so tokens the audio looks at weigh up to w_max and the rest about 1 + (w_max - 1)/2 or less;
w_max ramps linearly from 1 (no reweighting) to its final value over training.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from duet.errors import InputError

Z_EPS = 1e-6


def w_max_at(step: int, steps: int, end: float = 1.5, start: float = 1.0) -> float:
    """w_max at optimizer step `step` of `steps`: linear from `start` (step 0) to `end`
    (the last step)."""
    return start + (end - start) * min(1.0, step / max(1, steps - 1))


def token_weights(attention: Tensor, grid: tuple[int, int, int], w_max: float) -> Tensor:
    """Per-video-token weights [N, L_video] from maps [N, L_audio, L_video] on a token grid
    (F, H, W) (tokens in (f, h, w) order): column sums z-normalised within each frame."""
    n, _, lv = attention.shape
    if math.prod(grid) != lv:
        raise InputError(f"attention has {lv} video tokens, the grid {grid} has {math.prod(grid)}")
    score = attention.float().sum(dim=1).view(n, grid[0], -1)  # (N, F, H·W)
    mean = score.mean(dim=-1, keepdim=True)
    std = score.std(dim=-1, unbiased=False, keepdim=True)
    z = (score - mean) / (std + Z_EPS)
    k = w_max - 1.0
    return (1.0 + k * torch.sigmoid(k * z)).view(n, lv)


def latent_weights(tokens: Tensor, grid: tuple[int, int, int], patch: tuple[int, int, int],
                   frames: int) -> Tensor:
    """Token weights [N, F·H·W] spread over the latent cells each token covers:
    [N, 1, frames, H·ph, W·pw] (a padded last temporal patch is cut to `frames`)."""
    n = tokens.shape[0]
    w = tokens.view(n, 1, *grid)
    for dim, p in zip((2, 3, 4), patch):
        w = w.repeat_interleave(p, dim=dim)
    return w[:, :, :frames]
