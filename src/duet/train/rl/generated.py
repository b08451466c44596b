"""`GeneratedClip`: what every reward sees, in a module of its own so that the registry
(`rewards`) and the rewards it registers (`world_rewards`) both import it, not each other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class GeneratedClip:
    """What a reward sees: one decoded rollout and its prompt."""

    frames: np.ndarray  # uint8 [T, H, W, 3]
    audio: np.ndarray  # float32 [N], mono, in [-1, 1]
    fps: float
    sample_rate: int
    prompt: str
