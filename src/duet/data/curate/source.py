"""One input file → frames and sound on the preset's grid, or a clear reason it cannot be.

Decoding is PyAV's (through `duet.media.read_mp4`, whose timeline puts audio sample n at
n / sample_rate after the first frame). Failures are sorted by what the user can do about
them: a file that is not media at all, one without picture or sound, and one whose data
stops before its header says it should (a truncated copy) are different rows in the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from pathlib import Path

import av
import cv2
import numpy as np

from duet.config import Preset
from duet.errors import MediaError
from duet.media import read_mp4, retime_frames

# A file is truncated when it decodes to less than this fraction of its declared length
# (the header's duration; codec padding makes a complete file differ by a frame or two).
_COMPLETE = 0.9


class SourceError(Exception):
    """An input that cannot be curated: `reason` is the report's code, the message the why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Source:
    """A decoded input on the preset's grid. frames: uint8 [T, side, side, 3] at `fps`;
    audio: float32 [N] mono at `sample_rate`, sample n at n / sample_rate after frame 0."""

    frames: np.ndarray
    audio: np.ndarray
    fps: float
    sample_rate: int
    original_size: tuple[int, int]  # (height, width) before resizing
    original_fps: float
    declared_s: float | None  # the container's own duration, None when it gives none


def clip_side(preset: Preset) -> int:
    """The square side curated clips are stored at: the preset's area, snapped down to its
    size multiple (64 for `demo`, 704 for Ovi 720x720)."""
    m = preset.media
    return max(m.size_multiple, int(m.area**0.5) // m.size_multiple * m.size_multiple)


def _declared_seconds(path: Path) -> tuple[float | None, bool]:
    """(container duration in seconds or None, has an audio stream); SourceError if the
    file is not something FFmpeg can open as media with a picture."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise SourceError("no_video", f"{path.name} has no video stream")
            duration = c.duration / av.time_base if c.duration else None
            return duration, bool(c.streams.audio)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise SourceError("unreadable", f"{path.name} is not a media file FFmpeg can open "
                          f"({type(e).__name__})") from None


def _square(frames: np.ndarray, side: int) -> np.ndarray:
    """Centre crop to a square, then area-resize to side x side."""
    _, h, w, _ = frames.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = frames[:, top:top + s, left:left + s]
    if s == side:
        return np.ascontiguousarray(crop)
    return np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA) for f in crop])


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited (polyphase) resampling from `rate` to `target` Hz."""
    if rate == target:
        return audio
    from scipy.signal import resample_poly

    g = gcd(rate, target)
    return resample_poly(audio, target // g, rate // g).astype(np.float32)


def load_source(path: str | Path, preset: Preset) -> Source:
    """Decode `path` and put it on the preset's frame rate, size and sample rate."""
    path = Path(path)
    declared, has_audio = _declared_seconds(path)
    if not has_audio:
        raise SourceError("no_audio", f"{path.name} has no audio stream")
    try:
        frames, audio, fps, rate = read_mp4(path)
    except MediaError as e:
        raise SourceError("truncated", f"{path.name} fails to decode part-way ({e})") from None
    if not rate or not len(audio):
        raise SourceError("no_audio", f"{path.name} has an audio stream but no samples")
    if fps <= 0:
        raise SourceError("unreadable", f"{path.name} has no usable frame rate")
    decoded = len(frames) / fps
    if declared is not None and decoded < _COMPLETE * declared:
        raise SourceError("truncated", f"{path.name} decodes to {decoded:.2f} s of the "
                          f"{declared:.2f} s its header declares")
    m = preset.media
    height, width = frames.shape[1:3]
    frames = _square(retime_frames(frames, fps, m.fps), clip_side(preset))
    return Source(frames, resample(audio, rate, m.sample_rate), m.fps, m.sample_rate,
                  (height, width), fps, declared)
