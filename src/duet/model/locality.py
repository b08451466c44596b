"""A temporal-locality prior for a video tower that learned single frames first.

A tower trained on pictures (T = 1) never saw two time positions, so its self-attention
scores do not depend on the time axis: inflated to a clip, every token attends to every
frame alike, and its first clip forward averages each frame with the whole clip. On the
demo world that erases a third of a ball's travel the tower keeps frame by frame (one-step
x0 at t = 0.3: 0.58 of the real travel against 0.86), so the clip stages start from a
temporal blur (docs/default-model.md, § "Motion").

The prior is the cross-modal alignment prior (`duet.model.alignment`) set on the video
tower's self-attention: the fastest `pairs` temporal RoPE pairs of every head become a
constant (1, 0) in the query and key projections with QK-norm gain `strength`, which adds
about strength² / sqrt(head_dim) · Σ_j cos(ω_j Δ) to the score of a key Δ latent frames
away. Each frame then starts by attending to itself and its neighbours, as the pictures
stage left it, and training may widen the window. It changes only Ovi's own parameters (an
initialisation, not a mask), so checkpoints stay in the official format. Measured on the
demo: the clip stages bind colour better and jitter less, but their balls still do not fall.
"""

from __future__ import annotations

import torch
from torch import Tensor

from duet.config import TwinConfig
from duet.errors import ConfigError
from duet.model.alignment import alignment_channels, set_position_channels
from duet.model.rope import head_dim_split


def check_locality(cfg: TwinConfig, strength: float, pairs: int) -> None:
    """Raise `ConfigError` unless the prior can be set on this model's video tower."""
    if not strength > 0:
        raise ConfigError(f"video_locality_prior must be > 0 to set the prior (0: off), got {strength}")
    if not cfg.video.qk_norm:
        raise ConfigError("video_locality_prior sets the self-attention's QK-norm gains, but the "
                          "video tower is built with qk_norm = false: set video_locality_prior = 0")
    temporal_pairs = head_dim_split(cfg.video.head_dim)[0] // 2
    if not 1 <= pairs <= temporal_pairs:
        raise ConfigError(f"video_locality_pairs must be in 1..{temporal_pairs} (a video head of "
                          f"{cfg.video.head_dim} channels has {temporal_pairs} temporal RoPE pairs), "
                          f"got {pairs}")


@torch.no_grad()
def with_locality_prior(state: dict[str, Tensor], cfg: TwinConfig, strength: float,
                        pairs: int = 4) -> dict[str, Tensor]:
    """A copy of a twin model's state dict with the prior (module docstring) set on every
    video block's self-attention; the tensors it changes are copied, the others shared.

    strength: the QK-norm gain on the reserved channels. 5 with 4 pairs (demo: 64-channel
        heads) puts most of a token's attention on its own latent frame.
    """
    check_locality(cfg, strength, pairs)
    state = dict(state)
    channels = alignment_channels(cfg.video.head_dim, cfg.video.num_heads, pairs)
    for i in range(cfg.video.num_layers):
        p = f"video_model.blocks.{i}.self_attn."
        for proj in ("q", "k"):
            set_position_channels(state, p + proj, p + f"norm_{proj}", channels, strength)
    return state
