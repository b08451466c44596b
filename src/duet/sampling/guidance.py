"""Guidance for the joint model: classifier-free guidance (Ho & Salimans 2022) with Ovi's
choices, plus the extra terms of its successors, each optional. Per modality m:

    pred_m = cond + (text_m - 1)(cond - uncond) + stg_m (cond - skipped) + (cross_m - 1)(cond - solo)

- cond: the prompt, full model.
- uncond: the negative prompt of each tower; it also skips `negative_skip_blocks` (Ovi's
  skip-layer guidance lives in the negative pass). With only this term the formula is Ovi's
  plain CFG, uncond + text_m (cond - uncond), which is the default.
- skipped: the prompt with `stg_blocks` skipped (spatio-temporal guidance, STG: a separate
  weak pass, so text and structure get their own scales).
- solo: the prompt with the cross-modal attention off. This cross-modal guidance term (MOVA's
  dual CFG / LTX-2's modality term) pushes each modality toward what the other one implies, i.e. toward sync.
- rescale phi > 0 pulls the result's std toward cond's (Lin et al. 2024), against the
  over-saturation that large scales cause: pred <- phi * pred * std(cond)/std(pred) + (1-phi) * pred.

All needed passes run as one batch of K*B items when `batched` (the default): the model
skips blocks per item and switches the fusion off per item, so K passes cost one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from duet.errors import ConfigError, InputError
from duet.model import ModalityInput, TwinModel

if TYPE_CHECKING:
    from duet.config import SamplerConfig

Scale = float | tuple[float, float]  # one scale for both modalities, or (video, audio)


@dataclass(frozen=True)
class Conditioning:
    """Text hidden states for each tower, [B, Lt, text_dim]; None for an absent modality."""

    video: Tensor | None
    audio: Tensor | None


@dataclass(frozen=True)
class CleanPrefix:
    """How many leading latents are given, clean (t = 0): video latent frames (a first frame
    for image-to-video, the previous chunk's tail for long clips) and audio latents."""

    video: int = 0
    audio: int = 0


@dataclass(frozen=True)
class Guidance:
    """Scales of each guidance term per modality (see the module docstring; neutral values:
    text 1, stg 0, cross-modal 1) and the blocks the weak passes skip."""

    video_scale: float = 4.0  # text CFG
    audio_scale: float = 3.0
    negative_skip_blocks: tuple[int, ...] = (11,)  # skipped in the negative (uncond) pass
    stg_video: float = 0.0
    stg_audio: float = 0.0
    stg_blocks: tuple[int, ...] = ()
    cross_modal_video: float = 1.0  # cross-modal guidance: cond vs fusion off
    cross_modal_audio: float = 1.0
    rescale: float = 0.0
    batched: bool = True

    def __post_init__(self) -> None:
        for name in ("video_scale", "audio_scale", "stg_video", "stg_audio",
                     "cross_modal_video", "cross_modal_audio"):
            value = getattr(self, name)
            if not value >= 0:  # also refuses nan
                neutral = "0" if name.startswith("stg") else "1"
                raise ConfigError(f"guidance {name} must be >= 0 ({neutral} disables it), got {value}")
        if not 0.0 <= self.rescale <= 1.0:
            raise ConfigError(f"guidance rescale must be in [0, 1] (0 disables it), got {self.rescale}")
        if (self.stg_video or self.stg_audio) and not self.stg_blocks:
            raise ConfigError("STG needs the blocks its weak pass skips: set stg_blocks "
                              "(CLI: --stg-blocks), e.g. a middle block")

    @property
    def text_active(self) -> bool:
        return self.video_scale != 1.0 or self.audio_scale != 1.0

    @property
    def stg_active(self) -> bool:
        return self.stg_video != 0.0 or self.stg_audio != 0.0

    @property
    def cross_modal_active(self) -> bool:
        return self.cross_modal_video != 1.0 or self.cross_modal_audio != 1.0

    @property
    def active(self) -> bool:
        return self.text_active or self.stg_active or self.cross_modal_active


def per_modality(value: Scale | list[float], name: str) -> tuple[float, float]:
    """(video, audio) from one value for both modalities or a pair."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return float(value[0]), float(value[1])
    raise InputError(f"{name} must be one number or (video, audio), got {value!r}")


def resolve_guidance(sampler: SamplerConfig, num_blocks: int, *,
                     video_guidance: float | None = None, audio_guidance: float | None = None,
                     slg: bool = True, slg_block: int | None = None, stg_guidance: Scale = 0.0,
                     stg_blocks: tuple[int, ...] | None = None,
                     cross_modal_guidance: Scale = 1.0, guidance_rescale: float = 0.0,
                     batch_cfg: bool = True) -> Guidance:
    """The one place where a call's guidance options meet the preset's defaults: None means
    the preset's text scale and skip-layer block; `slg=False` skips no block whatever the
    preset says; STG's weak pass skips the middle block unless `stg_blocks` names others.
    Blocks must exist in a model of `num_blocks` blocks."""
    skip = (sampler.slg_block if slg_block is None else slg_block) if slg else None
    stg_video, stg_audio = per_modality(stg_guidance, "stg_guidance")
    cross_video, cross_audio = per_modality(cross_modal_guidance, "cross_modal_guidance")
    stg_blocks = (num_blocks // 2,) if stg_blocks is None else tuple(int(b) for b in stg_blocks)
    for name, blocks in (("slg_block", () if skip is None else (skip,)), ("stg_blocks", stg_blocks)):
        if any(not 0 <= b < num_blocks for b in blocks) or len(set(blocks)) != len(blocks):
            raise InputError(f"{name} {list(blocks)} out of range or repeated: the model has "
                             f"blocks 0..{num_blocks - 1}")
    return Guidance(
        video_scale=sampler.video_guidance if video_guidance is None else video_guidance,
        audio_scale=sampler.audio_guidance if audio_guidance is None else audio_guidance,
        negative_skip_blocks=() if skip is None else (skip,), stg_video=stg_video,
        stg_audio=stg_audio, stg_blocks=stg_blocks, cross_modal_video=cross_video,
        cross_modal_audio=cross_audio, rescale=guidance_rescale, batched=batch_cfg)


@dataclass(frozen=True)
class _Pass:
    """One model evaluation that guidance needs."""

    name: str  # cond | uncond | skipped | solo
    negative: bool  # reads the negative prompts
    skip: tuple[int, ...]
    cross_modal: bool


def cfg(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """uncond + scale * (cond - uncond)."""
    return uncond + scale * (cond - uncond)


def video_prefix_timestep(t: Tensor, video: Tensor, patch: tuple[int, int, int],
                          frames: int = 1) -> Tensor:
    """Per-token timesteps [B, tokens] with t = 0 on the first `frames` latent frames: a clean
    first frame (image-to-video) or the previous chunk's tail (long clips)."""
    if patch[0] != 1:
        raise InputError(f"clean leading latent frames (image-to-video, long clips) need tokens "
                         f"of one latent frame, but this video tower's tokens each span {patch[0]} "
                         f"latent frames (patch_size {tuple(patch)}); use a model whose temporal "
                         "patch is 1")
    b, _, f, h, w = video.shape
    per_frame = (h // patch[1]) * (w // patch[2])
    tokens = t[:, None].expand(b, f * per_frame).clone()
    tokens[:, :frames * per_frame] = 0
    return tokens


def audio_prefix_timestep(t: Tensor, audio: Tensor, latents: int) -> Tensor:
    """Per-token timesteps [B, L] with t = 0 on the first `latents` audio latents (one token
    each): the previous chunk's sound, held clean."""
    tokens = t[:, None].expand(audio.shape[0], audio.shape[1]).clone()
    tokens[:, :latents] = 0
    return tokens


Timestep = Tensor | tuple[Tensor, Tensor]  # shared [B], or (video [B], audio [B]) per modality


def model_velocity(model: TwinModel, video: Tensor | None, audio: Tensor | None, t: Timestep,
                   cond: Conditioning, *, clean: CleanPrefix = CleanPrefix(),
                   skip_blocks: tuple[int, ...] = (), skip_items: Tensor | None = None,
                   cross_modal: bool | Tensor = True) -> tuple[Tensor | None, Tensor | None]:
    """One model call on latents at timestep t [B] (0..1000), or (t_video, t_audio) when the
    modalities sit at different noise levels, conditioned on `cond`.

    clean: leading latents that are given, not generated; their tokens get t = 0.
    cross_modal=False runs the towers without fusion (an ablation of what fusion buys); a
    bool [B] tensor switches it per item (see `TwinModel.forward`)."""
    vin = ain = None
    if video is not None:
        tv = t[0] if isinstance(t, tuple) else t
        if clean.video:
            tv = video_prefix_timestep(tv, video, model.cfg.video.patch_size, clean.video)
        vin = ModalityInput(video, tv, cond.video)
    if audio is not None:
        ta = t[1] if isinstance(t, tuple) else t
        if clean.audio:
            ta = audio_prefix_timestep(ta, audio, clean.audio)
        ain = ModalityInput(audio, ta, cond.audio)
    return model(vin, ain, skip_blocks=skip_blocks, skip_items=skip_items, cross_modal=cross_modal)


def _cat(xs: list[Tensor | None]) -> Tensor | None:
    """Stack batches; text contexts of different lengths are zero-padded, which the model
    does anyway (Ovi pads text with zeros and never masks it)."""
    if any(x is None for x in xs):
        return None
    if xs[0].dim() == 3 and len({x.shape[1] for x in xs}) > 1:
        n = max(x.shape[1] for x in xs)
        xs = [torch.nn.functional.pad(x, (0, 0, 0, n - x.shape[1])) for x in xs]
    return torch.cat(xs)


def _passes(guidance: Guidance, fused: bool) -> list[_Pass]:
    """The passes `guidance` needs; `fused`: the conditional pass runs with fusion on."""
    passes = [_Pass("cond", False, (), fused)]
    if guidance.text_active:
        passes.append(_Pass("uncond", True, tuple(guidance.negative_skip_blocks), fused))
    if guidance.stg_active:
        passes.append(_Pass("skipped", False, tuple(guidance.stg_blocks), fused))
    if guidance.cross_modal_active and fused:
        passes.append(_Pass("solo", False, (), False))
    return passes


def combine(out: dict[str, Tensor], text: float, stg: float, cross_modal: float,
            rescale: float) -> Tensor:
    """One modality's guided prediction from its passes' outputs (module docstring)."""
    cond = out["cond"]
    pred = cfg(cond, out["uncond"], text) if "uncond" in out and text != 1.0 else cond
    if "skipped" in out and stg != 0.0:
        pred = pred + stg * (cond - out["skipped"])
    if "solo" in out and cross_modal != 1.0:
        pred = pred + (cross_modal - 1.0) * (cond - out["solo"])
    if rescale > 0.0:
        dims = tuple(range(1, cond.dim()))
        ratio = cond.float().std(dim=dims, keepdim=True) / pred.float().std(dim=dims, keepdim=True).clamp(min=1e-12)
        pred = (rescale * ratio + (1.0 - rescale)).to(pred.dtype) * pred
    return pred


def guided_velocity(model: TwinModel, video: Tensor | None, audio: Tensor | None, t: Timestep,
                    cond: Conditioning, uncond: Conditioning, guidance: Guidance, *,
                    clean: CleanPrefix = CleanPrefix(), cross_modal: bool = True,
                    ) -> tuple[Tensor | None, Tensor | None]:
    """Guided velocity per modality; `cross_modal=False` turns the fusion off everywhere.
    Every pass sees the same clean prefix, so guidance never pushes on given latents."""
    kw = {"clean": clean}
    fused = cross_modal and video is not None and audio is not None
    if not guidance.active:
        return model_velocity(model, video, audio, t, cond, cross_modal=cross_modal, **kw)
    passes = _passes(guidance, fused)
    texts = [uncond if p.negative else cond for p in passes]
    if guidance.batched and len(passes) > 1:
        b, k = (video if video is not None else audio).shape[0], len(passes)
        device = (video if video is not None else audio).device
        blocks = tuple(sorted({i for p in passes for i in p.skip}))
        skip = torch.tensor([[i in p.skip for i in blocks] for p in passes for _ in range(b)],
                            device=device).reshape(k * b, len(blocks))
        gate = torch.tensor([p.cross_modal for p in passes for _ in range(b)], device=device)
        tk = (t[0].repeat(k), t[1].repeat(k)) if isinstance(t, tuple) else t.repeat(k)
        both = Conditioning(_cat([c.video for c in texts]), _cat([c.audio for c in texts]))
        v, a = model_velocity(model, _cat([video] * k), _cat([audio] * k), tk, both,
                              skip_blocks=blocks, skip_items=skip if blocks else None,
                              cross_modal=gate if fused else cross_modal, **kw)
        outs = [dict(zip([p.name for p in passes], x.chunk(k))) if x is not None else None
                for x in (v, a)]
    else:
        results = [model_velocity(model, video, audio, t, c, skip_blocks=p.skip,
                                  cross_modal=p.cross_modal and cross_modal, **kw)
                   for p, c in zip(passes, texts)]
        outs = [{p.name: r[m] for p, r in zip(passes, results)} if r0 is not None else None
                for m, r0 in enumerate(results[0])]
    g = guidance
    return (combine(outs[0], g.video_scale, g.stg_video, g.cross_modal_video, g.rescale) if outs[0] is not None else None,
            combine(outs[1], g.audio_scale, g.stg_audio, g.cross_modal_audio, g.rescale) if outs[1] is not None else None)
