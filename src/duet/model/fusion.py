"""`TwinModel`: Ovi's symmetric fusion, two towers of equal depth whose blocks are paired,
with bidirectional cross-modal attention in every pair; or, when the config has a bridge,
MOVA's asymmetric towers joined at a few layers by `duet.model.bridge`.

Order inside fusion block i (both directions see the other modality at the same depth):
    1. audio self-attention          a1 = SA_a(a)
    2. video self-attention          v1 = SA_v(v)
    3. audio cross-attn + FFN        a2 = CA_a(a1, text_a, other=v1)
    4. video cross-attn + FFN        v2 = CA_v(v1, text_v, other=a1)   (a1: before step 3)
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from duet.config import TwinConfig
from duet.errors import ConfigError, InputError
from duet.model.bridge import Bridge
from duet.model.compile import compile_blocks
from duet.model.state import ModalityInput, TowerState
from duet.model.tower import Tower, items_skipping, keep_skipped, run_block
from duet.parallel.sequence import SequenceParallel


class TwinModel(nn.Module):
    """Video and audio towers fused block by block, or joined by a bridge.
    Keys: `video_model.*`, `audio_model.*` (and `bridge.*`)."""

    def __init__(self, cfg: TwinConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.video_model = Tower(cfg.video)
        self.audio_model = Tower(cfg.audio)
        self.bridge = Bridge(cfg) if cfg.bridge is not None else None

    @classmethod
    def from_config(cls, cfg: TwinConfig, device: torch.device | str | None = None,
                    dtype: torch.dtype | None = None) -> TwinModel:
        """Build on `device` (use "meta" to count or to load with `load_state_dict(assign=True)`)."""
        with torch.device(device or "cpu"):
            model = cls(cfg)
        return model.to(dtype) if dtype is not None else model

    def compile_blocks(self, **options: Any) -> TwinModel:
        """torch.compile every block's two halves, falling back to eager where the compiler
        fails (`duet.model.compile`); `options` go to `torch.compile`. Outputs stay within
        float rounding of the eager model's (rel-L2 ~1e-6 in float32)."""
        compile_blocks([*self.video_model.blocks, *self.audio_model.blocks], **options)
        return self

    @property
    def num_layers(self) -> int:
        return self.cfg.num_layers

    def block_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(video block, audio block) per depth: the unit for sharding and checkpointing
        (symmetric fusion only; a bridged model's blocks do not pair up)."""
        if self.bridge is not None:
            raise InputError("a bridged model's towers have different depths: its blocks do "
                             "not pair up (shard them one by one: fsdp_unit = 'block')")
        return list(zip(self.video_model.blocks, self.audio_model.blocks))

    def shard_units(self) -> list[nn.Module]:
        """Every block of both towers and every bridge layer: one FSDP unit each."""
        units = [*self.video_model.blocks, *self.audio_model.blocks]
        return units + (list(self.bridge.layers) if self.bridge is not None else [])

    def enable_sequence_parallel(self, group: dist.ProcessGroup | None = None) -> TwinModel:
        """Split every forward pass's tokens over the processes of `group` (default: all of
        the default group), Ulysses-style (`duet.parallel.sequence`); for inference. Every
        process must make the same calls with the same inputs; each returns the full output."""
        if self.bridge is not None:
            raise ConfigError("sequence parallelism supports the symmetric (Ovi) towers only, "
                              "not a bridged (MOVA) model; run this model in one process")
        sp = SequenceParallel.over(group)
        for tower in (self.video_model, self.audio_model):
            sp.check_heads(tower.cfg.num_heads, f"{tower.cfg.modality} tower")
        self.video_model.sequence_parallel = self.audio_model.sequence_parallel = sp
        return self

    def forward(self, video: ModalityInput | None = None, audio: ModalityInput | None = None, *,
                skip_blocks: tuple[int, ...] = (), skip_items: Tensor | None = None,
                cross_modal: bool | Tensor = True) -> tuple[Tensor | None, Tensor | None]:
        """Denoiser velocity for each given modality.

        skip_blocks: block indices skipped in both towers (skip-layer guidance's weak pass).
        skip_items: which batch items skip them (default: all): bool [B] for all of
            skip_blocks, or bool [B, len(skip_blocks)] per block. This lets guidance run its
            conditional and weak passes as one batch.
        cross_modal: False runs both towers side by side without fusion (the fusion-off
            pass of cross-modal guidance); a bool [B] tensor switches the fusion off per item, in one
            fused forward. A missing modality always runs its tower alone, as Ovi does.
        """
        bad = [i for i in skip_blocks if not 0 <= i < self.num_layers]
        if bad:
            raise InputError(f"skip_blocks {bad} out of range: the model has blocks 0..{self.num_layers - 1}")
        if len(set(skip_blocks)) != len(skip_blocks):
            raise InputError(f"skip_blocks {list(skip_blocks)} repeats a block")
        if skip_items is not None and skip_items.dim() == 2 and skip_items.shape[1] != len(skip_blocks):
            raise InputError(f"skip_items has {skip_items.shape[1]} columns for {len(skip_blocks)} skip_blocks")
        if video is None and audio is None:
            raise InputError("pass at least one of video= or audio=")
        gate = cross_modal if isinstance(cross_modal, Tensor) else None
        if gate is not None and not bool(gate.any()):
            cross_modal = False
        if video is None or audio is None or cross_modal is False:
            v = self.video_model(video, skip_blocks, skip_items) if video is not None else None
            a = self.audio_model(audio, skip_blocks, skip_items) if audio is not None else None
            return v, a
        if video.latent.shape[0] != audio.latent.shape[0]:
            raise InputError(f"video batch {video.latent.shape[0]} != audio batch {audio.latent.shape[0]}")
        vs, as_ = self.video_model.prepare(video), self.audio_model.prepare(audio)
        if gate is not None and bool(gate.all()):
            gate = None
        if self.bridge is not None:
            self._bridged(vs, as_, skip_blocks, skip_items, gate)
            return self.video_model.finish(vs), self.audio_model.finish(as_)
        for i in range(self.num_layers):
            items = items_skipping(i, skip_blocks, skip_items)
            if items is True:
                continue
            step = functools.partial(self._fused_block, i, vs, as_,
                                     None if items is False else items, gate)
            vs.x, as_.x = run_block(step, vs.x, as_.x, checkpoint=self.gradient_checkpointing)
        return self.video_model.finish(vs), self.audio_model.finish(as_)

    def _bridged(self, vs: TowerState, as_: TowerState, skip_blocks: tuple[int, ...],
                 skip_items: Tensor | None, gate: Tensor | None) -> None:
        """Both towers block by block, with a bridge exchange before each interaction layer
        (the audio tower first catches up to the same fraction of its depth)."""
        bridge = self.bridge
        assert bridge is not None
        rope_v, rope_a = bridge.ropes(vs.grid, self.cfg.video.patch_size[0], as_.grid[0], vs.x.device)
        exchange = {layer: k for k, layer in enumerate(bridge.cfg.layers)}
        audio_done = 0
        for vi in range(len(self.video_model.blocks)):
            if vi in exchange:
                audio_done = self._run_audio(as_, audio_done, bridge.audio_block_before(vi),
                                             skip_blocks, skip_items)
                step = functools.partial(bridge.layers[exchange[vi]], rope_v=rope_v, rope_a=rope_a,
                                         mask_v=vs.mask, mask_a=as_.mask, gate=gate)
                vs.x, as_.x = run_block(step, vs.x, as_.x, checkpoint=self.gradient_checkpointing)
            vs.x = self.video_model.run(vi, vs, skip_blocks, skip_items)
        self._run_audio(as_, audio_done, len(self.audio_model.blocks), skip_blocks, skip_items)

    def _run_audio(self, as_: TowerState, start: int, stop: int, skip_blocks: tuple[int, ...],
                   skip_items: Tensor | None) -> int:
        for i in range(start, stop):
            as_.x = self.audio_model.run(i, as_, skip_blocks, skip_items)
        return max(start, stop)

    def _fused_block(self, i: int, vs: TowerState, as_: TowerState, skip_items: Tensor | None,
                     gate: Tensor | None, v_x: Tensor, a_x: Tensor) -> tuple[Tensor, Tensor]:
        """Fusion block i on hidden states (v_x, a_x); items in skip_items keep their input,
        items where `gate` is False do not see the other modality."""
        vb, ab = self.video_model.blocks[i], self.audio_model.blocks[i]
        vs, as_ = replace(vs, x=v_x), replace(as_, x=a_x)
        as_.x = ab.self_attention(as_)
        vs.x = vb.self_attention(vs)
        audio_after_sa = as_.source(gate)
        as_.x = ab.cross_attention_ffn(as_, other=vs.source(gate))
        vs.x = vb.cross_attention_ffn(vs, other=audio_after_sa)
        if skip_items is not None:
            return keep_skipped(vs.x, v_x, skip_items), keep_skipped(as_.x, a_x, skip_items)
        return vs.x, as_.x

    @property
    def gradient_checkpointing(self) -> bool:
        return self.video_model.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, on: bool) -> None:
        """Recompute each block pair in the backward pass instead of storing its activations."""
        self.video_model.gradient_checkpointing = self.audio_model.gradient_checkpointing = on
