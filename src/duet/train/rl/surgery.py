"""OmniNFT's layer-wise gradient surgery.

The video loss reaches the audio tower through the video tower's cross-modal attention,
which reads the audio hidden states. OmniNFT finds that this gradient disturbs the audio
tower's shallow, intra-modal layers, so it scales it per block: 0 at the first block, 0.1
in the early blocks, 1 in the middle ones (where the towers exchange timing) and 0.3 in
the last ones. The forward pass is unchanged: the scaling is an identity whose backward
multiplies the gradient, applied to the audio states that each video cross-attention reads
(Ovi: `blocks.N.cross_attn` of the video tower; MOVA: the bridge's `to_video` direction).
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from duet.errors import ConfigError

FIRST, EARLY, MIDDLE, LAST = 0.0, 0.1, 1.0, 0.3  # OmniNFT's scales


class _ScaleGrad(torch.autograd.Function):
    """y = x; dL/dx = scale * dL/dy."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def scale_grad(x: Tensor, scale: float) -> Tensor:
    """x itself in the forward pass; its gradient times `scale` in the backward pass."""
    return x if scale == 1.0 else _ScaleGrad.apply(x, scale)


def block_scales(n: int) -> tuple[float, ...]:
    """OmniNFT's pattern over n cross-modal layers: the first (0), the next quarter of the
    depth (0.1), the last quarter (0.3) and the middle (1); at least one layer each when
    n allows (n = 4: 0, 0.1, 1, 0.3)."""
    if n < 1:
        raise ConfigError(f"gradient surgery needs at least one cross-modal layer, got {n}")
    band = max(1, n // 4)
    scales = [MIDDLE] * n
    scales[1:1 + band] = [EARLY] * len(scales[1:1 + band])
    scales[n - band:] = [LAST] * band
    scales[0] = FIRST
    return tuple(scales)


def cross_modal_readers(model: nn.Module) -> list[nn.Module]:
    """The modules through which the video tower reads the audio hidden states, in depth
    order: each video block's cross-attention (Ovi) or each bridge layer's `to_video` (MOVA)."""
    if model.bridge is not None:
        return [layer.to_video for layer in model.bridge.layers]
    return [block.cross_attn for block in model.video_model.blocks]


class GradientSurgery:
    """`with GradientSurgery(model, scales):` scales the gradient that flows from the video
    tower's cross-modal attention of layer i back into the audio hidden states by scales[i]
    (default: `block_scales`). Forward values are bit-identical to running without it."""

    def __init__(self, model: nn.Module, scales: tuple[float, ...] | None = None) -> None:
        self.readers = cross_modal_readers(model)
        self.scales = block_scales(len(self.readers)) if scales is None else tuple(scales)
        if len(self.scales) != len(self.readers):
            raise ConfigError(f"surgery_scales has {len(self.scales)} values but the model has "
                              f"{len(self.readers)} cross-modal layers; give one per layer")
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> GradientSurgery:
        for module, scale in zip(self.readers, self.scales):
            if scale != 1.0:
                self._handles.append(module.register_forward_pre_hook(
                    _scaling_hook(scale), with_kwargs=True))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def _scaling_hook(scale: float) -> Any:
    """A pre-hook that passes the module its `other` argument (the audio side) through
    `scale_grad`: a `CrossModalSource` (Ovi) or a hidden-state tensor (bridge)."""

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
        other = bound.arguments.get("other")
        if other is None:  # a pass with the fusion off
            return None
        if isinstance(other, Tensor):
            bound.arguments["other"] = scale_grad(other, scale)
        else:
            bound.arguments["other"] = replace(other, x=scale_grad(other.x, scale))
        return bound.args, bound.kwargs

    return hook
