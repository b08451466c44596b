"""Factories for the codecs and text encoder a preset names.

Training, data preparation and the pipeline all build these; they live here so that
none of them imports the inference pipeline to get them.
"""

from __future__ import annotations

from typing import Any

import torch

from duet.codecs import build_video_codec, get_audio_codec
from duet.config import Preset
from duet.errors import ConfigError
from duet.text.encoder import CachedEncoder, TextEncoder, load_text_encoder


def build_codecs(preset: Preset, device: torch.device | str = "cpu", *,
                 vae_tiling: bool = False) -> tuple[Any, Any, TextEncoder]:
    """The video codec, audio codec and (cached) text encoder that the preset names;
    `vae_tiling` asks the video codec to work in tiles (a run option, not part of the preset)."""
    video, video_opts = _codec(preset, "video")
    audio, audio_opts = _codec(preset, "audio")
    _codec(preset, "text")  # every name is checked before anything loads
    video_codec = build_video_codec(video, video_opts, tiled=vae_tiling)
    audio_codec = get_audio_codec(audio, **audio_opts)
    return video_codec, audio_codec, CachedEncoder(build_text_encoder(preset, device))


def build_text_encoder(preset: Preset, device: torch.device | str = "cpu") -> TextEncoder:
    """The text encoder the preset names (uncached; the trainer encodes the empty prompt
    with it for `text_dropout`)."""
    name, opts = _codec(preset, "text")
    return load_text_encoder(name, device=device, **opts)


def _codec(preset: Preset, kind: str) -> tuple[str, dict[str, Any]]:
    """(name, options) of the preset's `kind` codec; ConfigError if it names none."""
    spec = preset.codecs.get(kind)
    if spec is None or "name" not in spec:
        raise ConfigError(f"preset {preset.name!r} names no {kind} codec "
                          f"(config key codecs.{kind}.name)")
    return spec["name"], {o: v for o, v in spec.items() if o != "name"}
