"""A long clip assembled from its chunks (see `chunks.py`).

Each chunk after the first repeats the previous chunk's last frames and sound (its clean
prefix), decoded a second time. The two versions differ a little (a codec round trip, and
the chunk's own decoding of the edges), so the overlap is crossfaded instead of cut: the
picture linearly frame by frame, the sound with a raised-cosine ramp whose slope is zero at
both ends, so that neither a frame step nor a click appears where one chunk hands over.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def frame_ramp(n: int) -> Tensor:
    """Weights of the new chunk over `n` overlapping frames, (1..n)/(n+1): neither copy is
    dropped outright at either end."""
    return torch.arange(1, n + 1, dtype=torch.float32) / (n + 1)


def sample_ramp(n: int) -> Tensor:
    """Weights of the new chunk over `n` overlapping samples: a raised cosine from 0 to 1
    (amplitudes sum to one: the two copies decode the same latents, so they are in phase)."""
    x = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return (0.5 - 0.5 * torch.cos(math.pi * x)).float()


class ClipBuffer:
    """The whole clip's frames (uint8 [T, H, W, 3]) and waveform (float32 [N]); chunks are
    written in order, each blended into the tail of the one before."""

    def __init__(self, frames: int, height: int, width: int, samples: int) -> None:
        self.video = torch.zeros(frames, height, width, 3, dtype=torch.uint8)
        self.audio = torch.zeros(samples, dtype=torch.float32)

    def add_video(self, start: int, pixels: Tensor, overlap: int) -> None:
        """pixels float [T, H, W, 3] in [-1, 1] from frame `start`; the first `overlap` frames
        are blended with what is there."""
        x = (pixels.float().clamp(-1, 1) + 1) * 127.5  # [T, H, W, 3] in [0, 255]
        if overlap:
            w = frame_ramp(overlap)[:, None, None, None]
            old = self.video[start:start + overlap].float()
            x[:overlap] = (1 - w) * old + w * x[:overlap]
        end = min(start + x.shape[0], self.video.shape[0])
        self.video[start:end] = x[:end - start].round().to(torch.uint8)

    def add_audio(self, start: int, wave: Tensor, overlap: int) -> None:
        """wave float [N] from sample `start`; its first `overlap` samples are crossfaded."""
        x = wave.float().clone()
        if overlap:
            w = sample_ramp(overlap)
            x[:overlap] = (1 - w) * self.audio[start:start + overlap] + w * x[:overlap]
        end = min(start + x.shape[0], self.audio.shape[0])
        self.audio[start:end] = x[:end - start]
