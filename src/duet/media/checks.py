"""Checks and conversions shared by the media writers and readers: arrays from numpy or
torch in the layouts and ranges the writers accept, frame and sample rates, and input files
that exist; every failure is an InputError or MediaError that says what to pass instead."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from duet.errors import InputError, MediaError

#: Sample rates the AAC encoder accepts (MPEG-4 sampling frequency table).
AAC_SAMPLE_RATES: tuple[int, ...] = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
)

CHANNEL_LAYOUTS = {1: "mono", 2: "stereo"}  # channels -> FFmpeg layout


def to_numpy(x: Any, what: str) -> np.ndarray:
    """Turn a numpy array or torch tensor (any device/dtype) into a numpy array."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if x.dtype.is_floating_point:
            x = x.float()  # bfloat16/float16 have no (or a lossy) numpy equivalent
        return x.numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - anything unconvertible is an input problem
        raise InputError(
            f"{what} must be a numpy array or torch tensor, got {type(x).__name__}; "
            "pass the array itself."
        ) from exc


def as_uint8_frames(video: Any, what: str = "video") -> np.ndarray:
    """Normalise a video to contiguous uint8 [T, H, W, 3].

    Accepted layouts: [T, H, W, 3] (channels last, what image libraries use) or
    [3, T, H, W] (channels first, what the model's VAE decoder emits). The layout is read
    from the shape: a trailing 3 means channels last. The value range is read from the
    dtype: uint8 means 0..255, floating point means [-1, 1] (values outside are clipped).
    """
    arr = to_numpy(video, what)
    if arr.ndim != 4 or 3 not in (arr.shape[-1], arr.shape[0]):
        raise InputError(
            f"{what} has shape {tuple(arr.shape)}; expected [T, H, W, 3] or [3, T, H, W] "
            "(drop any batch dimension first, e.g. video[0])."
        )
    if arr.shape[-1] != 3:
        arr = np.moveaxis(arr, 0, -1)  # [3, T, H, W] -> [T, H, W, 3]
    if 0 in arr.shape:
        raise InputError(f"{what} is empty (shape {tuple(arr.shape)}); pass at least one frame.")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(
            f"{what} has dtype {arr.dtype}; use uint8 (0..255) or a float type in [-1, 1]."
        )
    if not np.isfinite(arr).all():
        raise InputError(f"{what} contains NaN or infinite values; fix the generator output.")
    scaled = (np.clip(arr.astype(np.float32), -1.0, 1.0) + 1.0) * 127.5
    return np.ascontiguousarray(np.rint(scaled).astype(np.uint8))


def as_float_audio(audio: Any) -> np.ndarray:
    """Normalise a waveform to float32 [C, N] with C in {1, 2}, clipped to [-1, 1].

    [N] is mono; [C, N] is channels first. Clipping (rather than rejecting) values just
    outside [-1, 1] is deliberate: generated audio overshoots slightly all the time.
    """
    arr = to_numpy(audio, "audio")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] not in CHANNEL_LAYOUTS:
        raise InputError(
            f"audio has shape {tuple(arr.shape)}; expected [N] (mono) or [C, N] with C = 1 "
            "or 2 channels first (transpose an [N, C] array with audio.T)."
        )
    if arr.shape[1] == 0:
        raise InputError("audio is empty; pass at least one sample or audio=None for silence.")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"audio has dtype {arr.dtype}; use a float waveform in [-1, 1].")
    if not np.isfinite(arr).all():
        raise InputError("audio contains NaN or infinite values; fix the generator output.")
    return np.ascontiguousarray(np.clip(arr.astype(np.float32), -1.0, 1.0))


def check_fps(fps: Any) -> Fraction:
    try:
        rate = Fraction(fps).limit_denominator(1001 * 1000)  # exact for 24, 30000/1001, ...
    except (TypeError, ValueError) as exc:
        raise InputError(f"fps={fps!r} is not a number; pass e.g. fps=24.") from exc
    if rate <= 0:
        raise InputError(f"fps={fps!r} must be positive; pass e.g. fps=24.")
    return rate


def check_sample_rate(sample_rate: Any, *, for_aac: bool) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise InputError(f"sample_rate={sample_rate!r} must be an int, e.g. 16000.")
    rate = int(sample_rate)
    if rate <= 0:
        raise InputError(f"sample_rate={rate} must be positive, e.g. 16000.")
    if for_aac and rate not in AAC_SAMPLE_RATES:
        raise InputError(
            f"sample_rate={rate} Hz cannot be stored as AAC; resample the audio to one of "
            f"{', '.join(map(str, AAC_SAMPLE_RATES))} Hz first."
        )
    return rate


def input_file(path: str | os.PathLike[str], what: str) -> Path:
    """`path` if it is a file that can be read, else a MediaError that says what it is."""
    src = Path(path)
    if src.is_dir():
        raise MediaError(f"{src} is a folder; expected {what}.")
    if not src.exists():
        raise MediaError(f"{src} does not exist; check the path.")
    if not src.is_file():
        raise MediaError(f"{src} is not a regular file; expected {what}.")
    return src
