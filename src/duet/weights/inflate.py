"""Starting a video tower with a longer temporal patch from one trained with a shorter one.

A tower trained on single frames or with a temporal patch of 1 has learnt its patch
embedding and head per frame. A run that groups `k` times as many frames per token (fewer
tokens, and neighbouring frames predicted by one token) starts from those weights inflated
as I3D inflates 2-D kernels: the patch embedding's kernel is repeated over the new frames
and divided by `k`, so a token of `k` equal frames embeds exactly as one frame did; the head's
rows for each old frame are repeated for the `k` frames it now covers, so every frame starts
with the prediction its old token made. Everything else (blocks, RoPE, time embedding) is
shaped by the width, not the patch, and loads as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from torch import Tensor

from duet.errors import ConfigError

log = logging.getLogger(__name__)

EMBEDDING = "video_model.patch_embedding.weight"
HEAD = ("video_model.head.head.weight", "video_model.head.head.bias")


def temporal_patch(state: Mapping[str, Tensor]) -> int | None:
    """The temporal patch a state's video tower was trained with (None without one)."""
    w = state.get(EMBEDDING)
    return None if w is None or w.dim() != 5 else w.shape[2]


def inflate_temporal_patch(state: dict[str, Tensor], patch_t: int) -> dict[str, Tensor]:
    """`state` with its video tower's patch embedding and head inflated to a temporal patch
    of `patch_t` frames; unchanged when it already has that patch (or no video tower)."""
    old = temporal_patch(state)
    if old is None or old == patch_t:
        return state
    if patch_t % old:
        raise ConfigError(f"the starting weights' video tower has a temporal patch of {old} "
                          f"frames, which does not divide this run's {patch_t}; use a temporal "
                          f"patch that is a multiple of {old}, or start from other weights")
    k = patch_t // old
    out = dict(state)
    w = state[EMBEDDING]
    out[EMBEDDING] = (w.float().repeat_interleave(k, dim=2) / k).to(w.dtype)
    for name in HEAD:  # rows (or entries) in (pt, ph, pw, channel) order, pt outermost
        t = state[name]
        out[name] = t.reshape(old, -1, *t.shape[1:]).repeat_interleave(k, dim=0).flatten(0, 1)
    log.info("video tower inflated from a temporal patch of %d frames to %d", old, patch_t)
    return out
