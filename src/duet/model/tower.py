"""One Wan-structured DiT tower (video or audio). It knows nothing about the other tower:
the fusion in `fusion.py` hands it the other modality's hidden states as an optional
extra key/value source of its cross-attention.

Parameter names are the official Ovi/Wan ones (`blocks.N.cross_attn.k_fusion`, ...), so an
official checkpoint loads with `strict=True`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
import torch.utils.checkpoint
from torch import Tensor, nn

from duet.config import TowerConfig
from duet.errors import InputError
from duet.model.attention import key_mask
from duet.model.blocks import Block, ConvSwiGLU, Head
from duet.model.rope import audio_rope, video_rope
from duet.model.state import ModalityInput, Rope, TowerState

if TYPE_CHECKING:
    from duet.parallel.sequence import SequenceParallel

SAMPLE_T_MIN = 0.05  # prediction "sample": the smallest t its velocity divides by (JiT's)


def run_block(step: Callable[..., Any], *xs: Tensor, checkpoint: bool = False) -> Any:
    """step(*xs), recomputed in the backward pass instead of stored when `checkpoint`."""
    if checkpoint and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(step, *xs, use_reentrant=False)
    return step(*xs)


def items_skipping(i: int, skip_blocks: tuple[int, ...], skip_items: Tensor | None) -> Tensor | bool:
    """Which batch items skip block i: False (none), True (all) or a bool [B] mask.

    skip_items is None (every item skips every block of skip_blocks), a bool [B] mask (those
    items skip all of them) or a bool [B, len(skip_blocks)] matrix whose column j marks the
    items that skip block skip_blocks[j] (so one batch can hold passes that skip different
    blocks, e.g. a CFG negative pass with SLG and a separate STG pass).
    """
    if i not in skip_blocks:
        return False
    if skip_items is None:
        return True
    return skip_items if skip_items.dim() == 1 else skip_items[:, skip_blocks.index(i)]


def keep_skipped(x_out: Tensor, x_in: Tensor, skip_items: Tensor) -> Tensor:
    """Per batch item, the block's output, or its input where the item skips the block."""
    return torch.where(skip_items.view(-1, 1, 1), x_in, x_out)


def sinusoidal_embedding(t: Tensor, dim: int) -> Tensor:
    """[cos, sin] timestep features in float64 (t reaches 1000: float32 phases drift)."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    phase = t.to(torch.float64)[:, None] * freqs  # (N, half)
    return torch.cat([phase.cos(), phase.sin()], dim=-1)


class Tower(nn.Module):
    """Input embedding, time and text embeddings, blocks and head of one modality."""

    def __init__(self, cfg: TowerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        if cfg.modality == "video":
            self.patch_embedding = nn.Conv3d(cfg.in_dim, d, cfg.patch_size, stride=cfg.patch_size)
        else:
            k = cfg.audio_stem_kernel
            self.patch_embedding = nn.Sequential(
                nn.Conv1d(cfg.in_dim, d, k, padding=k // 2), nn.SiLU(),
                ConvSwiGLU(d, cfg.audio_stem_hidden, k))
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"),
                                            nn.Linear(d, d))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.head = Head(d, cfg.out_dim * math.prod(cfg.patch_size), cfg.eps)
        self.gradient_checkpointing = False
        # split the tokens over processes (set by `TwinModel.enable_sequence_parallel`)
        self.sequence_parallel: SequenceParallel | None = None

    # ---- inputs -> tokens -------------------------------------------------------------
    def embed_latent(self, latent: Tensor, lengths: Tensor | None = None,
                     ) -> tuple[Tensor, tuple[int, ...]]:
        """Latent -> tokens (B, L, dim) and the token grid.

        The audio stem's k=7 convolutions would read a padded item's padding; zeroing the
        hidden states past each item's length makes the result equal to embedding the item
        alone, as the official per-item loop does. A video whose frame count is not a
        multiple of the temporal patch repeats its last frame to fill the last patch (a
        temporal patch of 4 takes a 97-frame clip as 25 token frames); `finish` crops it.
        """
        self._check_latent(latent)
        latent = latent.to(self.patch_embedding_dtype)
        if self.cfg.modality == "video":
            pad = -latent.shape[2] % self.cfg.patch_size[0]
            if pad:
                latent = torch.cat([latent, latent[:, :, -1:].expand(-1, -1, pad, -1, -1)], dim=2)
            x = self.patch_embedding(latent)  # (B, dim, F/pt, H/ph, W/pw)
            grid = tuple(x.shape[2:])
            # contiguous: the residual stream keeps its first layout through every add, and a
            # channels-first one made each LayerNorm and Linear copy it (11 % of a CPU forward)
            return x.flatten(2).transpose(1, 2).contiguous(), grid  # tokens in (f, h, w) order
        conv, act, mlp = self.patch_embedding
        n = latent.shape[1]
        keep = None
        if lengths is not None:
            keep = (torch.arange(n, device=latent.device) < lengths[:, None])[:, None, :]  # (B, 1, L)
            keep = keep.to(latent.dtype)
        h = act(conv(latent.transpose(1, 2)))  # (B, dim, L)
        x = mlp(h if keep is None else h * keep, keep)
        return x.transpose(1, 2).contiguous(), (n,)

    def embed_time(self, t: Tensor, batch: int) -> tuple[Tensor, Tensor]:
        """Time embedding e (B, L|1, dim) and modulation e0 (B, L|1, 6, dim).

        Per-token timesteps usually take two or three distinct values, so each distinct t is
        embedded once and gathered, instead of running the MLPs over every token.
        """
        if t.dim() not in (1, 2) or t.shape[0] != batch:
            raise InputError(f"timestep must be [B] or [B, tokens] with B={batch}, got {tuple(t.shape)}")
        values, inverse = torch.unique(t.reshape(-1), return_inverse=True)
        w = self.time_embedding[0].weight
        e = self.time_embedding(sinusoidal_embedding(values, self.cfg.freq_dim).to(w.dtype))
        e0 = self.time_projection(e).unflatten(-1, (6, self.cfg.dim))  # (U, 6, dim)
        shape = (batch, t.shape[1] if t.dim() == 2 else 1)
        return e[inverse].view(*shape, -1), e0[inverse].view(*shape, 6, -1)

    def embed_text(self, context: Tensor) -> Tensor:
        """Zero-pad (never mask) the text to text_len rows, then embed: (B, text_len, dim)."""
        b, lt = context.shape[0], context.shape[1]
        if context.dim() != 3 or context.shape[2] != self.cfg.text_dim:
            raise InputError(f"{self.cfg.modality} context must be [B, Lt, {self.cfg.text_dim}], "
                             f"got {tuple(context.shape)}")
        if lt > self.cfg.text_len:
            raise InputError(f"text context has {lt} tokens but the model takes at most "
                             f"{self.cfg.text_len}; truncate the prompt embedding first")
        w = self.text_embedding[0].weight
        padded = context.new_zeros(b, self.cfg.text_len, self.cfg.text_dim, dtype=w.dtype)
        padded[:, :lt] = context.to(w.dtype)
        return self.text_embedding(padded)

    def text_rows(self, context: Tensor) -> Tensor | None:
        """With `text_mask`: the key mask [B, 1, 1, text_len] of the caption's rows, up to its
        last row that is not all zero (the padding `embed_text` adds trails it); at least
        one row, so an all-zero context still attends. None when nothing is masked."""
        if not self.cfg.text_mask:
            return None
        rows = torch.arange(1, context.shape[1] + 1, device=context.device)
        lengths = (context.ne(0).any(-1) * rows).amax(1).clamp(min=1)
        return key_mask(lengths, self.cfg.text_len)

    def rope(self, grid: tuple[int, ...], device: torch.device) -> Rope:
        if self.cfg.modality == "video":
            return video_rope(grid, self.cfg.head_dim, device)  # type: ignore[arg-type]
        return audio_rope(grid[0], self.cfg.head_dim, self.cfg.rope_time_scale, device)

    def prepare(self, inp: ModalityInput) -> TowerState:
        x, grid = self.embed_latent(inp.latent, inp.lengths)
        b, n = x.shape[:2]
        t = inp.timestep
        if t.dim() == 2 and t.shape[1] != n:
            raise InputError(f"per-token timestep has {t.shape[1]} entries but the "
                             f"{self.cfg.modality} latent has {n} tokens")
        e, e0 = self.embed_time(t, b)
        if inp.context.shape[0] != b:
            raise InputError(f"{self.cfg.modality} context batch {inp.context.shape[0]} != latent batch {b}")
        frames = inp.latent.shape[2] if self.cfg.modality == "video" else 0
        s = TowerState(x=x, e=e, e0=e0, context=self.embed_text(inp.context),
                       rope=self.rope(grid, x.device), mask=key_mask(inp.lengths, n), grid=grid,
                       frames=frames, noisy=inp if self.cfg.prediction == "sample" else None,
                       context_mask=self.text_rows(inp.context))
        sp = self.sequence_parallel
        return s if sp is None else self._shard(s, inp.lengths, sp)

    @staticmethod
    def _shard(s: TowerState, lengths: Tensor | None, sp: SequenceParallel) -> TowerState:
        """This rank's share of the tokens, cut after the input stems (the audio stem
        convolves across tokens): x, per-token time embeddings and the rows of the RoPE
        table at each token's global position. The key mask also hides the padding that
        evens out the shards."""
        if torch.is_grad_enabled():
            raise InputError("sequence parallelism is for inference only (its exchanges carry "
                             "no gradients): call the model under torch.no_grad()")
        b, n = s.x.shape[:2]
        if lengths is None:
            lengths = torch.full((b,), n, device=s.x.device)
        per_token = s.e.shape[1] > 1  # else one time embedding per item, broadcast
        return replace(s, x=sp.shard(s.x), group=sp,
                       e=sp.shard(s.e) if per_token else s.e,
                       e0=sp.shard(s.e0) if per_token else s.e0,
                       rope=(sp.shard(s.rope[0], dim=0), sp.shard(s.rope[1], dim=0)),
                       mask=key_mask(lengths, sp.padded(n)))

    # ---- tokens -> outputs -------------------------------------------------------------
    def finish(self, s: TowerState) -> Tensor:
        """Head and unpatchify: video [B, C, F, H, W], audio [B, L, C]."""
        out = self.head(s.x, s.e)  # (B, L, prod(patch) * out_dim)
        if s.group is not None:  # every rank gets all tokens back
            out = s.group.gather(out, math.prod(s.grid))
        if self.cfg.modality == "video":
            out = self.unpatchify(out, s.grid)[:, :, :s.frames]
        return out if s.noisy is None else self.sample_to_velocity(out, s.noisy, s.grid)

    def unpatchify(self, tokens: Tensor, grid: tuple[int, ...]) -> Tensor:
        """(B, F·H·W, pt·ph·pw·C) -> (B, C, F·pt, H·ph, W·pw)."""
        f, h, w = grid
        pt, ph, pw = self.cfg.patch_size
        c = tokens.shape[-1] // (pt * ph * pw)
        out = tokens.reshape(tokens.shape[0], f, h, w, pt, ph, pw, c)
        out = out.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C, F, pt, H, ph, W, pw)
        return out.reshape(out.shape[0], c, f * pt, h * ph, w * pw)

    def sample_to_velocity(self, x0: Tensor, inp: ModalityInput, grid: tuple[int, ...]) -> Tensor:
        """Velocity (x_t - x0) / t from a predicted clean latent. t is clamped at
        SAMPLE_T_MIN so that nearly clean inputs (and held, clean partners at t = 0) do not
        divide by zero; per-token timesteps are spread over their tokens' latent cells."""
        t = inp.timestep.float() / 1000.0
        if t.dim() == 1:
            t = t.view(-1, *[1] * (x0.dim() - 1))
        elif self.cfg.modality == "audio":
            t = t[:, :, None]
        else:
            cells = t[:, :, None].expand(-1, -1, math.prod(self.cfg.patch_size))
            t = self.unpatchify(cells, grid)[:, :, :x0.shape[2]]
        v = (inp.latent.float() - x0.float()) / t.clamp_min(SAMPLE_T_MIN)
        return v.to(x0.dtype)

    def forward(self, inp: ModalityInput, skip_blocks: tuple[int, ...] = (),
                skip_items: Tensor | None = None) -> Tensor:
        """The tower alone (plain Wan blocks, no cross-modal attention)."""
        s = self.prepare(inp)
        for i in range(len(self.blocks)):
            s.x = self.run(i, s, skip_blocks, skip_items)
        return self.finish(s)

    def run(self, i: int, s: TowerState, skip_blocks: tuple[int, ...] = (),
            skip_items: Tensor | None = None) -> Tensor:
        """Block i alone on s.x (skipped per `items_skipping`); returns the new hidden states."""
        items = items_skipping(i, skip_blocks, skip_items)
        if items is True:
            return s.x
        step = functools.partial(self._block, i, s, None if items is False else items)
        return run_block(step, s.x, checkpoint=self.gradient_checkpointing)

    def _block(self, i: int, s: TowerState, skip_items: Tensor | None, x: Tensor) -> Tensor:
        block, s = self.blocks[i], replace(s, x=x)
        s.x = block.self_attention(s)
        s.x = block.cross_attention_ffn(s)
        return s.x if skip_items is None else keep_skipped(s.x, x, skip_items)

    # ---- checks ----------------------------------------------------------------------
    @property
    def patch_embedding_dtype(self) -> torch.dtype:
        return next(self.patch_embedding.parameters()).dtype

    def _check_latent(self, latent: Tensor) -> None:
        c = self.cfg
        if c.modality == "video":
            ok = latent.dim() == 5 and latent.shape[1] == c.in_dim
            ok = ok and all(n % p == 0 for n, p in zip(latent.shape[3:], c.patch_size[1:]))
            want = f"[B, {c.in_dim}, F, H, W] with H, W divisible by {c.patch_size[1:]}"
        else:
            ok = latent.dim() == 3 and latent.shape[2] == c.in_dim
            want = f"[B, L, {c.in_dim}] (channel-last)"
        if not ok:
            raise InputError(f"{c.modality} latent must be {want}, got {tuple(latent.shape)}")
        if not latent.is_floating_point():
            raise InputError(f"{c.modality} latent must be a float tensor, got {latent.dtype}")
