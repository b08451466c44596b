"""Thresholds and switches of `duet data curate`, read from a JSON or TOML file.

One flat frozen dataclass: each filter's keys share a prefix (``loudness_``, ``motion_``,
``sync_``, ``syncnet_``, ``caption_``), so the report's metric names and the config's keys
read the same. Unknown keys are refused by name, so a typo cannot silently keep a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duet.errors import ConfigError

SYNC_ACTIONS = ("shift", "drop")


@dataclass(frozen=True)
class CurateConfig:
    """Every knob of a curation run (defaults suit the `demo` preset and real footage)."""

    preset: str = "demo"  # its clip length, frame rate, size, sample rate, codecs, text encoder
    shard_size: int = 64  # clips per output shard
    workers: int = 2  # processes (or Ray tasks in flight) that curate inputs in parallel
    # scenes: PySceneDetect's ContentDetector; clips never straddle a cut
    scene_threshold: float = 27.0
    scene_min_frames: int = 15
    clips_per_scene: int = 4  # at most this many consecutive clip-length windows per scene
    # resolution: the source's short side before resizing (None: the preset's side)
    min_short_side: int | None = None
    # loudness: integrated loudness (ITU-R BS.1770, pyloudnorm) and the fraction of 50 ms
    # windows quieter than `silence_db` dBFS
    loudness_min_lufs: float = -45.0
    silence_db: float = -60.0
    silence_max_fraction: float = 0.95
    # motion: mean Farneback optical-flow magnitude, pixels per frame at `motion_size`
    motion_size: int = 128  # short side the flow is computed at (small: flow is the cost)
    motion_min: float = 0.02
    motion_max: float = 16.0
    # A/V sync, weight-free: audio onsets against changes of visual motion
    sync_max_offset_ms: float = 500.0  # offsets searched: +-this
    sync_tolerance_ms: float = 90.0  # |offset| up to this is in sync (just over 2 frames at 24 fps)
    sync_action: str = "shift"  # out-of-sync clips: shift the audio back into sync, or drop
    sync_min_score: float = 0.3  # peak correlation below this: no audible motion events
    # SyncNet (speech clips), only when weights are given: official syncnet_v2.model
    syncnet_weights: str | None = None
    syncnet_min_confidence: float = 3.0
    # captions: a shell command ({path} {start} {end} replaced) or "module:function";
    # without either, a sidecar NAME.txt next to the input, else no caption
    caption_command: str | None = None
    caption_callable: str | None = None

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.workers < 1 or self.clips_per_scene < 1:
            raise ConfigError("shard_size, workers and clips_per_scene must be at least 1, got "
                              f"{self.shard_size}, {self.workers}, {self.clips_per_scene}")
        if self.sync_action not in SYNC_ACTIONS:
            raise ConfigError(f"sync_action must be one of {SYNC_ACTIONS}, got {self.sync_action!r}")
        if not 0 < self.sync_tolerance_ms < self.sync_max_offset_ms:
            raise ConfigError("need 0 < sync_tolerance_ms < sync_max_offset_ms, got "
                              f"{self.sync_tolerance_ms} and {self.sync_max_offset_ms}")
        if self.caption_command and self.caption_callable:
            raise ConfigError("set caption_command or caption_callable, not both")
        if self.caption_callable and ":" not in self.caption_callable:
            raise ConfigError(f"caption_callable must read module:function, got "
                              f"{self.caption_callable!r}")
        if not 0.0 <= self.silence_max_fraction <= 1.0:
            raise ConfigError(f"silence_max_fraction is a fraction in [0, 1], got "
                              f"{self.silence_max_fraction}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CurateConfig:
        from duet.config_files import check_keys

        check_keys(cls, d, "curate config")
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path) -> CurateConfig:
        from duet.config_files import read_config_file

        return cls.from_dict(read_config_file(path, "curate config"))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CurateConfig:
        return cls.from_dict(json.loads(text))

    def fingerprint(self) -> str:
        """Hash of the keys that change a clip's output (not `workers`): a finished input is
        reused by a later run only if this matches."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("workers", "shard_size")}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
