"""Audio-visual synchrony measured from pixels and samples alone (a decoded MP4 is enough).

Visual events are found in the picture, audio onsets in the waveform, and the two are
paired one to one; each pair gives an offset ``audio time - visual time``.

Sign convention: a **positive offset means the sound is late** (heard after the event is
seen), a negative one that it is early.

* Visual events: floor contacts (``bounce``) and mouth-opening onsets (``talk``), from
  `duet.eval.visual`.
* Audio onsets (`duet.media.onsets`): a 16 ms / 1 ms-hop STFT, log magnitude above a per-bin noise floor,
  spectral flux against the frame 8 ms earlier with a +-3-bin maximum filter (so gliding
  pitch does not count as an onset), then peaks above both a global and a local adaptive
  threshold. The 8 ms lag is half the window, which makes the peak fall on the onset
  itself (measured bias on the world: < 0.3 ms).
* Matching: the common lag is the mode of all visual-audio time differences within
  +-`max_offset`; events are then paired greedily by closeness to that lag, one to one,
  within `tolerance`. Unpaired visual events are `missed`, unpaired onsets `extra`.
* Chance (`chance_report`): the same clip with its onsets moved around it, so that picture
  and sound no longer belong together; a clip's figures mean something only above these.

`duet.eval.adherence` checks a clip against its caption with the same rulers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duet.errors import InputError
from duet.eval.visual import mouth_area, visual_events
from duet.media import read_mp4
from duet.media.onsets import audio_onsets, onset_envelope

__all__ = [
    "SyncReport",
    "CHANCE_SHIFTS",
    "ClipEvents",
    "audio_onsets",
    "chance_report",
    "clip_events",
    "file_events",
    "match_events",
    "measure",
    "measure_file",
    "merge",
    "mouth_speech_sync",
    "onset_envelope",
    "speech_envelope",
    "sync_report",
]


@dataclass(frozen=True)
class SyncReport:
    """Offsets (ms, audio minus video; positive = audio late) of the paired events.

    The fractions and medians are over the paired events; events that found no partner
    are counted in `missed` (visual without audio) and `extra` (audio without visual), so
    a report with few pairs should be read together with those counts. With no pairs the
    medians are nan and the fractions 0.
    """

    offsets_ms: tuple[float, ...]
    median_offset_ms: float
    median_abs_offset_ms: float
    within_1_frame: float  # fraction of pairs with |offset| <= one frame (41.7 ms at 24 fps)
    within_2_frames: float
    missed: int
    extra: int
    n_visual: int
    n_audio: int
    frame_ms: float = 1000.0 / 24.0

    @classmethod
    def from_offsets(cls, offsets_ms: Iterable[float], missed: int, extra: int, n_visual: int,
                     n_audio: int, frame_ms: float) -> SyncReport:
        off = np.asarray(tuple(offsets_ms), np.float64)
        n = max(len(off), 1)
        return cls(
            offsets_ms=tuple(float(o) for o in off),
            median_offset_ms=float(np.median(off)) if len(off) else math.nan,
            median_abs_offset_ms=float(np.median(np.abs(off))) if len(off) else math.nan,
            within_1_frame=float(np.sum(np.abs(off) <= frame_ms + 1e-9) / n),
            within_2_frames=float(np.sum(np.abs(off) <= 2 * frame_ms + 1e-9) / n),
            missed=int(missed), extra=int(extra), n_visual=int(n_visual), n_audio=int(n_audio),
            frame_ms=float(frame_ms),
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values: the medians of a report without pairs (nan) become
        None, since NaN is not JSON (`json.dumps` would write a bare NaN)."""
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in self.__dict__.items()}

    def table_cells(self) -> str:
        """The markdown cells every sync table shares: pairs | median offset | median |offset| |
        within 1 frame | within 2 frames | missed | extra."""
        return (f"{len(self.offsets_ms)} | {self.median_offset_ms:+.1f} | {self.median_abs_offset_ms:.1f} | "
                f"{self.within_1_frame:.0%} | {self.within_2_frames:.0%} | {self.missed} | {self.extra}")


def merge(reports: Iterable[SyncReport]) -> SyncReport:
    """Pool several reports (e.g. one per clip) as if they were one long clip."""
    reports = list(reports)
    if not reports:
        raise InputError("merge() needs at least one SyncReport")
    frame_ms = {round(r.frame_ms, 6) for r in reports}
    if len(frame_ms) > 1:
        raise InputError(f"cannot merge reports measured at different frame rates: {frame_ms} ms")
    return SyncReport.from_offsets(
        [o for r in reports for o in r.offsets_ms],
        sum(r.missed for r in reports), sum(r.extra for r in reports),
        sum(r.n_visual for r in reports), sum(r.n_audio for r in reports), reports[0].frame_ms)


# ------------------------------------------------------------------------------ matching


def match_events(visual: np.ndarray, audio: np.ndarray, max_offset: float = 0.25,
                 tolerance: float = 0.1) -> tuple[list[tuple[int, int]], float]:
    """One-to-one pairs (visual index, audio index) and the common lag (s).

    The lag is the densest 40 ms cluster of all differences audio - visual within
    +-max_offset (a constant shift then cannot pair each event with its neighbour's
    sound); pairs are taken greedily by closeness to the lag, within `tolerance` of it.
    """
    visual, audio = np.asarray(visual, np.float64), np.asarray(audio, np.float64)
    if not len(visual) or not len(audio):
        return [], 0.0
    diff = audio[None, :] - visual[:, None]  # [V, A]
    cand = np.sort(diff[np.abs(diff) <= max_offset])
    lag = 0.0
    if len(cand):
        counts = np.searchsorted(cand, cand + 0.02, "right") - np.searchsorted(cand, cand - 0.02)
        best = cand[counts == counts.max()]
        centre = best[np.argmin(np.abs(best))]
        lag = float(np.median(cand[np.abs(cand - centre) <= 0.02]))
    order = np.argsort(np.abs(diff - lag), axis=None)
    used_v, used_a, pairs = set(), set(), []
    for flat in order:
        i, j = divmod(int(flat), len(audio))
        if abs(diff[i, j] - lag) > tolerance:
            break
        if i not in used_v and j not in used_a:
            used_v.add(i)
            used_a.add(j)
            pairs.append((i, j))
    return sorted(pairs), lag


@dataclass(frozen=True)
class ClipEvents:
    """What the ruler reads from one clip: visual event and audio onset times (s), the
    clip's duration (s) and its frame rate."""

    visual: np.ndarray
    onsets: np.ndarray
    duration: float
    fps: float


def clip_events(frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int,
                kind: str | None = None) -> ClipEvents:
    """The events of one clip given its frames (uint8 [T, H, W, 3]) and waveform [N]."""
    return ClipEvents(np.asarray(visual_events(frames, fps, kind), np.float64),
                      np.asarray(audio_onsets(audio, sample_rate), np.float64),
                      max(len(frames) / fps, len(audio) / sample_rate), float(fps))


def file_events(path: str | Path, kind: str | None = None) -> ClipEvents:
    """`clip_events` of a decoded MP4 (timeline from `duet.media.read_mp4`)."""
    frames, audio, fps, sample_rate = read_mp4(path)
    if not sample_rate:
        raise InputError(f"{path} has no audio track; sync needs sound")
    return clip_events(frames, audio, fps, sample_rate, kind)


def sync_report(events: ClipEvents, onsets: np.ndarray | None = None) -> SyncReport:
    """Pair the clip's visual events with its onsets (or with `onsets` instead)."""
    onsets = events.onsets if onsets is None else onsets
    pairs, _ = match_events(events.visual, onsets)
    offsets = [1000.0 * (onsets[j] - events.visual[i]) for i, j in pairs]
    return SyncReport.from_offsets(offsets, len(events.visual) - len(pairs),
                                   len(onsets) - len(pairs), len(events.visual), len(onsets),
                                   1000.0 / events.fps)


CHANCE_SHIFTS = tuple(k / 7 for k in range(1, 7))  # fractions of the clip's duration


def chance_report(events: ClipEvents, shifts: Iterable[float] = CHANCE_SHIFTS) -> SyncReport:
    """What the ruler reads when picture and sound are unrelated but keep their events: the
    clip's onsets moved around the clip by each fraction of its duration in `shifts`
    (circularly, so none is lost), paired with its visual events, pooled.

    The matcher takes the densest lag within +-250 ms and pairs within +-100 ms of it, so a
    clip with many onsets finds partners by chance, and most of them within two frames:
    a sync figure means something only above this one. Every report in the pool has the same
    counts of events, so pairs, missed and extra are summed over the shifts (divide by
    `len(shifts)` for a per-clip figure).
    """
    shifts = tuple(shifts)
    if not shifts:
        raise InputError("chance_report needs at least one shift (a fraction of the clip)")
    return merge(sync_report(events, np.sort((events.onsets + f * events.duration) % events.duration))
                 for f in shifts)


def measure(frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int,
            kind: str | None = None) -> SyncReport:
    """Sync report of one clip given its frames (uint8 [T, H, W, 3]) and waveform [N]."""
    return sync_report(clip_events(frames, audio, fps, sample_rate, kind))


def measure_file(path: str | Path, kind: str | None = None) -> SyncReport:
    """`measure` on a decoded MP4 (timeline from `duet.media.read_mp4`)."""
    return sync_report(file_events(path, kind))


def speech_envelope(audio: np.ndarray, sample_rate: int, fps: float, frames: int) -> np.ndarray:
    """RMS loudness of the waveform over each video frame's span, centred on the frame's
    instant k / fps [frames]."""
    x = np.asarray(audio, np.float64)
    edges = np.round((np.arange(frames + 1) - 0.5) * sample_rate / fps).astype(int).clip(0, len(x))
    return np.array([np.sqrt(np.mean(x[a:b] ** 2)) if b > a else 0.0
                     for a, b in zip(edges[:-1], edges[1:])])


def mouth_speech_sync(frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int,
                      max_lag: int = 4) -> dict[str, float]:
    """How the face's mouth follows its voice in a talk clip: the Pearson correlation of the
    mouth's opening with the speech's loudness per frame, and the lag (frames, positive: the
    sound comes late) within +-max_lag at which that correlation peaks. A mouth that opens on
    its syllables correlates highly at lag 0; a flickering or frozen mouth does not."""
    area = mouth_area(frames)
    env = speech_envelope(audio, sample_rate, fps, len(area))

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        if len(a) < 3 or np.ptp(a) < 1e-6 * (np.abs(a).max() + 1e-12) or np.ptp(b) == 0:
            return 0.0  # a frozen mouth (or silence) follows nothing
        return float(np.corrcoef(a, b)[0, 1])

    n = len(area)
    by_lag = {lag: corr(area[max(0, -lag):n - max(0, lag)], env[max(0, lag):n - max(0, -lag)])
              for lag in range(-max_lag, max_lag + 1)}
    best = max(by_lag, key=lambda k: by_lag[k])
    return {"correlation": by_lag[0], "best_lag": float(best), "best_correlation": by_lag[best]}
