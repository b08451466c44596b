"""The named presets. A preset is data: the same code builds the 11B Ovi model and the
tiny CPU model, only these numbers differ."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from duet.config import (BridgeConfig, MediaConfig, Preset, SamplerConfig, TowerConfig, TwinConfig,
                         audio_rope_time_scale)
from duet.errors import ConfigError

# Ovi's audio RoPE factor, 0.19676, is its 5 s clip's; its 10 s model keeps it.
_OVI_ROPE_SCALE = audio_rope_time_scale(MediaConfig().video_frames_per_audio_latent)


def _ovi_towers(num_layers: int = 30) -> TwinConfig:
    video = TowerConfig("video", num_layers=num_layers)
    audio = TowerConfig("audio", num_layers=num_layers, in_dim=20, out_dim=20, patch_size=(1,),
                        rope_time_scale=_OVI_ROPE_SCALE)
    return TwinConfig(video, audio)


_OVI_CODECS = {"video": {"name": "wan2.2-vae"}, "audio": {"name": "mmaudio-16k"},
               "text": {"name": "umt5-xxl"}}


def _tiny_towers(dim: int = 64, heads: int = 2, layers: int = 3, ffn: int = 128,
                 text_len: int = 16, text_dim: int = 4096) -> TwinConfig:
    """The reference tiny model's shape (tests/fixtures/ovi_tiny/config.json)."""
    common = dict(dim=dim, ffn_dim=ffn, num_heads=heads, num_layers=layers, text_len=text_len,
                  text_dim=text_dim)
    return TwinConfig(
        TowerConfig("video", **common),
        TowerConfig("audio", in_dim=20, out_dim=20, patch_size=(1,),
                    rope_time_scale=_OVI_ROPE_SCALE, **common),
    )


def _demo() -> Preset:
    """The small CPU model: a learned frame codec, the mel codec, MiniLM text, 4 s at 64x64.

    The video codec (`duet.codecs.frames`, trained by `duet codec train --chroma-channels 2`)
    keeps every frame (temporal stride 1: an impact must be placeable to the frame, and
    averaging frames smears the bounce the sync ruler looks for) and maps 16x16 pixels to 16
    learned luma channels plus 2 cell-averaged colour channels, so the named colour is a
    number the tower reads and writes directly. With 2x2 patches the video tower sees 4
    tokens per frame, 388 per clip, which is what lets it train in hours on 2 cores. The
    video tower predicts the clean latent (JiT's x-prediction: at this width a velocity head
    never removed the last of the noise). Its unconditional prediction is the empty prompt
    (`text_dropout` in training), so the negative prompts are empty: words the model never
    saw as negatives would only add noise; the video's text CFG is off by default (it costs
    the ball its bounces) and the audio's is 3. docs/default-model.md has the whole story.
    """
    media = MediaConfig(fps=24.0, sample_rate=16000, frames=97, area=64 * 64, size_multiple=32,
                        video_stride=(1, 16, 16), audio_hop=512, audio_latents=None)
    scale = audio_rope_time_scale(media.video_frames_per_audio_latent)
    common = dict(dim=256, ffn_dim=768, num_heads=4, num_layers=4, text_len=96, text_dim=384)
    model = TwinConfig(
        TowerConfig("video", in_dim=18, out_dim=18, patch_size=(1, 2, 2), prediction="sample",
                    **common),
        TowerConfig("audio", in_dim=80, out_dim=80, patch_size=(1,), rope_time_scale=scale, **common),
    )
    # video text CFG off: on this model it halves the bounces (docs/default-model.md)
    sampler = SamplerConfig(steps=25, video_guidance=1.0, slg_block=None, video_negative="",
                            audio_negative="")
    codecs = {"video": {"name": "frames"},
              "audio": {"name": "mel", "sample_rate": 16000, "hop": 512, "n_mels": 80},
              "text": {"name": "minilm-l6"}}
    return Preset("demo", model, media, sampler, codecs=codecs)


def _demo_bridge() -> Preset:
    """MOVA's design at the demo's scale: the demo's video tower (so a demo video stage can
    initialise it) and an audio tower of half the width and depth, joined by a bridge
    before video blocks 0 and 2 (audio blocks 0 and 1) on MOVA's aligned time axis."""
    demo = _demo()
    media = demo.media
    video = dataclasses.replace(demo.model.video, cross_modal=False)
    audio = dataclasses.replace(demo.model.audio, dim=128, ffn_dim=384, num_heads=2, num_layers=2,
                                cross_modal=False, rope_time_scale=1.0)
    bridge = BridgeConfig(layers=(0, 2), video_rate=media.fps / media.video_stride[0],
                          audio_rate=media.audio_rate, dim=128, num_heads=2, rope="aligned")
    return dataclasses.replace(demo, name="demo-bridge", model=TwinConfig(video, audio, bridge))


PRESETS: dict[str, Preset] = {
    "ovi-720x720-5s": Preset("ovi-720x720-5s", _ovi_towers(), codecs=_OVI_CODECS),
    "ovi-960x960-5s": Preset(
        "ovi-960x960-5s", _ovi_towers(), MediaConfig(area=960 * 960),
        prompt_format="audio_colon", codecs=_OVI_CODECS),
    "ovi-960x960-10s": Preset(
        "ovi-960x960-10s", _ovi_towers(), MediaConfig(area=960 * 960, frames=241, audio_latents=314),
        prompt_format="audio_colon", codecs=_OVI_CODECS),
    "tiny": Preset("tiny", _tiny_towers(), codecs=_OVI_CODECS),
    "demo": _demo(),
    "demo-bridge": _demo_bridge(),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def codecs_with(preset: Preset, codecs: Mapping[str, Any]) -> Preset:
    """`preset` with its codec specs overridden per kind ("video", "audio", "text"): a table
    with a new "name" replaces that kind's spec, one without merges options into it (e.g.
    {"video": {"weights": "frames-chroma.safetensors"}} for a newly trained frame codec)."""
    specs = {k: dict(v) for k, v in preset.codecs.items()}
    for kind, spec in codecs.items():
        if kind not in ("video", "audio", "text") or not isinstance(spec, Mapping):
            raise ConfigError(f"codecs.{kind}: expected a table under 'video', 'audio' or "
                              f"'text', got {kind!r} = {spec!r}")
        same = "name" not in spec or spec["name"] == specs.get(kind, {}).get("name")
        specs[kind] = {**specs.get(kind, {}), **spec} if same else dict(spec)
    return dataclasses.replace(preset, codecs=specs)
