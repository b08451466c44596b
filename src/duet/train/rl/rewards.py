"""Rewards: functions of a generated clip, each tagged with the tower it judges.

The interface is one callable, `fn(clip: GeneratedClip) -> float`, where the clip
(`generated.py`) holds the decoded frames (uint8 [T, H, W, 3]), the waveform (float32 [N]
in [-1, 1]), their rates and the prompt it was generated from. Larger is better; the scale is free (advantages are
normalised per reward). The tag routes the reward's advantage (`advantages.py`):
"video" -> the video tower, "audio" -> the audio tower, "joint" (e.g. sync) -> both.

Plug in a scorer (CLAP, ImageBind, Synchformer, ...) by registering it:

    from duet.train.rl import GeneratedClip, register_reward

    @register_reward("clap", "joint")
    def clap(clip: GeneratedClip) -> float:
        return my_clap_model.score(clip.audio, clip.sample_rate, clip.prompt)

and name it in the config's `rewards` table, either by its registered name (when your code
registers it before calling `train_rl`) or as "package.module:function" (the module is
imported, which registers it; `duet rl` needs this form).

Built in: `brightness` (video) and `loudness` (audio), simple known targets for tests, and
the synthetic world's `sync` (joint), `video_adherence`, `motion` and `audio_adherence`
(`world_rewards.py`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from duet.errors import ConfigError
from duet.train.rl import world_rewards
from duet.train.rl.generated import GeneratedClip

Tag = Literal["video", "audio", "joint"]
TAGS: tuple[str, ...] = ("video", "audio", "joint")


RewardFn = Callable[[GeneratedClip], float]


@dataclass(frozen=True)
class Reward:
    """A named reward function and the tower(s) it judges."""

    name: str
    tag: Tag
    fn: RewardFn

    def __post_init__(self) -> None:
        if self.tag not in TAGS:
            raise ConfigError(f"reward {self.name!r} is tagged {self.tag!r}; use one of {TAGS}")

    def __call__(self, clip: GeneratedClip) -> float:
        return float(self.fn(clip))


REWARDS: dict[str, Reward] = {}


def register_reward(name: str, tag: Tag) -> Callable[[RewardFn], Reward]:
    """Decorator: register `fn` under `name`, tagged "video", "audio" or "joint"."""

    def wrap(fn: RewardFn) -> Reward:
        reward = Reward(name, tag, fn)
        REWARDS[name] = reward
        return reward

    return wrap


def get_reward(name: str) -> Reward:
    """A registered reward, or "package.module:attr" (imported; attr must be a `Reward`)."""
    if name in REWARDS:
        return REWARDS[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            found = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"reward {name!r}: cannot import {attr} from {module} ({e})"
                              ) from None
        if not isinstance(found, Reward):
            raise ConfigError(f"reward {name!r} is not a Reward: decorate the function with "
                              "@register_reward(name, tag) (duet.train.rl)")
        return found
    raise ConfigError(f"unknown reward {name!r}; registered: {sorted(REWARDS)} (or name your "
                      "own as 'package.module:function', see duet.train.rl.rewards)")


@register_reward("brightness", "video")
def brightness(clip: GeneratedClip) -> float:
    """Mean pixel value in [0, 1]."""
    return float(np.asarray(clip.frames, np.float64).mean() / 255.0)


@register_reward("loudness", "audio")
def loudness(clip: GeneratedClip) -> float:
    """RMS level mapped from [-60, 0] dBFS to [0, 1] (silence: 0)."""
    rms = float(np.sqrt(np.mean(np.asarray(clip.audio, np.float64) ** 2)))
    return float(np.clip((20 * np.log10(max(rms, 1e-12)) + 60) / 60, 0.0, 1.0))


register_reward("sync", "joint")(world_rewards.sync)
register_reward("video_adherence", "video")(world_rewards.video_adherence)
register_reward("audio_adherence", "audio")(world_rewards.audio_adherence)
register_reward("motion", "video")(world_rewards.motion)
