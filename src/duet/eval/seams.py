"""Are the seams of a chunked clip visible or audible? Measured against the clip itself.

A seam is the span where one chunk hands over to the next (`duet.chunks`: the overlap that
`duet.stitch` crossfades). A seam passes when it looks and sounds like the rest of the clip:

- picture: the largest frame-to-frame change across the seam (mean absolute difference of
  consecutive frames, 0..255) is within `VIDEO_LIMIT` times the median change inside the
  chunks. A seam spans several transitions and the largest of several is above the median
  even where there is no seam, so each report also gives `video_ordinary`: the same ratio
  for stretches of as many transitions inside the chunks;
- sound: the rest of the clip is cut into windows as long as a seam; the seam's largest
  sample-to-sample jump (a click) and largest step of the short-time level (10 ms RMS in dB)
  must not exceed the largest of the other windows, and its mean level must lie within
  theirs (a crossfade of out-of-phase copies would dip). The range is the clip's own, so a
  percussive clip tolerates more than a steady tone does; a margin (x1.25 on jumps and
  steps, 1 dB on the level) keeps a noise-like clip's seams from failing by chance when
  they hold its most extreme window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duet.chunks import ChunkPlan, plan_chunks
from duet.config import MediaConfig
from duet.errors import InputError

VIDEO_LIMIT = 1.5  # seam change / median in-chunk change
_JUMP_MARGIN, _LEVEL_MARGIN_DB = 1.25, 1.0  # on the other windows' range (module docstring)
_LEVEL_S = 0.010  # short-time level frames
_MARGIN_S = 0.010  # the audio window reaches this far past each end of the overlap
_FLOOR_DB = -80.0


@dataclass(frozen=True)
class Seam:
    """One seam's measurements; the limits are the clip's own ordinary values."""

    time: float  # seconds, start of the overlap
    video_ratio: float  # largest change across the seam / median change inside chunks
    video_ordinary: float  # the same for stretches of as many frames inside chunks (median)
    click: float  # largest |x[n+1] - x[n]| in the seam window
    click_limit: float
    level_step_db: float  # largest step between consecutive 10 ms levels
    level_step_limit_db: float
    level_db: float  # mean 10 ms level in the seam window
    level_range_db: tuple[float, float]

    @property
    def video_ok(self) -> bool:
        return self.video_ratio <= VIDEO_LIMIT

    @property
    def audio_ok(self) -> bool:
        lo, hi = self.level_range_db
        return (self.click <= self.click_limit and self.level_step_db <= self.level_step_limit_db
                and lo <= self.level_db <= hi)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "video_ok": self.video_ok, "audio_ok": self.audio_ok}


def plan_seams(plan: ChunkPlan, fps: float, hop: int,
               sample_rate: int) -> list[tuple[float, float]]:
    """(start, end) in seconds of each hand-over: where the next chunk's own picture and
    sound fade in (the crossfaded part of the overlap; before it, the clip is still the
    previous chunk's own), video and audio spans joined."""
    spans = []
    for c in plan.chunks[1:]:
        a0 = (c.audio_start + c.audio_held) * hop / sample_rate
        a1 = (c.audio_start + c.audio_overlap) * hop / sample_rate
        spans.append((min((c.start + c.held) / fps, a0), max((c.start + c.overlap) / fps, a1)))
    return spans


def frame_changes(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference of consecutive frames, [T-1], on the 0..255 scale."""
    x = frames.astype(np.float32)
    return np.abs(np.diff(x, axis=0)).reshape(len(x) - 1, -1).mean(axis=1)


def _levels_db(x: np.ndarray, n: int) -> np.ndarray:
    frames = x[: len(x) // n * n].reshape(-1, n)
    return np.maximum(10 * np.log10(np.mean(frames**2, axis=1) + 1e-12), _FLOOR_DB)


def _window_stats(x: np.ndarray, level_n: int) -> tuple[float, float, float]:
    """(largest sample jump, largest level step, mean level) of one window."""
    levels = _levels_db(x, level_n)
    step = float(np.abs(np.diff(levels)).max()) if len(levels) > 1 else 0.0
    return float(np.abs(np.diff(x)).max()), step, float(levels.mean())


def measure_seams(frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int,
                  seams: list[tuple[float, float]]) -> list[Seam]:
    """Per-seam measurements of a clip: frames uint8 [T, H, W, 3], audio float [N]."""
    frames, audio = np.asarray(frames), np.asarray(audio, np.float64)
    if not seams:
        raise InputError("a clip of one chunk has no seams to measure")
    change = frame_changes(frames)  # change[t]: frame t -> t + 1
    in_seam = np.zeros(len(change), bool)
    spans_f = []
    for t0, t1 in seams:  # transitions from the frame before the overlap to the one after it
        a, b = max(0, int(np.floor(t0 * fps)) - 1), min(len(change), int(np.ceil(t1 * fps)) + 1)
        in_seam[a:b] = True
        spans_f.append((a, b))
    inside = float(np.median(change[~in_seam]))
    # what an ordinary stretch scores: the largest change over as many transitions as the
    # widest seam, in stretches that touch no seam (the picture's own flicker sets this)
    n = max(b - a for a, b in spans_f)
    stretches = [change[i:i + n].max() for i in range(0, len(change) - n + 1, n)
                 if not in_seam[i:i + n].any()]
    ordinary_ratio = float(np.median(stretches) / max(inside, 1e-9)) if stretches else float("nan")
    level_n = max(1, round(_LEVEL_S * sample_rate))
    longest = max(t1 - t0 for t0, t1 in seams) + 2 * _MARGIN_S
    width = max(round(longest * sample_rate), 4 * level_n)
    windows = [(round((t0 - _MARGIN_S) * sample_rate), round((t1 + _MARGIN_S) * sample_rate))
               for t0, t1 in seams]
    ordinary = [_window_stats(audio[s:s + width], level_n)
                for s in range(0, len(audio) - width + 1, width)
                if not any(s < b and a < s + width for a, b in windows)]
    if len(ordinary) < 4:
        raise InputError("the clip is too short next to its seams to tell their ordinary range")
    jumps, steps, levels = (np.array(v) for v in zip(*ordinary))
    out = []
    for (t0, _), (fa, fb), (a, b) in zip(seams, spans_f, windows):
        click, step, level = _window_stats(audio[max(0, a):b], level_n)
        out.append(Seam(time=t0, video_ratio=float(change[fa:fb].max() / max(inside, 1e-9)),
                        video_ordinary=ordinary_ratio,
                        click=click, click_limit=_JUMP_MARGIN * float(jumps.max()),
                        level_step_db=step, level_step_limit_db=_JUMP_MARGIN * float(steps.max()),
                        level_db=level, level_range_db=(float(levels.min()) - _LEVEL_MARGIN_DB,
                                                        float(levels.max()) + _LEVEL_MARGIN_DB)))
    return out


def measure_file(path: str | Path, media: MediaConfig, overlap: int | None = None) -> list[Seam]:
    """`measure_seams` on an MP4 made in chunks by a model with this `media` (its native
    length and rates place the seams; `overlap` as given to generate, default the same)."""
    from duet.media import read_mp4

    frames, audio, fps, sample_rate = read_mp4(path)
    plan = plan_chunks(len(frames), media, "", overlap=overlap)
    seams = plan_seams(plan, fps, round(media.audio_hop * sample_rate / media.sample_rate),
                       sample_rate)
    return measure_seams(frames, audio, fps, sample_rate, seams)
