"""The layers of a Wan-structured tower: adaLN modulation, self-attention, text (and
cross-modal) attention, the block that holds them, the audio stem's gated conv MLP and the
output head. Parameter names are the official Ovi/Wan ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from duet.config import TowerConfig
from duet.errors import InputError
from duet.model.attention import LayerNorm, RMSNorm, attention, attention_weights
from duet.model.rope import apply_rope
from duet.model.state import CrossModalSource, Rope, TowerState

if TYPE_CHECKING:
    from duet.parallel.sequence import SequenceParallel


def modulation_table(n: int, dim: int) -> Tensor:
    """An adaLN table drawn as randn / sqrt(dim); left empty on the meta device, where
    pipelines build a model before loading its weights: random ops there run torch's Python
    reference kernels, which import torch._dynamo and sympy (0.8 s of a CPU clip's start)."""
    table = torch.empty(1, n, dim)
    return table if table.is_meta else torch.randn(1, n, dim).div_(dim**0.5)


class Modulation(nn.Module):
    """A learned table added to the time projection: adaLN shift/scale/gate vectors in float32."""

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.modulation = nn.Parameter(modulation_table(n, dim))

    def forward(self, e: Tensor) -> tuple[Tensor, ...]:
        # e: (B, L, n, dim) -> n tensors (B, L, dim)
        return (self.modulation.float() + e.float()).unbind(dim=2)


class SelfAttention(nn.Module):
    def __init__(self, cfg: TowerConfig) -> None:
        super().__init__()
        d, self.heads = cfg.dim, cfg.num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.norm_q = RMSNorm(d, cfg.eps) if cfg.qk_norm else nn.Identity()
        self.norm_k = RMSNorm(d, cfg.eps) if cfg.qk_norm else nn.Identity()

    def forward(self, x: Tensor, rope: Rope, mask: Tensor | None,
                group: SequenceParallel | None = None) -> Tensor:
        q = self.norm_q(self.q(x)).unflatten(-1, (self.heads, -1))  # (B, L, H, D)
        k = self.norm_k(self.k(x)).unflatten(-1, (self.heads, -1))
        v = self.v(x).unflatten(-1, (self.heads, -1))
        out = attention(apply_rope(q, rope), apply_rope(k, rope), v, mask, group)
        return self.o(out.flatten(2))


class CrossAttention(SelfAttention):
    """Text cross-attention, plus (Ovi fusion) attention to the other tower's tokens.

    Both attentions share the query and the output projection; their outputs are summed
    before `o`. The text branch has no RoPE and, unless the tower's `text_mask` is set, no
    mask (padded text rows take part, as in the official model); the cross-modal branch applies RoPE to q with this tower's
    positions and to the new keys with the other tower's, so both meet on one time axis.
    With sequence parallelism (`group`) the text branch runs on this rank's queries as is
    (every rank holds the whole text); the cross-modal branch exchanges both sequences.
    """

    def __init__(self, cfg: TowerConfig) -> None:
        super().__init__(cfg)  # q, k, v, o and the QK norms, as in self-attention
        d = cfg.dim
        self.cross_modal = cfg.cross_modal
        if cfg.cross_modal:
            self.k_fusion = nn.Linear(d, d)
            self.v_fusion = nn.Linear(d, d)
            self.pre_attn_norm_fusion = LayerNorm(d, eps=cfg.eps)
            self.norm_k_fusion = RMSNorm(d, cfg.eps) if cfg.qk_norm else nn.Identity()

    def forward(self, x: Tensor, context: Tensor, rope: Rope,
                other: CrossModalSource | None = None,
                group: SequenceParallel | None = None,
                context_mask: Tensor | None = None) -> Tensor:
        q = self.norm_q(self.q(x)).unflatten(-1, (self.heads, -1))  # (B, L, H, D)
        k = self.norm_k(self.k(context)).unflatten(-1, (self.heads, -1))  # (B, Lt, H, D)
        v = self.v(context).unflatten(-1, (self.heads, -1))
        out = attention(q, k, v, context_mask)
        if other is not None:
            k2, v2 = self.fusion_keys(other)
            fused = attention(apply_rope(q, rope), apply_rope(k2, other.rope), v2, other.mask,
                              group)
            if other.gate is not None:
                fused = fused * other.gate.view(-1, 1, 1, 1).to(fused.dtype)
            out = out + fused
        return self.o(out.flatten(2))

    def fusion_keys(self, other: CrossModalSource) -> tuple[Tensor, Tensor]:
        """The other tower's keys (before RoPE) and values, each (B, L_other, H, D)."""
        if not self.cross_modal:
            raise InputError("this tower was built with cross_modal=False; it cannot fuse")
        r = self.pre_attn_norm_fusion(other.x)
        k2 = self.norm_k_fusion(self.k_fusion(r)).unflatten(-1, (self.heads, -1))
        return k2, self.v_fusion(r).unflatten(-1, (self.heads, -1))

    def cross_modal_weights(self, x: Tensor, rope: Rope, other: CrossModalSource) -> Tensor:
        """Where this tower's queries look in the other tower: the cross-modal branch's
        softmax weights [B, H, L, L_other] (float32) for the same inputs as `forward`
        (one process; not under sequence parallelism). Recomputed, so `forward` is untouched."""
        q = self.norm_q(self.q(x)).unflatten(-1, (self.heads, -1))
        k2, _ = self.fusion_keys(other)
        return attention_weights(apply_rope(q, rope), apply_rope(k2, other.rope), other.mask)


class Block(nn.Module):
    """Wan block, split in two halves so that the fusion can interleave two towers."""

    def __init__(self, cfg: TowerConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.norm1 = LayerNorm(d, eps=cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(cfg)
        self.norm3 = LayerNorm(d, eps=cfg.eps) if cfg.cross_attn_norm else nn.Identity()
        self.cross_attn = CrossAttention(cfg)
        self.norm2 = LayerNorm(d, eps=cfg.eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.ffn_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.ffn_dim, d))
        self.modulation = Modulation(6, d)

    def self_attention(self, s: TowerState) -> Tensor:
        shift, scale, gate = self.modulation(s.e0)[:3]  # each (B, L|1, dim), float32
        h = (self.norm1(s.x).float() * (1 + scale) + shift).type_as(s.x)
        return s.x + (self.self_attn(h, s.rope, s.mask, s.group).float() * gate).type_as(s.x)

    def cross_attention_ffn(self, s: TowerState, other: CrossModalSource | None = None) -> Tensor:
        shift, scale, gate = self.modulation(s.e0)[3:]
        x = s.x + self.cross_attn(self.norm3(s.x), s.context, s.rope, other, s.group,
                                  s.context_mask)
        h = (self.norm2(x).float() * (1 + scale) + shift).type_as(x)
        return x + (self.ffn(h).float() * gate).type_as(x)


class ConvSwiGLU(nn.Module):
    """Gated conv MLP of the audio stem: w2(SiLU(w1 x) * w3 x), kernel 7, no bias."""

    def __init__(self, dim: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.w1 = nn.Conv1d(dim, hidden, kernel, padding=kernel // 2, bias=False)
        self.w2 = nn.Conv1d(hidden, dim, kernel, padding=kernel // 2, bias=False)
        self.w3 = nn.Conv1d(dim, hidden, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        h = F.silu(self.w1(x)) * self.w3(x)  # (B, hidden, L)
        return self.w2(h if keep is None else h * keep)


class Head(nn.Module):
    """Output head: adaLN (shift/scale from the time embedding e, not e0), then a Linear."""

    def __init__(self, dim: int, out: int, eps: float) -> None:
        super().__init__()
        self.norm = LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.head = nn.Linear(dim, out)
        self.modulation = nn.Parameter(modulation_table(2, dim))

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        shift, scale = (self.modulation.float() + e.float().unsqueeze(2)).unbind(dim=2)
        return self.head((self.norm(x).float() * (1 + scale) + shift).type_as(x))
