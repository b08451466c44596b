"""What the rest of Duet may assume about a codec, and the name -> codec registry.

A codec owns the conversion between media (pixels, waveforms) and the latents the towers
model. The sampler and trainer only ever see latents; `pipeline.py` is the one place that
holds a codec and a model together. Both protocols are structural (`typing.Protocol`), so
a wrapper around a third-party VAE needs no base class, only these members.

Layouts at the boundary:
- video: pixels `[B, 3, T, H, W]` in [-1, 1] <-> latents `[B, C, F, H/sh, W/sw]`, causal in
  time like Wan's VAE: T = st*k + 1 frames <-> F = k + 1 latent frames (frame 0 alone).
- audio: waveform `[B, N]` in [-1, 1] <-> latents `[B, L, C]`, channel-last because that is
  the token layout the audio tower takes; N = L * hop.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from duet.errors import ConfigError, InputError


@runtime_checkable
class VideoCodec(Protocol):
    """Pixels <-> video latents. Plain attributes satisfy the read-only properties."""

    @property
    def latent_channels(self) -> int: ...

    @property
    def stride(self) -> tuple[int, int, int]:
        """(t, h, w) pixels per latent."""
        ...

    def encode(self, video: Tensor) -> Tensor:
        """`[B, 3, T, H, W]` in [-1, 1] -> `[B, C, (T-1)//st + 1, H//sh, W//sw]`."""
        ...

    def decode(self, latents: Tensor) -> Tensor:
        """`[B, C, F, h, w]` -> `[B, 3, st*(F-1) + 1, h*sh, w*sw]` in [-1, 1]."""
        ...

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """`(C, F, h, w)` of the latents for a clip of this size; raises on invalid sizes."""
        ...

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> VideoCodec:
        """Move weights (if any) and return the codec."""
        ...


@runtime_checkable
class AudioCodec(Protocol):
    """Waveform <-> audio latents. Plain attributes satisfy the read-only properties."""

    @property
    def latent_channels(self) -> int: ...

    @property
    def sample_rate(self) -> int: ...

    @property
    def hop(self) -> int:
        """Waveform samples per latent."""
        ...

    @property
    def latent_rate(self) -> float:
        """Latents per second, `sample_rate / hop`."""
        ...

    def encode(self, wave: Tensor) -> Tensor:
        """`[B, N]` in [-1, 1] with N = L * hop -> `[B, L, C]`."""
        ...

    def decode(self, latents: Tensor) -> Tensor:
        """`[B, L, C]` -> `[B, L * hop]` in [-1, 1]."""
        ...

    def latent_length(self, num_samples: int) -> int:
        """Whole latents that fit in `num_samples` (trim the waveform to `L * hop` to encode)."""
        ...

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> AudioCodec:
        """Move weights (if any) and return the codec."""
        ...


def check_video_tensor(x: Tensor, name: str, channels: int) -> None:
    """A video codec's input: a float `[B, channels, T, H, W]` tensor."""
    if not isinstance(x, Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 5 or x.shape[1] != channels:
        raise InputError(
            f"{name} must have shape [B, {channels}, T, H, W], got {list(x.shape)}; "
            "add a batch dimension with x[None] if it is missing")
    if not x.is_floating_point():
        raise InputError(f"{name} must be floating point in [-1, 1], got {x.dtype}; "
                         "convert uint8 frames with x.float() / 127.5 - 1")


def check_frame_size(height: int, width: int, sh: int, sw: int) -> None:
    """Height and width must be whole multiples of the codec's spatial stride."""
    for name, size, s in (("height", height, sh), ("width", width, sw)):
        if size < s or size % s:
            near = max(s, round(size / s) * s)
            raise InputError(
                f"video {name} {size} is not a multiple of the codec stride {s}: "
                f"resize or crop to {near}")


class WeightFree:
    """Mixin for codecs made of fixed arithmetic. They follow their input's device and dtype
    (their small constant tables are built for it on demand), so `to()` has nothing to move;
    it exists so that callers can treat every codec the same way."""

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> Any:
        return self


# Registered codecs, as "module:attribute" so that importing the registry loads no codec.
_VIDEO_CODECS: dict[str, str] = {"pixels": "duet.codecs.pixels:PixelCodec",
                                 "wan2.2-vae": "duet.codecs.wan:WanVAECodec",
                                 "frames": "duet.codecs.frames:FrameCodec"}
_AUDIO_CODECS: dict[str, str] = {"mel": "duet.codecs.mel:MelCodec",
                                 "mmaudio-16k": "duet.codecs.mmaudio:MMAudioCodec"}


def video_codec_names() -> list[str]:
    return sorted(_VIDEO_CODECS)


def audio_codec_names() -> list[str]:
    return sorted(_AUDIO_CODECS)


def get_video_codec(name: str, **kwargs: Any) -> VideoCodec:
    """Build the video codec registered as `name` with its constructor options."""
    return _build("video", _VIDEO_CODECS, name, kwargs)


def get_audio_codec(name: str, **kwargs: Any) -> AudioCodec:
    """Build the audio codec registered as `name` with its constructor options."""
    return _build("audio", _AUDIO_CODECS, name, kwargs)


def build_video_codec(name: str, options: dict[str, Any], tiled: bool = False) -> VideoCodec:
    """The registered video codec `name`; with `tiled`, asked to encode/decode in tiles,
    which only codecs with a `tiled` option (the Wan2.2 VAE) can do."""
    if not tiled:
        return get_video_codec(name, **options)
    try:
        return get_video_codec(name, **options, tiled=True)
    except ConfigError as e:
        raise ConfigError(f"vae_tiling (--vae-tiling) was requested but video codec {name!r} "
                          f"cannot be built with tiled=True: {e}. Only codecs with a `tiled` "
                          "option (wan2.2-vae) decode in tiles; drop --vae-tiling for this "
                          "model") from None


def _build(kind: str, table: dict[str, str], name: str, kwargs: dict[str, Any]) -> Any:
    if name not in table:
        raise ConfigError(f"unknown {kind} codec {name!r}; choose one of {sorted(table)}")
    module, attr = table[name].split(":")
    cls = getattr(importlib.import_module(module), attr)
    allowed = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{kind} codec {name!r} has no option(s) {unknown}; allowed: {allowed}")
    return cls(**kwargs)
