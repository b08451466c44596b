"""Codecs: media <-> latents. Protocols and registry in `base`; the demo model's learned
`FrameCodec` (video), weight-free `PixelCodec` (video) and `MelCodec` (audio); the Wan2.2 VAE
`WanVAECodec` (video, imports diffusers only when built)."""

from duet.codecs.base import (
    AudioCodec,
    VideoCodec,
    audio_codec_names,
    build_video_codec,
    get_audio_codec,
    get_video_codec,
    video_codec_names,
)
from duet.codecs.frames import FrameCodec
from duet.codecs.mel import MelCodec, MelSpec, log_mel, mel_filterbank
from duet.codecs.pixels import PixelCodec
from duet.codecs.wan import WanVAECodec

__all__ = [
    "AudioCodec", "FrameCodec", "MelCodec", "MelSpec", "PixelCodec", "VideoCodec",
    "WanVAECodec", "audio_codec_names", "build_video_codec", "get_audio_codec",
    "get_video_codec", "log_mel", "mel_filterbank", "video_codec_names",
]
