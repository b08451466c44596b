"""Frames as pictures and at other rates: nearest-frame retiming, a grid of frames as one
image, and PNG previews (a minimal stdlib encoder, so no imaging library is needed)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from duet.atomic import atomic_path
from duet.errors import InputError, MediaError
from duet.media.checks import as_uint8_frames, to_numpy


def retime_frames(frames: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """Frames [T, ...] shown at `fps` resampled to `target_fps` (nearest frame in time)."""
    if fps <= 0:
        raise MediaError(f"the video's frame rate is unknown ({fps}); re-encode it with a fixed rate")
    if abs(fps - target_fps) < 1e-6:
        return frames
    n = int(len(frames) / fps * target_fps)
    index = np.minimum(np.round(np.arange(n) * fps / target_fps).astype(int), len(frames) - 1)
    return frames[index]


def frame_grid(frames: Any, cols: int) -> np.ndarray:
    """Tile frames row by row into one uint8 [rows * H, cols * W, 3] image.

    Accepts the same video forms as `write_mp4`. Cells after the last frame are black.
    `cols` larger than the frame count is reduced to it, so a short clip gives one row.
    """
    video = as_uint8_frames(frames, "frames")
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise InputError(f"cols={cols!r} must be a positive int, e.g. 4.")
    count, height, width, _ = video.shape
    cols = min(cols, count)
    rows = -(-count // cols)
    grid = np.zeros((rows * height, cols * width, 3), np.uint8)
    for i in range(count):
        r, c = divmod(i, cols)
        grid[r * height:(r + 1) * height, c * width:(c + 1) * width] = video[i]
    return grid


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def save_png(path: str | os.PathLike[str], image: Any) -> Path:
    """Save an RGB image as an 8-bit PNG (atomically), with a minimal stdlib encoder.

    `image`: uint8 [H, W, 3] (0..255) or float [H, W, 3] in [-1, 1]; numpy or torch.
    """
    arr = to_numpy(image, "image")
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise InputError(
            f"image has shape {tuple(arr.shape)}; expected [H, W, 3] (use frame_grid to "
            "tile a video, or video[k] for one frame)."
        )
    rgb = as_uint8_frames(arr[None], "image")[0]
    height, width, _ = rgb.shape
    # Each scanline starts with filter type 0 (None); zlib does the compression.
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, -1)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit truecolour
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + _png_chunk(b"IEND", b"")
    )
    with atomic_path(path, MediaError) as tmp:
        try:
            tmp.write_bytes(png)
        except OSError as exc:
            raise MediaError(f"writing {Path(path).name} failed: {exc}") from exc
    return Path(path)
