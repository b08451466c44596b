"""The picture of where each audio instant looked in the video, for the page's attention tab.

The probe (`duet.model.probe`) gives audio -> video attention over tokens; a video latent
frame is many tokens (its patches), so the map is summed over each frame's tokens: every
row is then a distribution over video frames. The picture puts audio time down the side and
video time along the bottom, with the diagonal where both instants coincide, so a model
whose sound follows its picture shows a bright band along it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

# Colour ramp from no attention to the map's maximum: black, violet, red, orange, pale yellow.
_RAMP = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]],
                 dtype=np.float64)


def frame_attention(weights: Tensor, frames: int) -> Tensor:
    """[L_audio, L_video] token weights -> [L_audio, frames]: each frame's tokens summed
    (video tokens are frame-major, `frames` × patches per frame)."""
    la, lv = weights.shape
    if lv % frames:
        raise ValueError(f"{lv} video tokens do not split into {frames} frames")
    return weights.float().reshape(la, frames, lv // frames).sum(-1)  # (L_audio, frames)


def colorize(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB along the ramp."""
    x = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    stops = np.arange(len(_RAMP))
    rgb = [np.interp(x, stops, _RAMP[:, c]) for c in range(3)]
    return np.stack(rgb, axis=-1).round().astype(np.uint8)


def render(attention: np.ndarray | Tensor, duration: float, path: str | Path, *,
           size: tuple[int, int] = (560, 360)) -> Path:
    """Write the map [audio instants, video frames] of a `duration`-second clip as a PNG
    with time axes in seconds; colour is scaled to the map's maximum."""
    from PIL import Image, ImageDraw, ImageFont

    a = torch.as_tensor(attention).float().numpy()
    if a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"attention map must be [audio, frames], got shape {a.shape}")
    w, h = size
    left, top, right, bottom = 64, 36, 16, 48
    heat = colorize(a / max(float(a.max()), 1e-12))
    plot = Image.fromarray(heat).resize((w, h), Image.Resampling.NEAREST)
    canvas = Image.new("RGB", (left + w + right, top + h + bottom), "white")
    canvas.paste(plot, (left, top))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    draw.line([(left, top), (left + w, top + h)], fill=(90, 200, 255), width=1)  # same instant
    for s in _ticks(duration):
        x, y = left + s / duration * w, top + s / duration * h
        draw.line([(x, top + h), (x, top + h + 4)], fill="black")
        draw.text((x, top + h + 6), f"{s:g}", fill="black", font=font, anchor="mt")
        draw.line([(left - 4, y), (left, y)], fill="black")
        draw.text((left - 6, y), f"{s:g}", fill="black", font=font, anchor="rm")
    draw.text((left + w / 2, top + h + 24), "video time (s)", fill="black", font=font, anchor="mt")
    draw.text((4, top - 20), "audio time (s)", fill="black", font=font)
    draw.text((left + w / 2, 4), "where each audio instant looks in the video "
              "(blue: same instant)", fill="black", font=font, anchor="mt")
    path = Path(path)
    canvas.save(path, format="PNG")
    return path


def _ticks(duration: float) -> list[float]:
    """Tick positions in seconds: every second from 2 s clips up, every quarter second from
    0.5 s, else every tenth."""
    step = 1.0 if duration >= 2 else 0.1 if duration < 0.5 else 0.25
    return [round(i * step, 2) for i in range(int(duration / step + 1e-9) + 1)]
