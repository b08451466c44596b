"""MP4 and Matroska files with video and sound: writing and reading.

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
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import av
import numpy as np

from duet.atomic import atomic_path
from duet.errors import InputError, MediaError
from duet.media.checks import (CHANNEL_LAYOUTS, as_float_audio, as_uint8_frames, check_fps,
                               check_sample_rate, input_file)

# Muxer options. MP4: use_editlist=1 always signals the AAC priming (and any B-frame delay)
# with an edit list instead of leaving it to the muxer's heuristics. Matroska signals the
# priming on its own (CodecDelay).
_CONTAINER_OPTIONS = {"mp4": {"movflags": "+faststart", "use_editlist": "1"}, "matroska": {}}
_VIDEO_CODECS = ("libx264", "mpeg4")  # preference order; mpeg4 is built into every FFmpeg
_AUDIO_BITRATE_PER_CHANNEL = 96_000
_BT709 = 1  # AVCOL_SPC_BT709 == AVCOL_PRI_BT709 == AVCOL_TRC_BT709 == SWS_CS_ITU709
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG: what yuv420p players assume when untagged


class Mp4Contents(NamedTuple):
    """What `read_mp4` returns; unpacks as ``frames, audio, fps, sample_rate``."""

    frames: np.ndarray  # uint8 [T, H, W, 3], presentation order
    audio: np.ndarray  # float32 [N] mono; sample n plays at n / sample_rate after frame 0
    fps: float
    sample_rate: int  # 0 when the file has no audio stream (then `audio` is empty)


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
        np.ascontiguousarray(chunk), format="fltp", layout=CHANNEL_LAYOUTS[chunk.shape[0]]
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
        astream.layout = CHANNEL_LAYOUTS[channels]
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
    frames = as_uint8_frames(video)
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise InputError(
            f"video size {width}x{height} (WxH) has an odd side, which yuv420p cannot store; "
            "crop or pad to even sizes (Duet's pipeline uses multiples of 32)."
        )
    rate = check_fps(fps)
    waveform: np.ndarray | None = None
    if audio is not None:
        if sample_rate is None:
            raise InputError("sample_rate is required when audio is given, e.g. 16000.")
        sample_rate = check_sample_rate(sample_rate, for_aac=True)
        waveform = as_float_audio(audio)
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
    src = input_file(path, "a video file such as clip.mp4")
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
