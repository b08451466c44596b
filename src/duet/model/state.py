"""What flows between the parts of a tower and between the two towers: a tower's input,
its working state during a forward pass, and its hidden states as seen by the other tower."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from duet.parallel.sequence import SequenceParallel

Rope = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class ModalityInput:
    """What one tower is called with.

    latent:   video [B, C, F, H, W] or audio [B, L, C] (channel-last, as Ovi stores audio)
    timestep: [B] (one t per item) or [B, tokens] (per-token t, e.g. a clean first frame)
    context:  [B, Lt, text_dim] text hidden states, Lt <= text_len; zero-padded to text_len
    lengths:  [B] true token counts when items of different length are padded into one batch
    """

    latent: Tensor
    timestep: Tensor
    context: Tensor
    lengths: Tensor | None = None


@dataclass
class TowerState:
    """A tower's working set during one forward pass (tokens change block by block)."""

    x: Tensor  # (B, L, dim)
    e: Tensor  # (B, L or 1, dim) time embedding, used by the head
    e0: Tensor  # (B, L or 1, 6, dim) per-token modulation from the time embedding
    context: Tensor  # (B, text_len, dim)
    rope: Rope
    mask: Tensor | None  # key mask for attention over this tower's tokens
    grid: tuple[int, ...]  # token grid: (F, H, W) video, (L,) audio
    # video: the latent's frame count, to which `finish` crops a padded last patch; audio: 0
    frames: int = 0
    # prediction "sample" only: the noisy latent and its timesteps, to turn x0 into velocity
    noisy: ModalityInput | None = None
    # With sequence parallelism, x, e, e0 and rope hold this rank's shard of the tokens
    # and mask covers every (padded) key; None: all tokens are here.
    group: SequenceParallel | None = None
    # text_mask only: which context rows the text attention reads, [B, 1, 1, text_len]
    context_mask: Tensor | None = None

    def source(self, gate: Tensor | None = None) -> CrossModalSource:
        """These hidden states as the other tower's cross-modal keys/values (a snapshot)."""
        return CrossModalSource(x=self.x, rope=self.rope, mask=self.mask, gate=gate)


@dataclass(frozen=True)
class CrossModalSource:
    """The other tower's hidden states as seen by this tower's cross-attention.

    gate: optional bool [B]; items where it is False do not see the other modality (their
    cross-modal term is multiplied by 0), which lets one batch mix fused and unfused passes.
    """

    x: Tensor  # (B, L_other, dim)
    rope: Rope
    mask: Tensor | None
    gate: Tensor | None = None
