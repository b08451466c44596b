"""Sound files: 16-bit PCM WAV written and read with the standard library (exact
roundtrip), and any audio PyAV decodes read as mono at a chosen rate."""

from __future__ import annotations

import os
import wave
from pathlib import Path
from typing import Any

import av
import numpy as np

from duet.atomic import atomic_path
from duet.errors import MediaError
from duet.media.checks import as_float_audio, check_sample_rate, input_file


def write_wav(path: str | os.PathLike[str], audio: Any, sample_rate: int) -> Path:
    """Write 16-bit PCM WAV (atomically). `audio`: float [N] or [C, N] in [-1, 1], C <= 2."""
    waveform = as_float_audio(audio)
    rate = check_sample_rate(sample_rate, for_aac=False)
    # Scale by 2**15 (the same factor read_wav divides by) so a roundtrip is exact to half a
    # step; +1.0 saturates at 32767. Transposed to [N, C]: WAV interleaves channels.
    pcm = np.clip(np.rint(waveform.T * 32768.0), -32768, 32767).astype("<i2")
    with atomic_path(path, MediaError) as tmp:
        try:
            with wave.open(str(tmp), "wb") as wav:
                wav.setnchannels(waveform.shape[0])
                wav.setsampwidth(2)
                wav.setframerate(rate)
                wav.writeframes(pcm.tobytes())
        except (OSError, wave.Error) as exc:
            raise MediaError(f"writing {Path(path).name} failed: {exc}") from exc
    return Path(path)


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read an integer-PCM WAV as float32 in [-1, 1]: [N] if mono else [C, N], and its rate."""
    src = input_file(path, "a WAV file")
    try:
        with wave.open(str(src), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise MediaError(
            f"cannot read {src} as PCM WAV ({exc}); float or compressed WAVs need read_mp4-"
            "style decoding or conversion to 16-bit PCM first."
        ) from exc
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 3:  # 24-bit: widen to int32 by putting the 3 bytes in the top of 4
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        wide = np.zeros((len(b), 4), np.uint8)
        wide[:, 1:] = b
        data = wide.view("<i4").ravel().astype(np.float32) / 2.0**31
    elif width in (2, 4):
        dtype = np.dtype(f"<i{width}")
        data = np.frombuffer(raw, dtype).astype(np.float32) / float(2 ** (8 * width - 1))
    else:  # pragma: no cover - wave only yields widths 1..4
        raise MediaError(f"{src} uses {width}-byte samples; convert it to 16-bit PCM.")
    data = data.reshape(-1, channels).T
    return (data[0].copy() if channels == 1 else np.ascontiguousarray(data)), rate


def read_audio(path: str | os.PathLike[str], sample_rate: int) -> np.ndarray:
    """Any audio PyAV decodes (WAV, FLAC, MP3, the sound track of an MP4) as mono float32
    [N] at `sample_rate` (libswresample does the resampling)."""
    src = input_file(path, "a sound file (WAV, MP3, an MP4...)")
    try:
        with av.open(str(src), mode="r") as container:
            if not container.streams.audio:
                raise MediaError(f"{src} has no audio stream.")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=int(sample_rate))
            parts = []
            for frame in container.decode(container.streams.audio[0]):
                parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot decode audio from {src}: {exc}") from exc
    if not parts:
        raise MediaError(f"{src} has an audio stream but no decodable samples.")
    return np.concatenate(parts).astype(np.float32)
