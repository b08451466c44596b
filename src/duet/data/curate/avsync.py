"""Weight-free audio-visual sync: audio onsets against changes of visual motion.

The project's sync ruler (`duet.eval.sync`) pairs world-specific visual events (a ball's
floor contact, a mouth opening) with audio onsets. Real footage has no known objects, so
here the visual event is generic: a sudden change of the optical-flow field (something
hits, stops, turns), measured per frame as the mean |flow_t - flow_(t-1)|. The audio side is
the ruler's onset detector, as an impulse train on the frame grid. Their normalised
cross-correlation over lags of +-`sync_max_offset_ms` gives:

* ``offset_ms``: the lag of the peak, refined to sub-frame by a parabola; positive means
  the sound is late (the ruler's sign convention);
* ``score``: the peak correlation (0: no sound event lines up with any motion change);
* ``uniqueness``: how far the peak stands above the best lag more than two frames away
  (a periodic sound aligns almost as well one period off).

Measured on the synthetic world (64x64): bounce clips give offsets within 45 ms of the
truth at 0 and +-300 ms. Mouths are different: the flow changes most when the mouth stops
closing, about 200 ms after the syllable starts, so speech clips are left to SyncNet
(`duet.data.curate.syncnet`) rather than shifted by this estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from duet.media.onsets import audio_onsets


@dataclass(frozen=True)
class SyncEstimate:
    offset_ms: float  # audio minus video; positive: the sound is late
    score: float  # peak normalised cross-correlation
    uniqueness: float  # (peak - best lag > 2 frames away) / peak
    onsets: int  # audio onsets found


def motion_changes(flow: np.ndarray) -> np.ndarray:
    """Per frame [T]: mean |flow_t - flow_(t-1)|, the visual event signal. flow: [T-1, h, w, 2]
    between consecutive frames; the ends, which have no change, are 0."""
    change = np.linalg.norm(flow[1:] - flow[:-1], axis=-1).mean(axis=(1, 2))  # [T-2]
    return np.concatenate([[0.0], change, [0.0]])


def onset_train(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> tuple[np.ndarray, int]:
    """Audio onsets as impulses on the frame grid [n_frames] (each split linearly between
    its two nearest frames), and how many there were."""
    out = np.zeros(n_frames)
    onsets = audio_onsets(audio, sample_rate) if np.any(audio) else np.zeros(0)
    for t in onsets:
        k = t * fps
        i, w = int(np.floor(k)), k - np.floor(k)
        if i < n_frames:
            out[i] += 1 - w
        if i + 1 < n_frames:
            out[i + 1] += w
    return out, len(onsets)


def _correlation(v: np.ndarray, a: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised cross-correlation at lags -max_lag..max_lag (a shifted later by the lag)."""
    v = (v - v.mean()) / (v.std() + 1e-12)
    a = (a - a.mean()) / (a.std() + 1e-12)
    n = len(v)
    return np.array([(v[: n - k] * a[k:]).mean() if k >= 0 else (v[-k:] * a[: n + k]).mean()
                     for k in range(-max_lag, max_lag + 1)])


def estimate(flow: np.ndarray, audio: np.ndarray, sample_rate: int, fps: float,
             max_offset_ms: float) -> SyncEstimate:
    """Offset and confidence of one clip's sound against its picture (see module doc)."""
    visual = motion_changes(flow)
    train, n_onsets = onset_train(audio, sample_rate, fps, len(visual))
    if n_onsets == 0 or not np.any(visual):
        return SyncEstimate(0.0, 0.0, 0.0, n_onsets)
    max_lag = min(len(visual) // 2, int(max_offset_ms / 1000 * fps))
    c = _correlation(visual, train, max_lag)
    i = int(np.argmax(c))
    step = 0.0
    if 0 < i < len(c) - 1:
        curve = c[i - 1] - 2 * c[i] + c[i + 1]
        step = 0.5 * (c[i - 1] - c[i + 1]) / curve if curve < 0 else 0.0
    far = np.abs(np.arange(len(c)) - i) > 2
    peak = float(c[i])
    unique = (peak - float(c[far].max())) / peak if peak > 0 and far.any() else 0.0
    return SyncEstimate(1000.0 * (i - max_lag + step) / fps, peak, unique, n_onsets)
