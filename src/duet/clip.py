"""`Clip`: what the pipeline returns, and how it is written to a file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from duet.media import write_clip


@dataclass
class Clip:
    """A generated clip: frames uint8 [T, H, W, 3] and a mono waveform float32 [N] in [-1, 1]."""

    video: Tensor
    audio: Tensor
    fps: float
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.video.shape[0] / self.fps

    def save(self, path: str | os.PathLike) -> Path:
        """Write the clip atomically in the container the extension names: .mp4 or .mkv
        (H.264 + AAC), .wav (the sound alone); see `duet.media.write_clip`."""
        return write_clip(path, self.video.numpy(), self.audio.numpy(), self.fps, self.sample_rate)
