"""A temporal-alignment prior for fresh cross-modal layers: attention that starts local in time.

Ovi's fusion finds "the video frame at this audio instant" only through RoPE: a query and a
key whose temporal channel pairs hold the same constant vector score highest where their
positions on the shared time axis coincide. Fresh fusion layers start with content-only
queries and keys, so cross-modal attention is uniform over time, and the gradient towards
position-dependent scores is tiny; on a small budget the towers learn *what* the partner
shows but never *when* (docs/default-model.md).

The prior reserves the fastest `pairs` temporal RoPE pairs of every head of every
cross-attention for position: their rows of the query and fusion-key projections become a
constant (1, 0) bias, the QK-norm gains there become `strength`, and the text keys' norm
gain there becomes 0 so that text attention (no RoPE, sharing the query) ignores them. With
pre-norm activations of RMS about 1, each reserved pair then adds about
strength² / sqrt(head_dim) · cos(ω_j Δ) to the score of a key Δ latent frames away on the
shared axis. Training may move everything afterwards; it is an initialisation, not a
constraint, and it uses only Ovi's parameters, so the model stays loadable by any Ovi code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from duet.config import TwinConfig
from duet.errors import ConfigError
from duet.model.fusion import TwinModel
from duet.model.rope import apply_rope, head_dim_split
from duet.model.state import ModalityInput


def alignment_channels(head_dim: int, num_heads: int, pairs: int) -> tuple[Tensor, Tensor]:
    """Indices (first, second element) of the `pairs` fastest temporal pairs of every head."""
    temporal_pairs = head_dim_split(head_dim)[0] // 2
    if not 1 <= pairs <= temporal_pairs:
        raise ConfigError(f"alignment pairs must be in 1..{temporal_pairs} (a head of {head_dim} "
                          f"channels has {temporal_pairs} temporal RoPE pairs), got {pairs}")
    first = torch.tensor([h * head_dim + 2 * j for h in range(num_heads) for j in range(pairs)])
    return first, first + 1


def check_alignment(cfg: TwinConfig, strength: float, pairs: int) -> None:
    """Raise `ConfigError` unless the prior can be set on a model of this shape."""
    if cfg.bridge is not None:
        raise ConfigError("the alignment prior (alignment_prior) is for Ovi's symmetric fusion; "
                          "a bridged model aligns through its bridge RoPE: set alignment_prior = 0")
    if not (cfg.video.cross_modal and cfg.audio.cross_modal):
        raise ConfigError("the alignment prior (alignment_prior) initialises the fusion layers, but "
                          "the towers are built with cross_modal = false: set alignment_prior = 0")
    if not strength > 0:
        raise ConfigError(f"alignment strength must be > 0, got {strength}")
    for tower in (cfg.video, cfg.audio):
        alignment_channels(tower.head_dim, tower.num_heads, pairs)


@torch.no_grad()
def with_alignment_prior(state: dict[str, Tensor], cfg: TwinConfig, strength: float,
                         pairs: int = 4) -> dict[str, Tensor]:
    """A copy of a symmetric twin model's state dict with the prior (module docstring) set;
    the tensors it changes are copied, the others shared.

    strength: the QK-norm gain on the reserved channels; 0 < strength. 4 to 6 gives a
        clear peak of a few latent frames around the aligned position.
    """
    check_alignment(cfg, strength, pairs)
    state = dict(state)
    for tower in (cfg.video, cfg.audio):
        channels = alignment_channels(tower.head_dim, tower.num_heads, pairs)
        for i in range(tower.num_layers):
            p = f"{tower.modality}_model.blocks.{i}.cross_attn."
            for proj, norm in (("q", "norm_q"), ("k_fusion", "norm_k_fusion")):
                set_position_channels(state, p + proj, p + norm, channels, strength)
            gain = state[p + "norm_k.weight"].clone()
            gain[torch.cat(channels)] = 0
            state[p + "norm_k.weight"] = gain
    return state


def set_position_channels(state: dict[str, Tensor], proj: str, norm: str,
                          channels: tuple[Tensor, Tensor], strength: float) -> None:
    """Make the (first, second) channels of the projection `proj` (its weight and bias keys
    in `state`) a constant (1, 0) with QK-norm gain `strength` in `norm`: the reserved pairs
    then score by RoPE position alone. Replaces the three tensors in `state` with changed
    copies."""
    first, second = channels
    both = torch.cat([first, second])
    weight, bias, gain = (state[k].clone() for k in (f"{proj}.weight", f"{proj}.bias", f"{norm}.weight"))
    weight[both] = 0
    bias[first] = 1
    bias[second] = 0
    gain[both] = strength
    state[f"{proj}.weight"], state[f"{proj}.bias"], state[f"{norm}.weight"] = weight, bias, gain


@torch.no_grad()
def module_inputs(model: TwinModel, modules: list[nn.Module], video: ModalityInput,
                  audio: ModalityInput) -> list[tuple]:
    """The positional arguments each of `modules` received in one forward pass of `model`,
    in the order given: what an attention layer saw, to recompute its weights."""
    seen: dict[int, tuple] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, args, i=i: seen.__setitem__(i, args))
             for i, m in enumerate(modules)]
    try:
        model(video, audio)
    finally:
        for h in hooks:
            h.remove()
    return [seen[i] for i in range(len(modules))]


@torch.no_grad()
def audio_to_video_attention(model: TwinModel, video: ModalityInput, audio: ModalityInput,
                             ) -> list[Tensor]:
    """The audio tower's cross-modal attention weights in every fusion block, one fused
    forward pass: a list of [B, heads, audio tokens, video tokens] tensors."""
    attns = [block.cross_attn for block in model.audio_model.blocks]
    maps = []
    for ca, args in zip(attns, module_inputs(model, attns, video, audio), strict=True):
        x, _context, rope, other = args[:4]
        q = apply_rope(ca.norm_q(ca.q(x)).unflatten(-1, (ca.heads, -1)), rope)
        k = ca.norm_k_fusion(ca.k_fusion(ca.pre_attn_norm_fusion(other.x)))
        k = apply_rope(k.unflatten(-1, (ca.heads, -1)), other.rope)
        scores = torch.einsum("blhd,bmhd->bhlm", q.float(), k.float()) / q.shape[-1] ** 0.5
        maps.append(scores.softmax(-1))
    return maps


def mass_near_aligned(weights: Tensor, time_scale: float, tokens_per_frame: int,
                      window: float = 1.5) -> float:
    """Mean share of attention an audio token gives to video tokens within `window` latent
    frames of its own position on the shared axis (audio index · time_scale)."""
    la, lv = weights.shape[-2:]
    frame = torch.arange(lv) // tokens_per_frame
    near = (frame[None, :] - torch.arange(la)[:, None] * time_scale).abs() <= window
    return float((weights * near.to(weights.dtype)).sum(-1).mean())
