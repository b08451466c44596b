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


def check_components(preset: Preset, text_encoder: TextEncoder, video_codec: Any,
                     audio_codec: Any) -> None:
    """Refuse codecs or a text encoder whose sizes do not fit the preset's towers, naming
    every mismatch (else the first tensor op fails with a shape error)."""
    m, problems = preset.model, []
    if video_codec.latent_channels != m.video.in_dim:
        problems.append(f"video codec has {video_codec.latent_channels} latent channels, "
                        f"tower takes {m.video.in_dim}")
    if audio_codec.latent_channels != m.audio.in_dim:
        problems.append(f"audio codec has {audio_codec.latent_channels} latent channels, "
                        f"tower takes {m.audio.in_dim}")
    if text_encoder.dim != m.video.text_dim:
        problems.append(f"text encoder is {text_encoder.dim}-d, towers take {m.video.text_dim}")
    if problems:
        raise ConfigError(f"preset {preset.name!r} does not fit its components: "
                          + "; ".join(problems))


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
