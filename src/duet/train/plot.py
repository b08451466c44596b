"""The loss curve as a PNG, drawn with numpy (no plotting dependency): log-scale loss against
step, one line per series, tick labels and a legend in a 3×5 pixel font."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from duet.media import save_png

_GLYPHS = {  # 3 columns x 5 rows
    "0": "###,#.#,#.#,#.#,###", "1": ".#.,##.,.#.,.#.,###", "2": "###,..#,###,#..,###",
    "3": "###,..#,###,..#,###", "4": "#.#,#.#,###,..#,..#", "5": "###,#..,###,..#,###",
    "6": "###,#..,###,#.#,###", "7": "###,..#,..#,..#,..#", "8": "###,#.#,###,#.#,###",
    "9": "###,#.#,###,..#,###", ".": "...,...,...,...,.#.", "-": "...,...,###,...,...",
    "+": "...,.#.,###,.#.,...", " ": "...,...,...,...,...", "e": ".#.,#.#,###,#..,.##",
    "a": "...,.##,#.#,#.#,.##", "d": "..#,..#,.##,#.#,.##", "i": ".#.,...,.#.,.#.,.#.",
    "l": "##.,.#.,.#.,.#.,###", "o": "...,.#.,#.#,#.#,.#.", "p": "...,##.,#.#,##.,#..",
    "s": ".##,#..,.#.,..#,##.", "t": ".#.,###,.#.,.#.,.##", "u": "...,#.#,#.#,#.#,.##",
    "v": "...,#.#,#.#,#.#,.#.", "r": "...,#.#,##.,#..,#..", "w": "...,#.#,#.#,###,#.#",
    "_": "...,...,...,...,###",
}
COLORS = [(20, 20, 20), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
SCALE = 2  # font pixels per glyph pixel


def _text(img: np.ndarray, x: int, y: int, s: str, color: tuple[int, int, int]) -> None:
    """Draw `s` with its top-left corner at (x, y)."""
    for ch in s:
        rows = _GLYPHS.get(ch, _GLYPHS[" "]).split(",")
        for r, row in enumerate(rows):
            for c, on in enumerate(row):
                if on == "#":
                    y0, x0 = y + r * SCALE, x + c * SCALE
                    img[max(y0, 0):y0 + SCALE, max(x0, 0):x0 + SCALE] = color
        x += 4 * SCALE


def _text_width(s: str) -> int:
    return len(s) * 4 * SCALE - SCALE


def _line(img: np.ndarray, xs: np.ndarray, ys: np.ndarray, color: tuple[int, int, int]) -> None:
    """A 2-pixel polyline through pixel coordinates (xs, ys)."""
    h, w = img.shape[:2]
    for x0, y0, x1, y1 in zip(xs[:-1], ys[:-1], xs[1:], ys[1:]):
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        px = np.rint(np.linspace(x0, x1, n)).astype(int)
        py = np.rint(np.linspace(y0, y1, n)).astype(int)
        for dy in (0, 1):
            ok = (px >= 0) & (px < w) & (py + dy >= 0) & (py + dy < h)
            img[py[ok] + dy, px[ok]] = color


def _binned(steps: np.ndarray, values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of (step, value) in at most `bins` consecutive groups (one per pixel column)."""
    if len(steps) <= bins:
        return steps, values
    groups = np.array_split(np.arange(len(steps)), bins)
    return (np.array([steps[g].mean() for g in groups]), np.array([values[g].mean() for g in groups]))


def loss_curve_png(path: str | os.PathLike, steps: Sequence[int],
                   series: Mapping[str, Sequence[float]], width: int = 720,
                   height: int = 400, log_y: bool = True, label: str = "loss") -> Path:
    """Plot each series (same length as `steps`) against step, log-scale y (or linear, for
    values that may be 0 or negative, such as rewards); write a PNG."""
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 70, 20, 30, 40
    pw, ph = width - left - right, height - top - bottom
    x = np.asarray(steps, dtype=float)
    curves = {k: np.asarray(v, dtype=float) for k, v in series.items() if len(v)}

    def scale(v: np.ndarray) -> np.ndarray:
        return np.log10(np.clip(v, 1e-30, None)) if log_y else v

    usable = [v[np.isfinite(v) & ((v > 0) | (not log_y))] for v in curves.values()]
    finite = np.concatenate([u for u in usable if len(u)] or [np.ones(1)])
    lo, hi = float(scale(finite.min())), float(scale(finite.max()))
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    x_lo, x_hi = (x.min(), x.max()) if len(x) else (0.0, 1.0)
    if x_hi <= x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1

    def to_px(sx: np.ndarray, sy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        px = left + (sx - x_lo) / (x_hi - x_lo) * (pw - 1)
        py = top + (hi - scale(sy)) / (hi - lo) * (ph - 1)
        return px, py

    grid, axis = (225, 225, 225), (90, 90, 90)
    for i in range(6):  # y grid and labels, evenly spaced in (log) space
        v = lo + (hi - lo) * i / 5
        v = 10 ** v if log_y else v
        _, py = to_px(np.array([x_lo]), np.array([v]))
        yy = int(round(py[0]))
        img[yy, left:left + pw] = grid
        label = f"{v:.3g}"
        _text(img, left - 6 - _text_width(label), yy - 5, label, axis)
    for i in range(6):  # x grid and labels
        s = x_lo + (x_hi - x_lo) * i / 5
        xx = int(round(left + i / 5 * (pw - 1)))
        img[top:top + ph, xx] = grid
        label = f"{s:.0f}"
        _text(img, xx - _text_width(label) // 2, top + ph + 8, label, axis)
    img[top + ph - 1, left:left + pw] = axis
    img[top:top + ph, left] = axis
    _text(img, left + pw // 2 - _text_width("step") // 2, height - 14, "step", axis)
    _text(img, 6, 6, label, axis)
    for i, (name, values) in enumerate(curves.items()):
        color = COLORS[i % len(COLORS)]
        sx, sy = _binned(x, values, pw)
        px, py = to_px(sx, sy)
        _line(img, px, py, color)
        ly = top + 8 + 14 * i  # legend, top right
        lx = left + pw - 12 - _text_width(name) - 24
        img[ly + 4:ly + 6, lx:lx + 18] = color
        _text(img, lx + 24, ly, name, color)
    return save_png(path, img)
