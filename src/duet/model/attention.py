"""Attention and norms shared by both towers.

One `attention()` over `torch.nn.functional.scaled_dot_product_attention`, so the same code
picks Flash/efficient kernels on a GPU and the math kernel on a CPU, with no flash-attn
dependency. Padding is handled by masking keys, never queries (padded query rows are
discarded by the caller)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from duet.parallel.sequence import SequenceParallel


def key_mask(lengths: Tensor | None, num_keys: int) -> Tensor | None:
    """Boolean mask [B, 1, 1, Lk] that keeps keys at index < lengths[b]; None when nothing is masked."""
    if lengths is None:
        return None
    keep = torch.arange(num_keys, device=lengths.device)[None, :] < lengths[:, None]  # [B, Lk]
    if bool(keep.all()):
        return None  # lets SDPA use its fastest (mask-free) kernels
    return keep[:, None, None, :]


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
              group: SequenceParallel | None = None) -> Tensor:
    """Softmax attention on [B, L, H, D] tensors; `mask` from `key_mask`.

    With a sequence-parallel `group`, q and k/v are this rank's shards of their (padded)
    sequences and `mask` covers all of k's padded keys: Ulysses all-to-alls hand each rank
    the whole sequences for its heads, and the output comes back as this rank's queries.
    """
    if group is not None:
        if q.shape == k.shape:  # e.g. self-attention: one all-to-all for all three
            q, k, v = group.to_heads(q, k, v)
        else:  # keys of another sequence (fusion): q alone, then k and v
            (q,), (k, v) = group.to_heads(q), group.to_heads(k, v)
        return group.to_tokens(attention(q, k, v, mask))
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # (B, H, L, D)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2)  # (B, L, H, D)


def attention_weights(q: Tensor, k: Tensor, mask: Tensor | None = None) -> Tensor:
    """The softmax weights [B, H, Lq, Lk] (float32) that `attention` averages v with: an
    explicit matrix, for looking at where queries attend (e.g. RL's region weights), never
    for computing outputs. q, k: [B, L, H, D]; `mask` from `key_mask`."""
    q, k = (x.transpose(1, 2).float() for x in (q, k))  # (B, H, L, D)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, H, Lq, Lk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


class RMSNorm(nn.Module):
    """RMS norm over the last dim, computed in float32 (QK-norm is sensitive to bf16 rounding)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.type_as(x) * self.weight


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and returned in the input dtype."""

    def forward(self, x: Tensor) -> Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).type_as(x)
