"""Visual events of world-like clips, found in the pixels alone (a decoded MP4 is enough):
the instants `duet.eval.sync` pairs with audio onsets.

* ``bounce`` clips: balls are segmented by colour against the per-row background, their
  vertical centroid is tracked with sub-pixel precision (coverage-weighted, so anti-aliased
  edges count) in the frames where the colour forms one disc (`SPLIT_SPREAD`), a floor
  contact shows as a sharp negative second difference of the height where a falling ball
  loses much of its downward speed (a sub-pixel wobble makes the first but not the second),
  and its instant is where the parabola fitted to the frames before the contact meets the
  one fitted to the frames after it (sub-frame precision).
* ``talk`` clips: the dark area inside the mouth region of the face; each opening is a
  rising ramp, extrapolated back to the closed level to time its start.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np

from duet.data.world import PALETTE
from duet.errors import InputError

__all__ = ["SPLIT_SPREAD", "ball_tracks", "contact_times", "detect_kind", "kinks", "mouth_area",
           "split_fraction", "vertical_travel", "visual_events"]


def _checked_frames(frames: Any) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise InputError(f"frames must be uint8 [T, H, W, 3], got {arr.dtype} {arr.shape}")
    if len(arr) < 5:
        raise InputError(f"need at least 5 frames to find events, got {len(arr)}")
    return arr


def _frames_float(frames: Any) -> np.ndarray:
    return _checked_frames(frames).astype(np.float32)


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


#: Largest spread of a colour's coverage, as a multiple of a single disc's of the same area,
#: that still counts as one ball. A disc's mean squared distance from its centre is area / 2π;
#: real clips after the codec's round trip reach 1.23 (24 held-out clips, every frame). Two
#: blobs of one colour (a ball drawn twice, or a ghost of it) spread further, and the centroid
#: between them would move as they fade in and out: motion and contacts of no ball.
SPLIT_SPREAD = 2.0


Coverage = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
_SEEN: OrderedDict[tuple, Coverage] = OrderedDict()  # the last few clips' coverage
_SEEN_CLIPS = 8


def _ball_coverage(frames: np.ndarray) -> Coverage:
    """Per palette colour seen as a ball: (vertical centroid, whole, split), each [T].

    `whole` marks frames with at least 0.8 of the colour's median coverage (not entering the
    frame, not gone); `split` marks frames whose coverage spreads over more than one blob.

    Every ruler here (events, travel, jitter, split, colour adherence) starts from this, and
    the RL rewards read one clip through several of them (seven times per bounce clip), so the
    last few clips' results are kept, keyed by the frames' bytes: the same pixels give the
    same arrays (read-only), at the cost of hashing them once per call."""
    arr = np.ascontiguousarray(_checked_frames(frames))
    key = (arr.shape, hashlib.blake2b(arr, digest_size=16).digest())
    if key in _SEEN:
        _SEEN.move_to_end(key)
        return _SEEN[key]
    out = _measure_coverage(arr.astype(np.float32))
    for arrays in out.values():
        for a in arrays:
            a.setflags(write=False)
    _SEEN[key] = out
    while len(_SEEN) > _SEEN_CLIPS:
        _SEEN.popitem(last=False)
    return out


def _measure_coverage(f: np.ndarray) -> Coverage:
    """`_ball_coverage` of float32 frames, computed."""
    t_len, h, w, _ = f.shape
    bg_rows = np.median(f.transpose(1, 0, 2, 3).reshape(h, -1, 3), axis=1)  # [H, 3]
    label, names = _palette_labels(f, bg_rows)
    # Each pixel belongs to the colour named most often around it, so the few pixels of an
    # orange ball that a codec turns yellow do not drag a yellow ball's track over there.
    votes = np.stack([_box_count(label == k, 3) for k in range(len(names))])  # [K, T, H, W]
    owner = np.where(votes.max(0) > 0, votes.argmax(0), -1)
    rows = np.arange(h, dtype=np.float32)[None, :, None] + 0.5
    cols = np.arange(w, dtype=np.float32)[None, None, :] + 0.5
    out: Coverage = {}
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
        m = np.maximum(mass, 1e-9)
        y = (alpha * rows).sum(axis=(1, 2)) / m
        x = (alpha * cols).sum(axis=(1, 2)) / m
        spread = (alpha * ((rows - y[:, None, None]) ** 2 + (cols - x[:, None, None]) ** 2)
                  ).sum(axis=(1, 2)) / m
        full = np.median(mass[mass > 0]) if np.any(mass > 0) else 0.0
        out[name] = (y, mass >= 0.8 * full, spread > SPLIT_SPREAD * m / (2 * np.pi))
    return out


def ball_tracks(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Vertical centroid (pixels) of each ball, keyed by palette colour name; nan where the
    ball is absent, cut by the frame edge, or its colour is split over more than one blob
    (two blobs have no one position)."""
    return {name: np.where(whole & ~split, y, np.nan)
            for name, (y, whole, split) in _ball_coverage(frames).items()}


def split_fraction(frames: np.ndarray) -> float:
    """Share of the frames showing a whole ball in which its colour is split over two or more
    blobs: a ball drawn twice, or a ghost beside it (0 for real clips; nan without balls).
    The ruler leaves those frames untracked, so a rising share is what a policy that learnt
    to draw doubles to game a ball reward leaves behind."""
    counts = [(np.sum(whole & split), np.sum(whole)) for _, whole, split in
              _ball_coverage(frames).values()]
    shown = sum(n for _, n in counts)
    return float(sum(s for s, _ in counts) / shown) if shown else float("nan")


def vertical_travel(frames: np.ndarray) -> float:
    """Pixels the balls of a bounce clip travel up and down, summed over the balls and over
    consecutive frames where each is tracked: a ball that falls and bounces covers the
    frame's height several times, one that rests or hovers covers almost nothing, and one
    that blinks out stops counting, so the event count alone cannot hide either."""
    return float(sum(np.nansum(np.abs(np.diff(y))) for y in ball_tracks(frames).values()))


def height_jitter(frames: np.ndarray) -> float:
    """Median deviation of the balls' height second differences from gravity, in pixels per
    frame²: a falling ball's height is a parabola, whose second difference is the same in
    every frame (each track's median, gravity), so real clips deviate by a fraction of a
    pixel; a ball placed a little off from frame to frame deviates by pixels, which the
    ruler reads as contacts. The median ignores the few frames of each real bounce. NaN
    without a track."""
    dev = []
    for y in ball_tracks(frames).values():
        d2 = y[2:] - 2 * y[1:-1] + y[:-2]
        d2 = d2[np.isfinite(d2)]
        if d2.size:
            dev.append(np.abs(d2 - np.median(d2)))
    return float(np.median(np.concatenate(dev))) if dev else float("nan")


def _fit_at(t: np.ndarray, y: np.ndarray, t0: float) -> np.ndarray:
    """Polynomial (degree <= 2) through the points, centred at t0."""
    return np.polyfit(t - t0, y, min(2, len(t) - 1))


# Every ball of the world reaches the floor at >= 0.94 frame heights per second and leaves it
# upward at that speed or comes to rest (the world's minimum rebound speed), so a contact is
# a kink where the ball fell at least this fast over the frames before it and lost at least
# this much downward speed across it: 0.3 of that minimum, which every ground-truth contact
# clears by 1.5x, while the kinks of a height wobbling by 0.3 px per frame, invisible but
# enough for the second-difference threshold, never do (benchmarks/ruler_jitter.py).
CONTACT_SPEED = 0.28  # frame heights per second


def _slope(y: np.ndarray, frames: range) -> float:
    """Least-squares speed (pixels per frame) over the tracked frames in `frames`; NaN with
    fewer than two."""
    idx = np.asarray([i for i in frames if 0 <= i < len(y) and np.isfinite(y[i])], dtype=int)
    return float(np.polyfit(idx, y[idx], 1)[0]) if idx.size >= 2 else float("nan")


def kinks(y: np.ndarray, height: int) -> list[tuple[int, int]]:
    """First and last frame of each run of frames where the height's second difference is
    below -0.005 * height: the candidates for floor contacts (and, alone, for wobbles)."""
    d2 = np.full(len(y), np.nan)
    d2[1:-1] = y[2:] - 2 * y[1:-1] + y[:-2]
    runs: list[tuple[int, int]] = []
    for j in np.flatnonzero(np.nan_to_num(d2, nan=0.0) < -0.005 * height):
        if runs and j == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], j)
        else:
            runs.append((j, j))
    return runs


def contact_times(y: np.ndarray, fps: float, height: int) -> list[float]:
    """Floor contacts of one ball from its per-frame height (y down)."""
    speed = CONTACT_SPEED * height / fps  # pixels per frame
    groups: list[tuple[int, int]] = []
    drops: list[float] = []
    for a, b in kinks(y, height):
        v_before, v_after = _slope(y, range(b - 3, b)), _slope(y, range(a + 1, a + 4))
        drop = v_after - v_before
        if not (v_before >= speed and drop <= -speed):  # False for NaN: unmeasurable
            continue
        if groups and a - groups[-1][1] <= 2:  # a wobble beside a contact: keep the sharper
            if drop < drops[-1]:
                groups[-1], drops[-1] = (a, b), drop
            continue
        groups.append((a, b))
        drops.append(drop)
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


def mouth_area(frames: np.ndarray) -> np.ndarray:
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
        times = [t for y in ball_tracks(frames).values() for t in contact_times(y, fps, height)]
    elif kind == "talk":
        times = _opening_onsets(mouth_area(frames), fps)
    else:
        raise InputError(f"unknown kind {kind!r}; use 'bounce', 'talk' or None")
    return np.sort(np.asarray(times, np.float64))
