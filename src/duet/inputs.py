"""Checks and conversions of what a pipeline call is given: the output size, the seed, the
prompts, and a given picture, video or sound.

Kept apart from `pipeline.py` because none of it needs the model: a bad argument fails here,
with a message that names it, before anything heavy runs.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor

from duet.chunks import MAX_DURATION
from duet.config import MediaConfig
from duet.errors import InputError, PromptError
from duet.text.prompt import parse_prompt

#: The longest given video or sound in seconds (it is one pass, so its cost grows with the
#: square of its length); generated clips are made in chunks up to `duet.chunks.MAX_DURATION`.
MAX_GIVEN_DURATION = 60.0


def snap_size(height: int | None, width: int | None, area: int, multiple: int) -> tuple[int, int]:
    """Height and width with the requested aspect ratio, about `area` pixels, both multiples
    of `multiple` (rounded down, as Ovi does: 720x720 -> 704x704)."""
    h = height if height is not None else (width if width is not None else 1)
    w = width if width is not None else h
    if h <= 0 or w <= 0:
        raise InputError(f"height and width must be positive, got {height}x{width}")
    aspect = h / w
    snapped_w = math.floor(math.sqrt(area / aspect) / multiple) * multiple
    snapped_h = math.floor(math.sqrt(area * aspect) / multiple) * multiple
    if snapped_h < multiple or snapped_w < multiple:
        raise InputError(
            f"aspect ratio {h}:{w} cannot be snapped to this model's area of {area} pixels in "
            f"multiples of {multiple} (a side would be below {multiple}); use an aspect ratio "
            f"between 1:{area // multiple**2} and {area // multiple**2}:1")
    return snapped_h, snapped_w


def format_prompt(prompt: str, prompt_format: str, name: str | None = None) -> str:
    """A prompt, checked (tags, text) and converted to the model's format; `name` says which
    prompt a message is about when it is not the main one."""
    try:
        return parse_prompt(prompt).to_format(prompt_format)
    except PromptError as e:
        if name is None:
            raise
        raise PromptError(f"{name}: {e}") from None


def check_negative(prompt: str | None, name: str) -> None:
    """A negative prompt passes the same checks as a prompt (tags, text), except that ""
    is allowed: the empty prompt is a real negative."""
    if prompt is not None and (not isinstance(prompt, str) or prompt.strip()):
        try:
            parse_prompt(prompt)
        except PromptError as e:
            raise PromptError(f"{name}: {e}") from None


def check_seed(seed: int | None) -> None:
    """torch seeds are unsigned 64-bit numbers; anything else fails deep inside torch."""
    top = 2**64 - 1
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or not 0 <= seed <= top):
        raise InputError(f"seed {seed!r} is out of range; use an integer from 0 to {top}")


def check_conditioning(image: Any, from_video: Any, from_audio: Any,
                       duration: float | None) -> str | None:
    """Which modality is held (given), after refusing combinations that make no sense."""
    given = [n for n, x in (("image", image), ("from_video", from_video),
                            ("from_audio", from_audio)) if x is not None]
    if len(given) > 1:
        raise InputError(f"pass at most one of image, from_video, from_audio (got {', '.join(given)})")
    if given and given[0] != "image" and duration is not None:
        raise InputError(f"{given[0]} sets the clip's duration; do not pass duration as well")
    if from_audio is not None:
        wave = np.asarray(from_audio)
        if wave.ndim != 1 or not np.issubdtype(wave.dtype, np.floating):
            raise InputError(f"from_audio must be a float waveform [N], got {wave.dtype} {wave.shape}")
    return {"from_video": "video", "from_audio": "audio"}.get(given[0]) if given else None


def clip_frames(media: MediaConfig, duration: float | None, from_video: Any = None,
                from_audio: Any = None, sample_rate: int | None = None) -> int:
    """Frames of the clip: as many as a given video or sound (at `sample_rate`) holds, else
    the preset's, or st*k + 1 nearest to `duration` seconds."""
    if from_video is not None:
        return frames_within(media, int(np.asarray(from_video).shape[0]))
    if from_audio is not None:
        return frames_within(media, int(np.asarray(from_audio).shape[0] * media.fps / sample_rate))
    if duration is None:
        return media.frames
    if not 0 < duration <= MAX_DURATION:
        raise InputError(f"duration must be in (0, {MAX_DURATION:g}] seconds, got {duration:g}")
    st = media.video_stride[0]
    return st * max(1, round(duration * media.fps / st)) + 1


def frames_within(media: MediaConfig, available: int) -> int:
    """The longest valid clip (st*k + 1 frames) that fits in `available` frames; a given
    video or sound longer than `MAX_GIVEN_DURATION` is refused."""
    st, fps = media.video_stride[0], media.fps
    if available < st + 1:
        raise InputError(f"the input is {available} frames long; this model needs at least "
                         f"{st + 1} ({(st + 1) / fps:.2f} s)")
    if available > clip_frames(media, MAX_GIVEN_DURATION):
        raise InputError(f"the input is {available / fps:.1f} s long; given clips are at most "
                         f"{MAX_GIVEN_DURATION:g} s: trim it first")
    return st * ((available - 1) // st) + 1


def check_image(image: Tensor | np.ndarray) -> Tensor:
    """A first frame as uint8 [H, W, 3], or a message that says how to convert it."""
    img = torch.as_tensor(np.asarray(image))
    if img.dim() != 3 or img.shape[2] != 3 or img.dtype != torch.uint8:
        raise InputError(f"image must be uint8 RGB [H, W, 3], got {img.dtype} {tuple(img.shape)}; "
                         "convert grey or RGBA pictures to RGB first (PIL: .convert('RGB'))")
    return img


def fit_frames(frames: Tensor | np.ndarray, h: int, w: int) -> Tensor:
    """uint8 [T, H, W, 3] -> float [1, 3, T, h, w] in [-1, 1] (center crop + resize)."""
    x = torch.as_tensor(np.asarray(frames))
    if x.dim() != 4 or x.shape[3] != 3 or x.dtype != torch.uint8:
        raise InputError(f"frames must be uint8 [T, H, W, 3], got {x.dtype} {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float() / 127.5 - 1  # (T, 3, H, W)
    ih, iw = x.shape[2:]
    if (ih, iw) != (h, w):
        scale = max(h / ih, w / iw)
        size = (max(h, round(ih * scale)), max(w, round(iw * scale)))
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True,
                                            align_corners=False)
        top, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
        x = x[:, :, top:top + h, left:left + w]
    return x.permute(1, 0, 2, 3)[None]  # (1, 3, T, h, w)
