"""Audio-visual synchrony measured from pixels and samples alone (a decoded MP4 is enough).

Visual events are found in the picture, audio onsets in the waveform, and the two are
paired one to one; each pair gives an offset ``audio time - visual time``.

Sign convention: a **positive offset means the sound is late** (heard after the event is
seen), a negative one that it is early.

* Visual events: floor contacts (``bounce``) and mouth-opening onsets (``talk``), from
  `duet.eval.visual`.
* Audio onsets: a 16 ms / 1 ms-hop STFT, log magnitude above a per-bin noise floor,
  spectral flux against the frame 8 ms earlier with a +-3-bin maximum filter (so gliding
  pitch does not count as an onset), then peaks above both a global and a local adaptive
  threshold. The 8 ms lag is half the window, which makes the peak fall on the onset
  itself (measured bias on the world: < 0.3 ms).
* Matching: the common lag is the mode of all visual-audio time differences within
  +-`max_offset`; events are then paired greedily by closeness to that lag, one to one,
  within `tolerance`. Unpaired visual events are `missed`, unpaired onsets `extra`.

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

__all__ = [
    "SyncReport",
    "audio_onsets",
    "match_events",
    "measure",
    "measure_file",
    "merge",
    "mouth_speech_sync",
    "onset_envelope",
    "speech_envelope",
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


# ------------------------------------------------------------------------------ audio

_WIN_S, _HOP_S, _LAG_S = 0.016, 0.001, 0.008
# Magnitudes more than 50 dB below the loudest bin are ignored: this keeps codec noise
# (AAC spreads quantisation noise up to a block ahead of a transient) from reading as an
# onset in bins that were silent.
_FLOOR_REL = 10 ** (-50 / 20)
# A peak must also reach 3x the mean onset strength over the 100 ms before it (and 30 ms
# after): the rise of a vowel or a pitch glide is sustained flux, an onset is a spike.
_LOCAL_FACTOR, _LOCAL_BEFORE_S, _LOCAL_AFTER_S = 3.0, 0.1, 0.03


def _stft_mag(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| [frames, bins] with frame i centred on sample i * hop. The ends are mirrored,
    not zero padded, so a clip that starts with room tone has no onset at time 0."""
    padded = np.pad(x, (n_fft // 2, n_fft // 2), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]  # [F, n_fft]
    window = np.hanning(n_fft + 2)[1:-1]
    return np.abs(np.fft.rfft(frames * window, axis=1))


def _moving_mean(x: np.ndarray, before: int, after: int) -> np.ndarray:
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(len(x))
    lo, hi = np.maximum(0, i - before), np.minimum(len(x), i + after + 1)
    return (c[hi] - c[lo]) / (hi - lo)


def onset_envelope(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """Onset strength (log spectral flux) at 1 ms steps, and its step in seconds."""
    x = np.asarray(audio, np.float64)
    n_fft = 1 << max(4, round(math.log2(_WIN_S * sample_rate)))
    hop = max(1, round(_HOP_S * sample_rate))
    lag = max(1, round(_LAG_S * sample_rate / hop))
    mag = _stft_mag(x, n_fft, hop)  # [F, bins]
    # Per-bin noise floor: steady hiss and room tone sit below it and do not flicker in log.
    floor = np.percentile(mag, 20, axis=0) + _FLOOR_REL * (mag.max() + 1e-12)
    logmag = np.log(mag + floor)
    ref = logmag.copy()  # max over +-3 bins: a harmonic drifting by a bin is not an onset
    for k in range(1, 4):
        ref[:, k:] = np.maximum(ref[:, k:], logmag[:, :-k])
        ref[:, :-k] = np.maximum(ref[:, :-k], logmag[:, k:])
    flux = np.maximum(logmag[lag:] - ref[:-lag], 0.0).sum(axis=1)
    return np.concatenate([np.zeros(lag), flux]), hop / sample_rate


def audio_onsets(audio: np.ndarray, sample_rate: int, min_gap: float = 0.06) -> np.ndarray:
    """Onset times (s) of the waveform: local maxima (+-10 ms) of `onset_envelope` above
    both a global level and 3 x the local mean; of peaks closer than `min_gap` the
    strongest is kept, or the earliest one with at least half its strength."""
    audio = np.asarray(audio)
    if audio.ndim != 1 or not len(audio):
        raise InputError(f"audio must be a non-empty mono waveform [N], got shape {audio.shape}")
    env, step = onset_envelope(audio, sample_rate)
    med, top = np.median(env), np.percentile(env, 99.5)
    if top <= med:
        return np.zeros(0)
    thr = np.maximum(med + 0.1 * (top - med),
                     _LOCAL_FACTOR * _moving_mean(env, round(_LOCAL_BEFORE_S / step),
                                                  round(_LOCAL_AFTER_S / step)))
    w = max(1, round(0.01 / step))
    padded = np.pad(env, w, constant_values=-np.inf)
    local_max = env >= np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1).max(axis=1)
    peaks = np.flatnonzero(local_max & (env >= thr))
    gap = round(min_gap / step)
    kept: list[int] = []
    for i in peaks[np.argsort(-env[peaks], kind="stable")]:  # strongest first
        if all(abs(i - j) >= gap for j in kept):
            kept.append(int(i))
    # A sound's first onset can be weaker than a change just after it (a consonant before
    # its vowel): an earlier peak within `min_gap` of at least half the strength wins.
    first = [int(min((j for j in peaks if i - gap < j <= i and env[j] >= 0.5 * env[i]),
                     default=i)) for i in kept]
    return np.sort(np.asarray(first, np.float64)) * step


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


def measure(frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int,
            kind: str | None = None) -> SyncReport:
    """Sync report of one clip given its frames (uint8 [T, H, W, 3]) and waveform [N]."""
    visual = visual_events(frames, fps, kind)
    onsets = audio_onsets(audio, sample_rate)
    pairs, _ = match_events(visual, onsets)
    offsets = [1000.0 * (onsets[j] - visual[i]) for i, j in pairs]
    return SyncReport.from_offsets(offsets, len(visual) - len(pairs), len(onsets) - len(pairs),
                                   len(visual), len(onsets), 1000.0 / fps)


def measure_file(path: str | Path, kind: str | None = None) -> SyncReport:
    """`measure` on a decoded MP4 (timeline from `duet.media.read_mp4`)."""
    frames, audio, fps, sample_rate = read_mp4(path)
    if not sample_rate:
        raise InputError(f"{path} has no audio track; sync needs sound")
    return measure(frames, audio, fps, sample_rate, kind)


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
