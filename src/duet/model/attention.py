"""Attention and norms shared by both towers.

One `attention()` over `torch.nn.functional.scaled_dot_product_attention`, so the same code
picks Flash/efficient kernels on a GPU and the math kernel on a CPU, with no flash-attn
dependency. Padding is handled by masking keys, never queries (padded query rows are
discarded by the caller)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def key_mask(lengths: Tensor | None, num_keys: int) -> Tensor | None:
    """Boolean mask [B, 1, 1, Lk] that keeps keys at index < lengths[b]; None when nothing is masked."""
    if lengths is None:
        return None
    keep = torch.arange(num_keys, device=lengths.device)[None, :] < lengths[:, None]  # [B, Lk]
    if bool(keep.all()):
        return None  # lets SDPA use its fastest (mask-free) kernels
    return keep[:, None, None, :]


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """Softmax attention on [B, L, H, D] tensors; `mask` from `key_mask`."""
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # (B, H, L, D)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2)  # (B, L, H, D)


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
