"""An opt-in probe of the audio -> video attention (audio queries over video keys).

OmniNFT reweights the video loss by where the audio looks in the picture, so its rollouts
need that map, which `TwinModel.forward` never materialises (SDPA fuses it away). Inside a
`with AudioToVideoAttention(model) as probe:` block, forward hooks on the modules where audio
queries read video keys recompute their softmax weights from the same inputs:

- symmetric (Ovi) towers: every audio block's `cross_attn` (its cross-modal branch);
- bridged (MOVA) towers: every bridge layer's `to_audio` (video -> audio direction).

The hooks only read; the model's outputs are exactly those without the probe. Each module
keeps the map of its first call after `take()` (a guided step runs the conditional pass
first, in the first rows of a batched call or as the first call of unbatched passes).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from duet.errors import InputError


class AudioToVideoAttention:
    """Collects [B, L_audio, L_video] attention maps, averaged over heads and blocks."""

    def __init__(self, model: nn.Module) -> None:
        if getattr(model.video_model, "sequence_parallel", None) is not None:
            raise InputError("the attention probe needs the whole sequences in one process; "
                             "it cannot run under sequence parallelism")
        if model.bridge is not None:
            self.modules: list[nn.Module] = [layer.to_audio for layer in model.bridge.layers]
        else:
            self.modules = [block.cross_attn for block in model.audio_model.blocks]
        self._maps: dict[int, Tensor] = {}
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> AudioToVideoAttention:
        for i, module in enumerate(self.modules):
            self._handles.append(module.register_forward_hook(self._hook(i), with_kwargs=True))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, index: int) -> Any:
        def record(module: nn.Module, args: tuple, kwargs: dict, output: Tensor) -> None:
            if index in self._maps:
                return  # the first call since `take()` only
            bound = inspect.signature(module.forward).bind(*args, **kwargs).arguments
            if "context" in bound:  # an Ovi cross-attention: (x, context, rope, other, group)
                if bound.get("other") is None:  # a pass with the fusion off
                    return
                weights = module.cross_modal_weights(bound["x"], bound["rope"], bound["other"])
            else:  # a bridge direction: (x, other, rope_x, rope_other, mask_other)
                weights = module.weights(**bound)
            self._maps[index] = weights.detach().mean(dim=1)  # (B, L_audio, L_video)
        return record

    def take(self) -> Tensor | None:
        """The mean map over the blocks recorded since the last `take()` (None if none ran
        with the fusion on), and start over."""
        maps, self._maps = list(self._maps.values()), {}
        if not maps:
            return None
        return sum(maps[1:], maps[0]) / len(maps)
