"""Classifier-free guidance for the joint model (Ho & Salimans 2022), with Ovi's choices:
a separate scale per modality, a separate negative prompt per tower, and skip-layer
guidance (the negative pass skips a block). The conditional and negative passes run as one
batch of 2B items when `batched` (the default), halving the number of forward calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from duet.errors import ConfigError
from duet.model import ModalityInput, TwinModel


@dataclass(frozen=True)
class Conditioning:
    """Text hidden states for each tower, [B, Lt, text_dim]; None for an absent modality."""

    video: Tensor | None
    audio: Tensor | None


@dataclass(frozen=True)
class Guidance:
    """Per-modality CFG scales (1.0 = off) and the blocks the negative pass skips."""

    video_scale: float = 4.0
    audio_scale: float = 3.0
    negative_skip_blocks: tuple[int, ...] = (11,)
    batched: bool = True

    def __post_init__(self) -> None:
        for name in ("video_scale", "audio_scale"):
            if getattr(self, name) < 0:
                raise ConfigError(f"guidance {name} must be >= 0 (1 disables it), got {getattr(self, name)}")

    @property
    def active(self) -> bool:
        return self.video_scale != 1.0 or self.audio_scale != 1.0


def cfg(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """uncond + scale * (cond - uncond)."""
    return uncond + scale * (cond - uncond)


def first_frame_timestep(t: Tensor, video: Tensor, patch: tuple[int, int, int]) -> Tensor:
    """Per-token timesteps [B, tokens] with t = 0 on latent frame 0 (image-to-video)."""
    b, _, f, h, w = video.shape
    per_frame = (h // patch[1]) * (w // patch[2])
    tokens = t[:, None].expand(b, (f // patch[0]) * per_frame).clone()
    tokens[:, :per_frame] = 0
    return tokens


def model_velocity(model: TwinModel, video: Tensor | None, audio: Tensor | None, t: Tensor,
                   cond: Conditioning, *, first_frame_clean: bool = False,
                   skip_blocks: tuple[int, ...] = (), skip_items: Tensor | None = None,
                   cross_modal: bool = True) -> tuple[Tensor | None, Tensor | None]:
    """One model call on latents at timestep t [B] (0..1000), conditioned on `cond`.

    cross_modal=False runs the towers without fusion (an ablation of what fusion buys)."""
    vin = ain = None
    if video is not None:
        vt = first_frame_timestep(t, video, model.cfg.video.patch_size) if first_frame_clean else t
        vin = ModalityInput(video, vt, cond.video)
    if audio is not None:
        ain = ModalityInput(audio, t, cond.audio)
    return model(vin, ain, skip_blocks=skip_blocks, skip_items=skip_items, cross_modal=cross_modal)


def _cat(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    """Stack two batches; text contexts of different lengths are zero-padded, which the
    model does anyway (Ovi pads text with zeros and never masks it)."""
    if a is None or b is None:
        return None
    if a.dim() == 3 and a.shape[1] != b.shape[1]:
        n = max(a.shape[1], b.shape[1])
        a, b = (torch.nn.functional.pad(x, (0, 0, 0, n - x.shape[1])) for x in (a, b))
    return torch.cat([a, b])


def guided_velocity(model: TwinModel, video: Tensor | None, audio: Tensor | None, t: Tensor,
                    cond: Conditioning, uncond: Conditioning, guidance: Guidance, *,
                    first_frame_clean: bool = False, cross_modal: bool = True,
                    ) -> tuple[Tensor | None, Tensor | None]:
    """CFG velocity per modality: negative pass with `uncond` texts and skipped blocks."""
    kw = dict(first_frame_clean=first_frame_clean, cross_modal=cross_modal)
    if not guidance.active:
        return model_velocity(model, video, audio, t, cond, **kw)
    skip = guidance.negative_skip_blocks
    if guidance.batched:
        b = t.shape[0]
        both = Conditioning(_cat(cond.video, uncond.video), _cat(cond.audio, uncond.audio))
        skip_items = torch.arange(2 * b, device=t.device) >= b
        v, a = model_velocity(model, _cat(video, video), _cat(audio, audio), torch.cat([t, t]),
                              both, skip_blocks=skip, skip_items=skip_items, **kw)
        (vc, vu), (ac, au) = (x.chunk(2) if x is not None else (None, None) for x in (v, a))
    else:
        vc, ac = model_velocity(model, video, audio, t, cond, **kw)
        vu, au = model_velocity(model, video, audio, t, uncond, skip_blocks=skip, **kw)
    return (cfg(vc, vu, guidance.video_scale) if vc is not None else None,
            cfg(ac, au, guidance.audio_scale) if ac is not None else None)
