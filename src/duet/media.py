"""Media files: MP4 (video + sound), WAV and PNG previews.

The one property this module exists to guarantee is **audio/video sync**: input audio
sample ``n`` must be heard at ``n / sample_rate`` seconds on the same timeline where video
frame ``k`` is shown at ``k / fps``.

Why that needs care: an AAC encoder cannot produce the first samples of a stream on their
own; it emits one extra frame of "priming" samples first (FFmpeg's native ``aac`` encoder:
1024 samples, i.e. 64 ms at 16 kHz, 23 ms at 44.1 kHz). If those samples were simply
written as the start of the track, every sound would be heard late by that amount. Instead
the delay has to be *signalled*:

* FFmpeg's encoder gives the priming packet a negative timestamp (PyAV shows the first
  audio packet with ``pts == -1024`` when the input frames start at ``pts == 0``), and
* the MP4 muxer turns that into an edit list (``elst`` box, ``media_time == 1024``) that
  tells players and decoders to skip the priming samples. libavformat applies it by
  attaching "skip samples" side data, so a PyAV decode already starts at ``pts == 0``
  with the priming removed.

`write_mp4` therefore feeds the encoder audio frames whose ``pts`` equal their sample
index (starting at 0) and asks the muxer for an edit list explicitly; it never pads or
shifts the waveform itself. `read_mp4` places decoded samples by their timestamps the way
a player does (drop anything before time 0, keep the rest where it belongs), so tests can
measure sync end to end. ``tests/test_media.py`` checks both paths.

Every writer is atomic: the file is produced under a temporary name in the destination
folder and moved into place with `os.replace` only once complete, so a failure never
leaves a truncated file at the requested path (and never clobbers an existing one).
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import wave
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import av
import numpy as np

from duet.atomic import atomic_path, check_writable
from duet.errors import InputError, MediaError

__all__ = [
    "AAC_SAMPLE_RATES",
    "CLIP_FORMATS",
    "Mp4Contents",
    "check_clip_path",
    "check_length",
    "frame_grid",
    "read_mp4",
    "read_wav",
    "save_png",
    "write_clip",
    "write_mp4",
    "write_wav",
]

#: Sample rates the AAC encoder accepts (MPEG-4 sampling frequency table).
AAC_SAMPLE_RATES: tuple[int, ...] = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
)

#: What `write_clip` writes for each output extension: FFmpeg's container name, or "wav"
#: for the sound alone. AVI is left out: it cannot signal the AAC priming, so its sound
#: plays late (by 22 ms at 16 kHz, measured).
CLIP_FORMATS: dict[str, str] = {".mp4": "mp4", ".mkv": "matroska", ".wav": "wav"}
# Muxer options. MP4: use_editlist=1 always signals the AAC priming (and any B-frame delay)
# with an edit list instead of leaving it to the muxer's heuristics. Matroska signals the
# priming on its own (CodecDelay).
_CONTAINER_OPTIONS = {"mp4": {"movflags": "+faststart", "use_editlist": "1"}, "matroska": {}}
# A header's length may exceed the samples by the codec's padding (an AAC frame, a last
# video frame); `check_length` allows this much, and the pipeline checks the exact length.
_LENGTH_SLACK_S = 1.0

_VIDEO_CODECS = ("libx264", "mpeg4")  # preference order; mpeg4 is built into every FFmpeg
_CHANNEL_LAYOUTS = {1: "mono", 2: "stereo"}
_AUDIO_BITRATE_PER_CHANNEL = 96_000
_BT709 = 1  # AVCOL_SPC_BT709 == AVCOL_PRI_BT709 == AVCOL_TRC_BT709 == SWS_CS_ITU709
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG: what yuv420p players assume when untagged


class Mp4Contents(NamedTuple):
    """What `read_mp4` returns; unpacks as ``frames, audio, fps, sample_rate``."""

    frames: np.ndarray  # uint8 [T, H, W, 3], presentation order
    audio: np.ndarray  # float32 [N] mono; sample n plays at n / sample_rate after frame 0
    fps: float
    sample_rate: int  # 0 when the file has no audio stream (then `audio` is empty)


# --------------------------------------------------------------------------- validation


def _to_numpy(x: Any, what: str) -> np.ndarray:
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


def _as_uint8_frames(video: Any, what: str = "video") -> np.ndarray:
    """Normalise a video to contiguous uint8 [T, H, W, 3].

    Accepted layouts: [T, H, W, 3] (channels last, what image libraries use) or
    [3, T, H, W] (channels first, what the model's VAE decoder emits). The layout is read
    from the shape: a trailing 3 means channels last. The value range is read from the
    dtype: uint8 means 0..255, floating point means [-1, 1] (values outside are clipped).
    """
    arr = _to_numpy(video, what)
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


def _as_float_audio(audio: Any) -> np.ndarray:
    """Normalise a waveform to float32 [C, N] with C in {1, 2}, clipped to [-1, 1].

    [N] is mono; [C, N] is channels first. Clipping (rather than rejecting) values just
    outside [-1, 1] is deliberate: generated audio overshoots slightly all the time.
    """
    arr = _to_numpy(audio, "audio")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] not in _CHANNEL_LAYOUTS:
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


def _check_fps(fps: Any) -> Fraction:
    try:
        rate = Fraction(fps).limit_denominator(1001 * 1000)  # exact for 24, 30000/1001, ...
    except (TypeError, ValueError) as exc:
        raise InputError(f"fps={fps!r} is not a number; pass e.g. fps=24.") from exc
    if rate <= 0:
        raise InputError(f"fps={fps!r} must be positive; pass e.g. fps=24.")
    return rate


def _check_sample_rate(sample_rate: Any, *, for_aac: bool) -> int:
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


# ------------------------------------------------------------------------------- paths


def _clip_format(path: str | os.PathLike[str]) -> str:
    fmt = CLIP_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        suffix = Path(path).suffix or "no extension"
        raise MediaError(f"cannot write a clip as {Path(path).name!r} ({suffix}); use one of "
                         ".mp4 or .mkv (video + sound), or .wav (the sound alone).")
    return fmt


def check_clip_path(path: str | os.PathLike[str]) -> str:
    """The container `write_clip` writes for `path` (from its extension), after checking
    that it can be written (`duet.atomic.check_writable`), so a long run fails in a second on
    a bad output path instead of at the end; MediaError otherwise."""
    if Path(path).is_dir():
        raise MediaError(f"{path} is a folder; pass a file path such as "
                         f"{Path(path) / 'clip.mp4'}.")
    check_writable(path, MediaError)  # a device or a FIFO is named as such, whatever its name
    return _clip_format(path)


def _input_file(path: str | os.PathLike[str], what: str) -> Path:
    """`path` if it is a file that can be read, else a MediaError that says what it is."""
    src = Path(path)
    if src.is_dir():
        raise MediaError(f"{src} is a folder; expected {what}.")
    if not src.exists():
        raise MediaError(f"{src} does not exist; check the path.")
    if not src.is_file():
        raise MediaError(f"{src} is not a regular file; expected {what}.")
    return src


def check_length(path: str | os.PathLike[str], max_seconds: float) -> None:
    """Refuse a media file longer than `max_seconds`, from its header alone (nothing is
    decoded), so an over-long input is refused before any work; a file whose header states
    no length passes (the pipeline checks the decoded frames or samples)."""
    src = _input_file(path, "a media file")
    try:
        with av.open(str(src), mode="r") as container:
            seconds = container.duration / av.time_base if container.duration else None
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot open {src} as a media file: {exc}") from exc
    if seconds is not None and seconds > max_seconds + _LENGTH_SLACK_S:
        raise MediaError(f"{src} is {seconds:.1f} s long; at most {max_seconds:g} s can be used: "
                         f"trim it first (e.g. ffmpeg -i {src.name} -t {max_seconds:g} "
                         f"short{src.suffix}).")


def write_clip(path: str | os.PathLike[str], video: Any, audio: Any, fps: float | Fraction,
               sample_rate: int) -> Path:
    """Write a clip in the container its extension names (`CLIP_FORMATS`): MP4 or Matroska
    with video and sound (`write_mp4`), or WAV with the sound alone (`write_wav`)."""
    fmt = _clip_format(path)
    if fmt == "wav":
        return write_wav(path, audio, sample_rate)
    return write_mp4(path, video, audio, fps, sample_rate, container=fmt)


# ------------------------------------------------------------------------------- MP4


def _pick_video_codec(requested: str | None) -> str:
    if requested is not None:
        if requested not in _VIDEO_CODECS:
            raise InputError(
                f"video_codec={requested!r} is not supported; use one of {_VIDEO_CODECS} "
                "or None to pick automatically."
            )
        if requested not in av.codecs_available:
            raise MediaError(
                f"this PyAV build has no {requested!r} encoder; pass video_codec=None to use "
                "the best available one."
            )
        return requested
    for name in _VIDEO_CODECS:
        if name in av.codecs_available:
            return name
    raise MediaError(  # pragma: no cover - mpeg4 ships with every FFmpeg build
        "PyAV has neither a libx264 nor an mpeg4 encoder; reinstall av from PyPI wheels."
    )


def _add_video_stream(
    container: Any, codec: str, fps: Fraction, width: int, height: int, crf: int
) -> Any:
    options = {"crf": str(crf), "preset": "medium"} if codec == "libx264" else {}
    stream = container.add_stream(codec, rate=fps, options=options)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    ctx = stream.codec_context
    ctx.time_base = 1 / fps
    # Tag BT.709 limited range so players and our reader convert back with the same
    # matrix we convert with (untagged streams get guessed differently by size).
    ctx.colorspace = ctx.color_primaries = ctx.color_trc = _BT709
    ctx.color_range = _LIMITED_RANGE
    if codec != "libx264":
        # MPEG-4 part 2 has no CRF; a fixed quantiser is its constant-quality mode.
        # crf 18 -> q 3 (visually clean); clamp to the codec's 2..31 scale.
        ctx.qscale = True
        ctx.global_quality = max(2, min(31, round(crf / 6))) * 118  # FF_QP2LAMBDA
    return stream


def _encode_video_frame(stream: Any, rgb: np.ndarray, index: int, fps: Fraction) -> list[Any]:
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    frame = frame.reformat(
        format="yuv420p", dst_colorspace=_BT709, dst_color_range=_LIMITED_RANGE
    )
    frame.pts = index  # frame k is shown at k / fps
    frame.time_base = 1 / fps
    return stream.encode(frame)


def _encode_audio_chunk(stream: Any, chunk: np.ndarray, start: int, sample_rate: int) -> list[Any]:
    """Encode samples `start .. start + len` (float32 [C, n]); `pts` is the sample index.

    Starting at pts 0 is what makes the encoder mark its priming packet with a negative
    pts, which the MP4 muxer turns into an edit list. PyAV re-chunks to the AAC frame
    size (1024) internally and keeps the timestamps sample-exact.
    """
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(chunk), format="fltp", layout=_CHANNEL_LAYOUTS[chunk.shape[0]]
    )
    frame.sample_rate = sample_rate
    frame.pts = start
    frame.time_base = Fraction(1, sample_rate)
    return stream.encode(frame)


def _encode_streams(
    container: Any,
    codec: str,
    frames: np.ndarray,
    fps: Fraction,
    crf: int,
    waveform: np.ndarray | None,
    sample_rate: int | None,
) -> None:
    """Encode and mux all frames and samples, interleaved, then flush both encoders."""
    num_frames, height, width, _ = frames.shape
    vstream = _add_video_stream(container, codec, fps, width, height, crf)
    astream = None
    if waveform is not None:
        channels = waveform.shape[0]
        astream = container.add_stream("aac", rate=sample_rate)
        astream.layout = _CHANNEL_LAYOUTS[channels]
        astream.bit_rate = _AUDIO_BITRATE_PER_CHANNEL * channels
    # After frame k, encode the audio that plays before frame k + 1, so the muxer never
    # has to buffer one stream while waiting for the other.
    audio_done = 0
    for k in range(num_frames):
        container.mux(_encode_video_frame(vstream, frames[k], k, fps))
        if waveform is not None:
            until = min(waveform.shape[1], int((k + 1) * sample_rate / fps))
            if until > audio_done:
                container.mux(_encode_audio_chunk(
                    astream, waveform[:, audio_done:until], audio_done, sample_rate
                ))
                audio_done = until
    if waveform is not None and audio_done < waveform.shape[1]:
        tail = waveform[:, audio_done:]
        container.mux(_encode_audio_chunk(astream, tail, audio_done, sample_rate))
    container.mux(vstream.encode(None))
    if astream is not None:
        container.mux(astream.encode(None))


def write_mp4(
    path: str | os.PathLike[str],
    video: Any,
    audio: Any | None,
    fps: float | Fraction,
    sample_rate: int | None = None,
    *,
    crf: int = 18,
    video_codec: str | None = None,
    container: str = "mp4",
) -> Path:
    """Write an MP4 with H.264 video (MPEG-4 part 2 if libx264 is missing) and AAC audio.

    Args:
        path: Output file; its folder is created if needed. Written atomically.
        video: uint8 [T, H, W, 3] (0..255), or float [T, H, W, 3] / [3, T, H, W] in
            [-1, 1]; numpy array or torch tensor on any device. H and W must be even
            (yuv420p stores colour at half resolution); Duet's pipeline sizes are
            multiples of 32, so odd sizes are rejected rather than silently padded.
        audio: float waveform in [-1, 1], [N] mono or [C, N] with C in {1, 2}; or None
            for a silent video. Its length is kept as is (not trimmed to the video).
        fps: Frame rate, e.g. 24 or Fraction(30000, 1001).
        sample_rate: Audio rate in Hz; must be an AAC rate (see `AAC_SAMPLE_RATES`).
            Required when `audio` is given, ignored otherwise.
        crf: libx264 constant rate factor (lower = better, 18 is visually lossless-ish).
        video_codec: Force "libx264" or "mpeg4"; None picks the best available.
        container: "mp4", or "matroska" for an MKV file with the same streams.

    Returns:
        The output path.

    Raises:
        InputError: a bad array, size, rate or option (checked before anything is written).
        MediaError: encoding or writing failed; no partial file is left at `path`.
    """
    frames = _as_uint8_frames(video)
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise InputError(
            f"video size {width}x{height} (WxH) has an odd side, which yuv420p cannot store; "
            "crop or pad to even sizes (Duet's pipeline uses multiples of 32)."
        )
    rate = _check_fps(fps)
    waveform: np.ndarray | None = None
    if audio is not None:
        if sample_rate is None:
            raise InputError("sample_rate is required when audio is given, e.g. 16000.")
        sample_rate = _check_sample_rate(sample_rate, for_aac=True)
        waveform = _as_float_audio(audio)
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise InputError(f"crf={crf!r} must be an int in 0..51 (18 is a good default).")
    codec = _pick_video_codec(video_codec)
    if container not in _CONTAINER_OPTIONS:
        raise InputError(f"container={container!r} is not supported; use one of "
                         f"{sorted(_CONTAINER_OPTIONS)}.")

    with atomic_path(path, MediaError) as tmp:
        try:
            muxer = av.open(str(tmp), mode="w", format=container,
                            options=_CONTAINER_OPTIONS[container])
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot open {path} for writing: {exc}") from exc
        try:
            _encode_streams(muxer, codec, frames, rate, crf, waveform, sample_rate)
            muxer.close()  # writes the trailer (moov); its errors must not be swallowed
        except av.FFmpegError as exc:
            full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
            raise MediaError(f"writing {path} failed: {exc}"
                             + ("; free some disk space." if full else ".")) from exc
        finally:
            with contextlib.suppress(Exception):
                muxer.close()  # no-op after a successful close; releases on failure
    return Path(path)


def _frame_samples(frame: Any) -> np.ndarray:
    """Decoded audio frame -> float32 [C, n] whatever the decoder's sample format."""
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:  # packed: [1, n * C], interleaved
        data = data.reshape(-1, channels).T
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    return data.astype(np.float32)


def read_mp4(path: str | os.PathLike[str]) -> Mp4Contents:
    """Decode an MP4 (or any file PyAV reads) into frames and a timeline-aligned waveform.

    The timeline's origin is the first video frame, so frame ``k`` is at ``k / fps`` and
    ``audio[n]`` plays at ``n / sample_rate``. Each decoded audio frame is placed at its
    own timestamp, as a player would: libavformat already applies the MP4 edit list (it
    drops AAC priming samples), anything still before time 0 is dropped, a late start is
    filled with silence, and the tail is trimmed to the stream's signalled duration (the
    encoder's final padding). Multi-channel audio is averaged to mono.

    Returns:
        `Mp4Contents(frames, audio, fps, sample_rate)`; for a file without audio,
        ``audio`` is empty and ``sample_rate`` is 0.
    """
    src = _input_file(path, "a video file such as clip.mp4")
    try:
        container = av.open(str(src), mode="r")
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot open {src} as a media file: {exc}") from exc
    with container:
        if not container.streams.video:
            raise MediaError(f"{src} has no video stream; use read_wav for audio-only files.")
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if container.streams.audio else None
        frames: list[np.ndarray] = []
        frame_times: list[Fraction] = []
        audio_parts: list[tuple[Fraction | None, np.ndarray]] = []
        wanted = [s for s in (vstream, astream) if s is not None]
        try:
            for packet in container.demux(*wanted):
                for frame in packet.decode():
                    if packet.stream.index == vstream.index:
                        frames.append(frame.to_ndarray(format="rgb24"))
                        if frame.pts is not None:
                            frame_times.append(frame.pts * frame.time_base)
                    else:
                        start = None if frame.pts is None else frame.pts * frame.time_base
                        audio_parts.append((start, _frame_samples(frame).mean(axis=0)))
        except av.FFmpegError as exc:
            raise MediaError(f"decoding {src} failed: {exc}; the file may be corrupt.") from exc
        if not frames:
            raise MediaError(f"{src} has a video stream but no decodable frames.")

        rate = vstream.average_rate or vstream.guessed_rate
        if rate:
            fps = float(rate)
        elif len(frame_times) > 1:
            fps = float((len(frame_times) - 1) / (frame_times[-1] - frame_times[0]))
        else:
            fps = 0.0
        origin = min(frame_times) if frame_times else Fraction(0)

        if astream is None or not audio_parts:
            return Mp4Contents(np.stack(frames), np.zeros(0, np.float32), fps, 0)
        sample_rate = int(astream.rate)
        end = None
        if astream.duration is not None and astream.time_base is not None:
            first = astream.start_time or 0
            end = round(((first + astream.duration) * astream.time_base - origin) * sample_rate)
        audio = _place_audio(audio_parts, origin, sample_rate, end)
    return Mp4Contents(np.stack(frames), audio, fps, sample_rate)


def _place_audio(
    parts: list[tuple[Fraction | None, np.ndarray]],
    origin: Fraction,
    sample_rate: int,
    end: int | None,
) -> np.ndarray:
    """Lay decoded chunks onto one buffer by timestamp; drop what falls before 0 or after `end`."""
    placed: list[tuple[int, np.ndarray]] = []
    cursor = 0
    for start_time, samples in parts:
        start = cursor if start_time is None else round((start_time - origin) * sample_rate)
        cursor = start + len(samples)
        if start < 0:
            samples, start = samples[-start:], 0
        if len(samples):
            placed.append((start, samples))
    length = max((s + len(x) for s, x in placed), default=0)
    if end is not None:
        length = max(0, min(length, end))
    out = np.zeros(length, np.float32)
    for start, samples in placed:
        stop = min(length, start + len(samples))
        if stop > start:
            out[start:stop] = samples[: stop - start]
    return out


# ------------------------------------------------------------------------------- WAV


def write_wav(path: str | os.PathLike[str], audio: Any, sample_rate: int) -> Path:
    """Write 16-bit PCM WAV (atomically). `audio`: float [N] or [C, N] in [-1, 1], C <= 2."""
    waveform = _as_float_audio(audio)
    rate = _check_sample_rate(sample_rate, for_aac=False)
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
    src = _input_file(path, "a WAV file")
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


# ------------------------------------------------------------------------ previews


def read_audio(path: str | os.PathLike[str], sample_rate: int) -> np.ndarray:
    """Any audio PyAV decodes (WAV, FLAC, MP3, the sound track of an MP4) as mono float32
    [N] at `sample_rate` (libswresample does the resampling)."""
    src = _input_file(path, "a sound file (WAV, MP3, an MP4...)")
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
    video = _as_uint8_frames(frames, "frames")
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
    arr = _to_numpy(image, "image")
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise InputError(
            f"image has shape {tuple(arr.shape)}; expected [H, W, 3] (use frame_grid to "
            "tile a video, or video[k] for one frame)."
        )
    rgb = _as_uint8_frames(arr[None], "image")[0]
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
