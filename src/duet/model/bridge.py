"""MOVA's Bridge: two towers of different width and depth, joined at a few interaction
layers by a pair of cross-attention blocks (audio -> video and video -> audio).

Where Ovi fuses every block pair inside the towers' own cross-attention, the bridge is a
separate residual step placed before the paired blocks: the towers stay intact
(`cross_modal=False`), and the bridge's output projections start at zero so a new bridge
adds nothing until it is trained. Both directions read the states from before the step, so
neither direction sees the other's update of the same layer (as in Ovi's fusion block).

Inside the bridge both modalities share one time axis (time-only RoPE over the whole head);
`BridgeConfig.rope` picks MOVA's aligned grid or LTX-2's seconds (see `bridge_positions`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from duet.config import BridgeConfig, TwinConfig
from duet.model.attention import LayerNorm, RMSNorm, attention, attention_weights
from duet.model.rope import apply_rope, frequencies

Rope = tuple[Tensor, Tensor]


def bridge_positions(cfg: BridgeConfig, video_frames: int, frame_tokens: int, patch_t: int,
                     audio_len: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Time positions (float64) of video tokens (f-major, `frame_tokens` per latent frame
    group of `patch_t` frames) and of audio tokens on the bridge's shared axis."""
    f = torch.arange(video_frames, dtype=torch.float64, device=device) * patch_t
    f = f.repeat_interleave(frame_tokens)
    a = torch.arange(audio_len, dtype=torch.float64, device=device)
    if cfg.rope == "aligned":
        return f * (cfg.audio_rate / cfg.video_rate), a
    return f / cfg.video_rate, a / cfg.audio_rate


def time_rope(positions: Tensor, head_dim: int) -> Rope:
    """(cos, sin) [L, head_dim/2]: every channel pair rotates with the token's time."""
    angles = positions[:, None] * frequencies(head_dim, positions.device)
    return angles.cos(), angles.sin()


class BridgeAttention(nn.Module):
    """One direction: queries from one tower (width q_dim), keys/values from the other
    (kv_dim), attention at the bridge width, output projected back to q_dim (zero-init)."""

    def __init__(self, q_dim: int, kv_dim: int, dim: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm_x = LayerNorm(q_dim, eps=eps)
        self.norm_other = LayerNorm(kv_dim, eps=eps)
        self.q = nn.Linear(q_dim, dim)
        self.k = nn.Linear(kv_dim, dim)
        self.v = nn.Linear(kv_dim, dim)
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)
        self.o = nn.Linear(dim, q_dim)
        nn.init.zeros_(self.o.weight)
        nn.init.zeros_(self.o.bias)

    def forward(self, x: Tensor, other: Tensor, rope_x: Rope, rope_other: Rope,
                mask_other: Tensor | None) -> Tensor:
        """The update for x (B, L, q_dim), not yet added."""
        q, k, v = self._project(x, other)
        out = attention(apply_rope(q, rope_x), apply_rope(k, rope_other), v, mask_other)
        return self.o(out.flatten(2))

    def weights(self, x: Tensor, other: Tensor, rope_x: Rope, rope_other: Rope,
                mask_other: Tensor | None) -> Tensor:
        """The softmax weights [B, H, L, L_other] (float32) of `forward` on the same inputs:
        where x's queries look in the other tower (recomputed; `forward` is untouched)."""
        q, k, _ = self._project(x, other)
        return attention_weights(apply_rope(q, rope_x), apply_rope(k, rope_other), mask_other)

    def _project(self, x: Tensor, other: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q from x, k and v from the other tower, each (B, L, heads, head_dim)."""
        o = self.norm_other(other)
        q = self.norm_q(self.q(self.norm_x(x))).unflatten(-1, (self.heads, -1))
        k = self.norm_k(self.k(o)).unflatten(-1, (self.heads, -1))
        return q, k, self.v(o).unflatten(-1, (self.heads, -1))


class BridgeLayer(nn.Module):
    """The two directions of one interaction layer."""

    def __init__(self, cfg: TwinConfig) -> None:
        super().__init__()
        b = cfg.bridge
        assert b is not None
        dv, da, d = cfg.video.dim, cfg.audio.dim, cfg.bridge_dim
        self.to_video = BridgeAttention(dv, da, d, b.num_heads, b.eps)  # audio -> video
        self.to_audio = BridgeAttention(da, dv, d, b.num_heads, b.eps)  # video -> audio
        self.video_gain, self.audio_gain = b.video_gain, b.audio_gain

    def forward(self, v: Tensor, a: Tensor, rope_v: Rope, rope_a: Rope, mask_v: Tensor | None,
                mask_a: Tensor | None, gate: Tensor | None) -> tuple[Tensor, Tensor]:
        dv = self.to_video(v, a, rope_v, rope_a, mask_a) * self.video_gain
        da = self.to_audio(a, v, rope_a, rope_v, mask_v) * self.audio_gain
        if gate is not None:
            dv = dv * gate.view(-1, 1, 1).to(dv.dtype)
            da = da * gate.view(-1, 1, 1).to(da.dtype)
        return v + dv, a + da


class Bridge(nn.Module):
    """The interaction layers of a bridged twin model. Keys: `bridge.layers.K.*`."""

    def __init__(self, cfg: TwinConfig) -> None:
        super().__init__()
        assert cfg.bridge is not None
        self.cfg = cfg.bridge
        self.video_depth, self.audio_depth = cfg.video.num_layers, cfg.audio.num_layers
        self.head_dim = cfg.bridge_dim // cfg.bridge.num_heads
        self.layers = nn.ModuleList(BridgeLayer(cfg) for _ in cfg.bridge.layers)

    def audio_block_before(self, video_block: int) -> int:
        """The audio tower runs blocks 0 .. this - 1 before the exchange at `video_block`."""
        return video_block * self.audio_depth // self.video_depth

    def ropes(self, video_grid: tuple[int, ...], patch_t: int, audio_len: int,
              device: torch.device) -> tuple[Rope, Rope]:
        f, h, w = video_grid
        pv, pa = bridge_positions(self.cfg, f, h * w, patch_t, audio_len, device)
        return time_rope(pv, self.head_dim), time_rope(pa, self.head_dim)
