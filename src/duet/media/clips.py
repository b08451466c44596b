"""Clips by extension: which container an output path names (`CLIP_FORMATS`), checked
before a long run starts; `write_clip` dispatches to the MP4 or WAV writer; `check_length`
refuses an over-long input from its header alone."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from duet.atomic import check_writable
from duet.errors import MediaError
from duet.media.checks import input_file
from duet.media.mp4 import write_mp4
from duet.media.wav import write_wav

#: What `write_clip` writes for each output extension: FFmpeg's container name, or "wav"
#: for the sound alone. AVI is left out: it cannot signal the AAC priming, so its sound
#: plays late (by 22 ms at 16 kHz, measured).
CLIP_FORMATS: dict[str, str] = {".mp4": "mp4", ".mkv": "matroska", ".wav": "wav"}
# A header's length may exceed the samples by the codec's padding (an AAC frame, a last
# video frame); `check_length` allows this much, and the pipeline checks the exact length.
_LENGTH_SLACK_S = 1.0


def _clip_format(path: str | os.PathLike[str]) -> str:
    fmt = CLIP_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        suffix = Path(path).suffix or "no extension"
        raise MediaError(f"cannot write a clip as {Path(path).name!r} ({suffix}); use one of "
                         ".mp4 or .mkv (video + sound), or .wav (the sound alone).")
    return fmt


def check_clip_path(path: str | os.PathLike[str]) -> str:
    """The container `write_clip` writes for `path` (from its extension), after checking
    that it can be written (`duet.atomic.check_writable`), so a long run fails in a second on
    a bad output path instead of at the end; MediaError otherwise."""
    if Path(path).is_dir():
        raise MediaError(f"{path} is a folder; pass a file path such as "
                         f"{Path(path) / 'clip.mp4'}.")
    check_writable(path, MediaError)  # a device or a FIFO is named as such, whatever its name
    return _clip_format(path)


def check_length(path: str | os.PathLike[str], max_seconds: float) -> None:
    """Refuse a media file longer than `max_seconds`, from its header alone (nothing is
    decoded), so an over-long input is refused before any work; a file whose header states
    no length passes (the pipeline checks the decoded frames or samples)."""
    src = input_file(path, "a media file")
    try:
        with av.open(str(src), mode="r") as container:
            seconds = container.duration / av.time_base if container.duration else None
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot open {src} as a media file: {exc}") from exc
    if seconds is not None and seconds > max_seconds + _LENGTH_SLACK_S:
        raise MediaError(f"{src} is {seconds:.1f} s long; at most {max_seconds:g} s can be used: "
                         f"trim it first (e.g. ffmpeg -i {src.name} -t {max_seconds:g} "
                         f"short{src.suffix}).")


def write_clip(path: str | os.PathLike[str], video: Any, audio: Any, fps: float | Fraction,
               sample_rate: int) -> Path:
    """Write a clip in the container its extension names (`CLIP_FORMATS`): MP4 or Matroska
    with video and sound (`write_mp4`), or WAV with the sound alone (`write_wav`)."""
    fmt = _clip_format(path)
    if fmt == "wav":
        return write_wav(path, audio, sample_rate)
    return write_mp4(path, video, audio, fps, sample_rate, container=fmt)
