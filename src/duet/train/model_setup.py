"""The model a training run trains: its base preset's `TwinConfig` with the run's `model`
overrides applied, and the preset its bundle is written with. It takes the preset and the
overrides, not the run's `TrainConfig`, so the config can check its model shape here
without the two modules importing each other."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from duet.config import BridgeConfig, Preset, TowerConfig, TwinConfig, audio_rope_time_scale
from duet.errors import ConfigError

TOWER_KEYS = {f.name for f in dataclasses.fields(TowerConfig)} - {"modality"}


def preset_with(preset: Preset, model: Mapping[str, Any]) -> Preset:
    """The preset a run's bundle is written with: `preset` with the model `twin_with` gives."""
    return dataclasses.replace(preset, model=twin_with(preset, model))


def twin_with(preset: Preset, model: Mapping[str, Any]) -> TwinConfig:
    """The preset's model with `model` overrides applied: top-level TowerConfig keys apply to
    both towers, "video"/"audio" tables to one, a "bridge" table to the bridge (ConfigError
    names a bad key or an impossible shape)."""
    base = preset.model
    per_tower = {m: dict(model.get(m, {})) for m in ("video", "audio")}
    common = {k: v for k, v in model.items() if k not in ("video", "audio", "bridge")}
    for key in common:
        if key not in TOWER_KEYS:
            raise ConfigError(f"unknown model key {key!r}; allowed: {sorted(TOWER_KEYS)} "
                              "(or a 'video'/'audio' table of them)")
    towers = {}
    for m in ("video", "audio"):
        if not isinstance(per_tower[m], dict):
            raise ConfigError(f"model.{m} must be a table of TowerConfig keys")
        for key in per_tower[m]:
            if key not in TOWER_KEYS:
                raise ConfigError(f"unknown model key {m}.{key!r}; allowed: {sorted(TOWER_KEYS)}")
        changes = {k: tuple(v) if isinstance(v, list) else v
                   for k, v in {**common, **per_tower[m]}.items()}
        if (m == "audio" and "rope_time_scale" not in changes
                and changes.get("cross_modal", base.audio.cross_modal)):
            changes["rope_time_scale"] = _audio_rope_scale(base, towers["video"])
        try:
            towers[m] = dataclasses.replace(getattr(base, m), **changes)
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"model ({m} tower): {e}") from None
    try:
        return TwinConfig(towers["video"], towers["audio"], _bridge(preset, model))
    except ConfigError as e:
        raise ConfigError(f"model: {e}") from None


def _audio_rope_scale(base: TwinConfig, video: TowerConfig) -> float:
    """The fused audio tower's RoPE factor for this video tower: the preset's factor counts
    video tokens of the preset's temporal patch, so it is rescaled to this tower's patch
    (demo: 0.768 with a patch of 1 frame, 0.192 with 4). A bridged model's towers share no
    RoPE axis; their factors are left alone (the caller skips them)."""
    per_frame = base.audio.rope_time_scale * base.video.patch_size[0]
    return audio_rope_time_scale(per_frame, video.patch_size[0])


def _bridge(preset: Preset, model: Mapping[str, Any]) -> BridgeConfig | None:
    """The preset's bridge with the `model.bridge` table applied (null removes it; on a
    preset without one the table needs `layers`; rates default to the preset's media)."""
    base = preset.model.bridge
    if "bridge" not in model:
        return base
    table = model["bridge"]
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError("model.bridge must be a table of BridgeConfig keys (or null)")
    media = preset.media
    start = dataclasses.asdict(base) if base is not None else {
        "video_rate": media.fps / media.video_stride[0], "audio_rate": media.audio_rate}
    known = {f.name for f in dataclasses.fields(BridgeConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"unknown model key bridge.{unknown[0]!r}; allowed: {sorted(known)}")
    merged = {**start, **{k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}}
    if "layers" not in merged:
        raise ConfigError("model.bridge needs layers (video block indices) on a preset without a bridge")
    return BridgeConfig(**merged)
