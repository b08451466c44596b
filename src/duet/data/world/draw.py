"""Drawing and sound helpers shared by the scene kinds: anti-aliased coverage masks
composited in float, and sounds placed at exact (sub-sample) onsets so that each event's
recorded time is where its sound starts."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from duet.data.world.common import WorldConfig


def disc(cx: np.ndarray, cy: np.ndarray, r: float, h: int, w: int) -> np.ndarray:
    """Anti-aliased disc coverage [T, h, w] for centres [T] (pixel (i, j) spans [j, j+1) x
    [i, i+1)). Coverage ramps linearly over one pixel across the edge, which keeps the
    centroid a smooth function of a sub-pixel position."""
    ys = np.arange(h, dtype=np.float64)[None, :, None] + 0.5
    xs = np.arange(w, dtype=np.float64)[None, None, :] + 0.5
    d = np.hypot(xs - np.asarray(cx, np.float64)[:, None, None],
                 ys - np.asarray(cy, np.float64)[:, None, None])
    return np.clip(r + 0.5 - d, 0.0, 1.0)


def ellipse(cx: float, cy: float, a: float, b: np.ndarray, h: int, w: int,
            sub: int = 8) -> np.ndarray:
    """Ellipse coverage [T, h, w] with per-frame vertical semi-axis `b` [T]: exact along x,
    `sub` sub-rows per pixel along y, so the covered area grows linearly with `b` (a mouth's
    dark area then follows its opening even below one pixel). Only the bounding box is
    rasterised."""
    b = np.maximum(np.asarray(b, np.float64), 1e-6)[:, None]  # [T, 1]
    r0, r1 = max(0, math.floor(cy - b.max()) - 1), min(h, math.ceil(cy + b.max()) + 1)
    c0, c1 = max(0, math.floor(cx - a) - 1), min(w, math.ceil(cx + a) + 1)
    ys = (np.arange(r0 * sub, r1 * sub, dtype=np.float64) + 0.5) / sub  # sub-row centres
    half = a * np.sqrt(np.clip(1.0 - ((ys[None, :] - cy) / b) ** 2, 0.0, None))  # [T, rows*sub]
    cols = np.arange(c0, c1, dtype=np.float64)
    lo = np.maximum((cx - half)[..., None], cols)  # [T, rows*sub, cols]
    hi = np.minimum((cx + half)[..., None], cols + 1.0)
    out = np.zeros((len(b), h, w))
    out[:, r0:r1, c0:c1] = np.clip(hi - lo, 0.0, 1.0).reshape(len(b), r1 - r0, sub, c1 - c0).mean(2)
    return out


def paint(img: np.ndarray, alpha: np.ndarray, colour: Any) -> None:
    """Composite `colour` over `img` [T, h, w, 3] (float) with coverage `alpha` [T, h, w]."""
    img += alpha[..., None] * (np.asarray(colour, np.float64) - img)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float RGB to the clip's uint8 frames (rounded, clipped, contiguous for the encoders)."""
    return np.ascontiguousarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))


Sound = Callable[[np.ndarray], np.ndarray]  # time since onset (s) -> samples


def band_noise(rng: np.random.Generator, n: int, sr: int, centre: float,
               width: float) -> np.ndarray:
    """White noise shaped by a Gaussian band (FFT mask), unit RMS. Filtering happens before
    any envelope is applied, so nothing leaks ahead of a sound's onset."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spec *= np.exp(-0.5 * ((freqs - centre) / width) ** 2)
    out = np.fft.irfft(spec, n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def place(track: np.ndarray, t0: float, sr: int, make: Sound) -> None:
    """Add `make(tau)` to `track` from time t0 on, where tau = n / sr - t0 >= 0 is the exact
    (sub-sample) time since the onset, so a sound starts at t0 and not at a rounded sample."""
    start = math.ceil(t0 * sr - 1e-9)
    if start >= len(track):
        return
    tau = np.arange(start, len(track)) / sr - t0
    piece = make(tau)
    track[start : start + len(piece)] += piece


def room_tone(rng: np.random.Generator, config: WorldConfig) -> np.ndarray:
    """A quiet room tone (pinkish noise, about -50 dBFS RMS)."""
    n, sr = config.samples, config.sample_rate
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spec /= np.sqrt(np.maximum(freqs, 20.0))
    noise = np.fft.irfft(spec, n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12) * rng.uniform(0.002, 0.004)


def finish(audio: np.ndarray) -> np.ndarray:
    """The mix as the clip's float32 audio, clipped to [-1, 1] like any decoded file."""
    return np.clip(audio, -1.0, 1.0).astype(np.float32)
