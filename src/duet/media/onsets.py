"""Where sounds start in a waveform: the audio half of the sync ruler (`duet.eval.sync`),
also used by data curation to keep clips whose sound matches their picture. Numpy only."""

from __future__ import annotations

import math

import numpy as np

from duet.errors import InputError

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
