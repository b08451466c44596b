"""Audio-visual synchrony measured from pixels and samples alone (a decoded MP4 is enough).

Visual events are found in the picture, audio onsets in the waveform, and the two are
paired one to one; each pair gives an offset ``audio time - visual time``.

Sign convention: a **positive offset means the sound is late** (heard after the event is
seen), a negative one that it is early.

* Visual events, ``bounce`` clips: balls are segmented by colour against the per-row
  background, their vertical centroid is tracked with sub-pixel precision (coverage-weighted,
  so anti-aliased edges count), a floor contact shows as a sharp negative second difference
  of the height, and its instant is where the parabola fitted to the frames before the
  contact meets the one fitted to the frames after it (sub-frame precision).
* Visual events, ``talk`` clips: the dark area inside the mouth region of the face; each
  opening is a rising ramp, extrapolated back to the closed level to time its start.
* Audio onsets: a 16 ms / 1 ms-hop STFT, log magnitude above a per-bin noise floor,
  spectral flux against the frame 8 ms earlier with a +-3-bin maximum filter (so gliding
  pitch does not count as an onset), then peaks above both a global and a local adaptive
  threshold. The 8 ms lag is half the window, which makes the peak fall on the onset
  itself (measured bias on the world: < 0.3 ms).
* Matching: the common lag is the mode of all visual-audio time differences within
  +-`max_offset`; events are then paired greedily by closeness to that lag, one to one,
  within `tolerance`. Unpaired visual events are `missed`, unpaired onsets `extra`.

`prompt_adherence` checks a world caption against the clip: the ball colours seen, and each
ball's material as heard (spectral centroid and decay of the sounds at its impacts).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duet.data.world import MATERIALS, PALETTE, WORDS
from duet.errors import InputError
from duet.media import read_mp4
from duet.text.prompt import parse_prompt

__all__ = [
    "SyncReport",
    "audio_onsets",
    "ball_tracks",
    "detect_kind",
    "impact_material",
    "match_events",
    "measure",
    "measure_file",
    "merge",
    "onset_envelope",
    "prompt_adherence",
    "visual_events",
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


# ------------------------------------------------------------------------------ video


def _frames_float(frames: Any) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise InputError(f"frames must be uint8 [T, H, W, 3], got {arr.dtype} {arr.shape}")
    if len(arr) < 5:
        raise InputError(f"need at least 5 frames to find events, got {len(arr)}")
    return arr.astype(np.float32)


def detect_kind(frames: np.ndarray) -> str:
    """'talk' when a large static shape (a face) covers the middle, else 'bounce'."""
    f = _frames_float(frames)
    still = np.median(f[:: max(1, len(f) // 24)], axis=0)  # [H, W, 3]
    h = still.shape[0]
    bg = np.median(still[:2].reshape(-1, 3), axis=0)
    differs = np.linalg.norm(still[: int(0.8 * h)] - bg, axis=-1) > 40
    return "talk" if differs.mean() > 0.15 else "bounce"


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """4-neighbour dilation over the last two axes."""
    for _ in range(steps):
        grown = mask.copy()
        grown[..., 1:, :] |= mask[..., :-1, :]
        grown[..., :-1, :] |= mask[..., 1:, :]
        grown[..., :, 1:] |= mask[..., :, :-1]
        grown[..., :, :-1] |= mask[..., :, 1:]
        mask = grown
    return mask


def _palette_labels(f: np.ndarray, bg_rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per pixel: index into the palette, or -1 for background / unnamed colours. A pixel
    is modelled as background + a * (colour - background), so the anti-aliased edge of a
    yellow ball is a faint yellow and not a dim orange; only pixels that are mostly
    colour (a >= 0.5) are named."""
    names = list(PALETTE)
    pal = np.asarray([PALETTE[n] for n in names], np.float32)  # [K, 3]
    rel = f - bg_rows[None, :, None, :]  # [T, H, W, 3]
    labels = np.full(f.shape[:3], -1)
    idx = np.nonzero(np.sqrt((rel**2).sum(-1)) > 50)  # only pixels unlike the background
    rel = rel[idx]  # [N, 3]
    ref = pal[None, :, :] - bg_rows[idx[1]][:, None, :]  # [N, K, 3]
    a = np.clip(np.einsum("nc,nkc->nk", rel, ref) / (ref**2).sum(-1), 0.0, 1.1)  # [N, K]
    dist = np.linalg.norm(rel[:, None, :] - a[..., None] * ref, axis=-1)  # [N, K]
    best = dist.argmin(-1)
    a_best = a[np.arange(len(best)), best]
    labels[idx] = np.where((dist.min(-1) < 40) & (a_best >= 0.5), best, -1)
    return labels, names


def _box_count(mask: np.ndarray, radius: int) -> np.ndarray:
    """Number of set pixels in the (2 radius + 1)^2 box around each pixel, [T, H, W]."""
    c = np.pad(mask.astype(np.int32), ((0, 0), (radius + 1, radius), (radius + 1, radius)))
    c = c.cumsum(1).cumsum(2)
    n = 2 * radius + 1
    return c[:, n:, n:] - c[:, :-n, n:] - c[:, n:, :-n] + c[:, :-n, :-n]


def ball_tracks(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Vertical centroid (pixels, nan where absent or cut by the frame edge) of each ball,
    keyed by palette colour name."""
    f = _frames_float(frames)
    t_len, h, _, _ = f.shape
    bg_rows = np.median(f.transpose(1, 0, 2, 3).reshape(h, -1, 3), axis=1)  # [H, 3]
    label, names = _palette_labels(f, bg_rows)
    # Each pixel belongs to the colour named most often around it, so the few pixels of an
    # orange ball that a codec turns yellow do not drag a yellow ball's track over there.
    votes = np.stack([_box_count(label == k, 3) for k in range(len(names))])  # [K, T, H, W]
    owner = np.where(votes.max(0) > 0, votes.argmax(0), -1)
    rows = np.arange(h, dtype=np.float32)[None, :, None] + 0.5
    tracks: dict[str, np.ndarray] = {}
    for k, name in enumerate(names):
        core = (label == k) & (owner == k)  # [T, H, W]
        if np.sum(core.sum(axis=(1, 2)) >= 3) < 0.25 * t_len:
            continue  # not a ball: absent, or a few stray pixels
        colour = np.median(f[core], axis=0)  # as decoded
        region = _dilate(core, 2) & (owner == k)
        ref = colour - bg_rows  # [H, 3]
        alpha = ((f - bg_rows[None, :, None]) * ref[None, :, None]).sum(-1)
        alpha = np.clip(alpha / (ref**2).sum(-1)[None, :, None], 0.0, 1.0) * region
        mass = alpha.sum(axis=(1, 2))
        y = (alpha * rows).sum(axis=(1, 2)) / np.maximum(mass, 1e-9)
        full = np.median(mass[mass > 0]) if np.any(mass > 0) else 0.0
        y[mass < 0.8 * full] = np.nan  # entering the frame, or gone
        tracks[name] = y
    return tracks


def _fit_at(t: np.ndarray, y: np.ndarray, t0: float) -> np.ndarray:
    """Polynomial (degree <= 2) through the points, centred at t0."""
    return np.polyfit(t - t0, y, min(2, len(t) - 1))


def _contact_times(y: np.ndarray, fps: float, height: int) -> list[float]:
    """Floor contacts of one ball from its per-frame height (y down)."""
    d2 = np.full(len(y), np.nan)
    d2[1:-1] = y[2:] - 2 * y[1:-1] + y[:-2]
    kink = np.nan_to_num(d2, nan=0.0) < -0.005 * height
    groups: list[tuple[int, int]] = []
    for j in np.flatnonzero(kink):
        if groups and j == groups[-1][1] + 1:
            groups[-1] = (groups[-1][0], j)
        else:
            groups.append((j, j))
    times = np.arange(len(y)) / fps
    out: list[float] = []
    for g, (a, b) in enumerate(groups):
        lo = groups[g - 1][0] + 1 if g else 0  # frames after the previous contact
        hi = groups[g + 1][1] - 1 if g + 1 < len(groups) else len(y) - 1
        before = [i for i in range(max(lo, b - 3), b) if np.isfinite(y[i])]
        after = [i for i in range(a + 1, min(hi, a + 3) + 1) if np.isfinite(y[i])]
        t_lo, t_hi = times[max(b - 1, 0)], times[min(a + 1, len(y) - 1)]  # contact in here
        centre = 0.5 * (t_lo + t_hi)
        if len(before) < 2 or len(after) < 2:
            out.append(centre)
            continue
        pb = _fit_at(times[before], y[before], centre)
        pa = _fit_at(times[after], y[after], centre)
        n = max(len(pb), len(pa))
        diff = np.pad(pb, (n - len(pb), 0)) - np.pad(pa, (n - len(pa), 0))
        roots = np.roots(np.trim_zeros(diff, "f")) if np.any(diff) else np.zeros(0)
        roots = roots[np.isreal(roots)].real + centre
        slack = 0.25 / fps
        roots = roots[(roots >= t_lo - slack) & (roots <= t_hi + slack)]
        out.append(float(roots[np.argmin(np.abs(roots - centre))]) if len(roots) else centre)
    return out


def _face_mouth_area(frames: np.ndarray) -> np.ndarray:
    """Dark area (pixel units, coverage-weighted) in the mouth region of a centred face."""
    f = _frames_float(frames)
    still = np.median(f[:: max(1, len(f) // 24)], axis=0)
    bg = np.median(still[:2].reshape(-1, 3), axis=0)
    head = np.linalg.norm(still - bg, axis=-1) > 40
    if head.sum() < 20:
        return np.zeros(len(f))
    ys, xs = np.nonzero(head)
    cy, cx = 0.5 * (ys.min() + ys.max() + 1), 0.5 * (xs.min() + xs.max() + 1)
    radius = 0.25 * (ys.max() - ys.min() + xs.max() - xs.min() + 2)
    r0, r1 = round(cy + 0.12 * radius), round(cy + 0.8 * radius)
    c0, c1 = round(cx - 0.5 * radius), round(cx + 0.5 * radius)
    luma = f @ np.asarray([0.299, 0.587, 0.114], np.float32)  # [T, H, W]
    skin = np.median(luma[:, r0:r1, c0:c1])
    dark = np.clip((skin - luma[:, r0:r1, c0:c1]) / max(skin, 1.0), 0.0, 1.0)
    return dark.sum(axis=(1, 2))


def _opening_onsets(area: np.ndarray, fps: float) -> list[float]:
    """Starts of the mouth openings: each rise from a local minimum to a local maximum is a
    ramp; a line through its interior frames is extrapolated back to the closed level."""
    base = np.percentile(area, 5)
    span = np.percentile(area, 99) - base
    if span <= 1e-6 * max(1.0, abs(base)) or span < 0.5:
        return []
    u = (area - base) / span
    times = np.arange(len(u)) / fps
    rises: list[tuple[int, int]] = []  # (local min, local max)
    k = 1
    while k < len(u):
        if u[k] > u[k - 1]:
            start = k - 1
            while k + 1 < len(u) and u[k + 1] >= u[k]:
                k += 1
            if u[k] >= 0.2 and u[k] - u[start] >= 0.15:
                # The last frame still at the minimum's level (codec noise makes tiny
                # rises there), so the opening starts after it.
                rises.append((max(j for j in range(start, k) if u[j] <= u[start] + 0.03), k))
        k += 1
    fits: list[tuple[float, float] | None] = []
    for start, peak in rises:
        ramp = [i for i in range(start + 1, peak + 1) if 0.03 < u[i] < 0.9 * u[peak]]
        if len(ramp) >= 2:
            slope, icpt = np.polyfit(times[ramp], u[ramp], 1)
            fits.append((-icpt / slope, u[peak] / slope) if slope > 0 else None)
        else:
            fits.append(None)
    ramp_s = [f[1] for f in fits if f is not None]
    typical = float(np.median(ramp_s)) if ramp_s else 1.0 / fps
    out: list[float] = []
    for (start, peak), fit in zip(rises, fits, strict=True):
        if fit is not None:
            onset = fit[0]
        else:  # one frame on the ramp: use the typical ramp length of this face
            first = next((i for i in range(start + 1, peak + 1) if u[i] > 0.03), peak)
            onset = times[first] - u[first] / u[peak] * typical
        out.append(float(np.clip(onset, times[start], times[start + 1])))
    return out


def visual_events(frames: np.ndarray, fps: float, kind: str | None = None) -> np.ndarray:
    """Times (s) of the visual events of a world-like clip: floor contacts of every ball
    (``bounce``) or mouth-opening onsets (``talk``); `kind=None` detects it."""
    kind = kind or detect_kind(frames)
    if kind == "bounce":
        height = np.asarray(frames).shape[1]
        times = [t for y in ball_tracks(frames).values() for t in _contact_times(y, fps, height)]
    elif kind == "talk":
        times = _opening_onsets(_face_mouth_area(frames), fps)
    else:
        raise InputError(f"unknown kind {kind!r}; use 'bounce', 'talk' or None")
    return np.sort(np.asarray(times, np.float64))


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
    area = _face_mouth_area(frames)
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


# ------------------------------------------------------------------------------ adherence

_BALL = re.compile(r"\b(small|large) (" + "|".join(PALETTE) + r") (rubber|metal|glass|wooden) ball")


def impact_material(audio: np.ndarray, sample_rate: int, onset: float) -> str:
    """Material heard at an onset. Decay first: a ring that loses < 4 dB from the first to
    the second 30 ms is metal (only in the bins the new sound dominates, so another ball's
    ringing does not count). Otherwise the spectral centroid of what was added at the
    onset: rubber < 350 Hz < wood < 2200 Hz < glass."""
    x = np.asarray(audio, np.float64)
    n = round(0.03 * sample_rate)
    i = round(onset * sample_rate)

    def power(a: int) -> np.ndarray:
        seg = x[max(0, a) : max(0, a + n)]
        seg = np.pad(seg, (0, n - len(seg)))
        return np.abs(np.fft.rfft(seg * np.hanning(n), 1024)) ** 2

    pre, early, late = power(i - n - round(0.002 * sample_rate)), power(i), power(i + n)
    new = early > 2 * pre
    if not new.any():
        new[:] = True
    decay_db = 10 * np.log10(max(late[new].sum(), 1e-20) / max(early[new].sum(), 1e-20))
    if decay_db > -4.0:
        return "metal"
    added = np.clip(early - pre, 0, None)
    freqs = np.fft.rfftfreq(1024, 1.0 / sample_rate)
    centroid = (freqs * added).sum() / max(added.sum(), 1e-20)
    return "glass" if centroid > 2200 else "wood" if centroid > 350 else "rubber"


def _ball_materials(tracks: dict[str, np.ndarray], height: int, audio: np.ndarray, fps: float,
                    sample_rate: int) -> dict[str, str | None]:
    """Colour -> majority material of the sounds paired with that ball's contacts."""
    contacts = sorted((t, c) for c, y in tracks.items() for t in _contact_times(y, fps, height))
    visual = np.asarray([t for t, _ in contacts])
    owner = [c for _, c in contacts]
    onsets = audio_onsets(audio, sample_rate)
    pairs, _ = match_events(visual, onsets)
    votes: dict[str, list[str]] = {c: [] for c in tracks}
    for i, j in pairs:
        votes[owner[i]].append(impact_material(audio, sample_rate, onsets[j]))
    return {c: max(MATERIALS, key=v.count) if v else None for c, v in votes.items()}


def prompt_adherence(frames: np.ndarray, audio: np.ndarray, caption: str, fps: float = 24.0,
                     sample_rate: int = 16000) -> dict[str, Any]:
    """How well a world clip matches its caption.

    ``bounce`` captions: ``colour_match`` (the set of ball colours seen equals the
    caption's), ``colour_score`` (Jaccard index of the two sets), ``material_match`` /
    ``material_score`` (each captioned ball's material as heard at its contacts).
    ``talk`` captions: ``syllables_expected`` (from the lexicon), ``mouth_openings``,
    ``syllable_match`` (within one). Detected values are included for inspection.
    """
    prompt = parse_prompt(caption)
    balls = {m[2]: m[3].replace("wooden", "wood") for m in _BALL.finditer(prompt.visual)}
    if balls:
        tracks = ball_tracks(frames)
        seen = set(tracks)
        heard = _ball_materials(tracks, np.asarray(frames).shape[1], audio, fps, sample_rate)
        right = [c for c, m in balls.items() if heard.get(c) == m]
        return dict(kind="bounce", colours_expected=sorted(balls), colours_detected=sorted(seen),
                    colour_match=seen == set(balls),
                    colour_score=len(seen & set(balls)) / len(seen | set(balls)),
                    materials_expected=balls, materials_detected=heard,
                    material_match=len(right) == len(balls),
                    material_score=len(right) / len(balls))
    if prompt.speech:
        words = " ".join(prompt.speech).lower().split()
        expected = sum(len(WORDS.get(w.strip(".,!?"), ())) or
                       max(1, len(re.findall(r"[aeiouy]+", w))) for w in words)
        openings = len(visual_events(frames, fps, "talk"))
        return dict(kind="talk", syllables_expected=expected, mouth_openings=openings,
                    syllable_match=abs(openings - expected) <= 1)
    raise InputError("caption names no ball and no speech; it is not a world caption")
