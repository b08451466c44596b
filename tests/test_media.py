"""Tests for duet.media: A/V sync of written MP4s, input validation, atomic writes, WAV/PNG.

Sync is checked two ways: through `read_mp4` (our own timeline placement) and through raw
PyAV packets/frames plus the MP4 edit list itself, so a bug in `read_mp4` cannot hide a
wrongly written file.
"""

from __future__ import annotations

import struct
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from duet import media
from duet.errors import InputError, MediaError
from duet.media import frame_grid, mp4, read_mp4, read_wav, save_png, write_mp4, write_wav

FPS = 24
CLICK_S = 0.002  # 2 ms burst
TOLERANCE_S = 0.005


def _clip(fps: int, num_frames: int, white: int, size: int = 64) -> np.ndarray:
    """Black frames with one white frame at index `white`."""
    video = np.zeros((num_frames, size, size, 3), np.uint8)
    video[white] = 255
    return video


def _click(sample_rate: int, seconds: float, at_s: float, channels: int = 1) -> np.ndarray:
    """Silence with one 2 ms burst whose first sample is sample round(at_s * rate)."""
    audio = np.zeros((channels, round(seconds * sample_rate)), np.float32)
    start = round(at_s * sample_rate)
    audio[:, start : start + max(1, round(CLICK_S * sample_rate))] = 0.8
    return audio[0] if channels == 1 else audio


def _onset_s(audio: np.ndarray, sample_rate: int) -> float:
    """Time of the first sample above half the peak (robust to AAC ringing and pre-echo)."""
    level = np.abs(audio)
    assert level.max() > 0.3, "click vanished in encoding"
    return int(np.argmax(level > 0.5 * level.max())) / sample_rate


def _brightness(frames: np.ndarray) -> np.ndarray:
    return frames.reshape(len(frames), -1).mean(axis=1)


def _edit_lists(path: Path) -> dict[str, list[tuple[int, int]]]:
    """Parse the MP4 box tree: handler type ('vide'/'soun') -> [(segment_duration, media_time)]."""
    data = path.read_bytes()

    def boxes(start: int, end: int):
        while start + 8 <= end:
            size, kind = struct.unpack(">I4s", data[start : start + 8])
            header = 8
            if size == 1:
                size, header = struct.unpack(">Q", data[start + 8 : start + 16])[0], 16
            elif size == 0:
                size = end - start
            yield kind.decode("latin-1"), start + header, start + size
            start += size

    def child(start: int, end: int, kind: str):
        return next(((s, e) for k, s, e in boxes(start, end) if k == kind), None)

    moov = child(0, len(data), "moov")
    assert moov is not None, "no moov box"
    result: dict[str, list[tuple[int, int]]] = {}
    for kind, start, end in boxes(*moov):
        if kind != "trak":
            continue
        mdia = child(start, end, "mdia")
        hdlr = child(*mdia, "hdlr")
        # hdlr payload: version/flags (4), pre_defined (4), handler type (4)
        handler = data[hdlr[0] + 8 : hdlr[0] + 12].decode("latin-1")
        entries: list[tuple[int, int]] = []
        edts = child(start, end, "edts")
        if edts is not None:
            s, _ = child(*edts, "elst")
            version = data[s]
            (count,) = struct.unpack(">I", data[s + 4 : s + 8])
            fmt, step = (">IiI", 12) if version == 0 else (">QqI", 20)
            for i in range(count):
                entry = data[s + 8 + i * step : s + 8 + (i + 1) * step]
                duration, media_time, _rate = struct.unpack(fmt, entry)
                entries.append((duration, media_time))
        result[handler] = entries
    return result


# ---------------------------------------------------------------------------------- sync


def test_acceptance_click_at_white_frame_is_in_sync(tmp_path: Path) -> None:
    """The issue's acceptance test: 2 s, 64x64, 24 fps, click planted at frame 30 = 1.25 s."""
    sample_rate = 16000
    at = 30 / FPS
    path = write_mp4(
        tmp_path / "sync.mp4", _clip(FPS, 2 * FPS, white=30), _click(sample_rate, 2.0, at),
        FPS, sample_rate,
    )
    frames, audio, fps, rate = read_mp4(path)

    assert frames.shape == (48, 64, 64, 3) and frames.dtype == np.uint8
    assert fps == FPS and rate == sample_rate
    bright = _brightness(frames)
    assert int(np.argmax(bright)) == 30 and bright[30] > 240
    assert np.delete(bright, 30).max() < 15
    offset = _onset_s(audio, rate) - at
    print(f"\nacceptance 16 kHz click @ frame 30: offset {offset * 1e3:+.3f} ms")
    assert abs(offset) <= TOLERANCE_S
    assert len(audio) == 2 * sample_rate  # priming dropped at the head, padding at the tail


@pytest.mark.parametrize(
    ("sample_rate", "at", "channels", "codec"),
    [
        (16000, 30 / FPS, 1, "mpeg4"),  # fallback codec: no B-frames, no video edit delay
        (24000, 0.8137, 1, "libx264"),  # not on a frame boundary
        (44100, 1.0371, 1, "libx264"),  # not a multiple of 1024 samples either
        (48000, 0.4219, 2, "libx264"),  # stereo
    ],
)
def test_click_sync_other_rates_and_times(
    tmp_path: Path, sample_rate: int, at: float, channels: int, codec: str
) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} encoder not in this PyAV build")
    audio = _click(sample_rate, 2.0, at, channels)
    path = write_mp4(
        tmp_path / "sync.mp4", _clip(FPS, 2 * FPS, white=30), audio, FPS, sample_rate,
        video_codec=codec,
    )
    frames, decoded, _, rate = read_mp4(path)
    assert int(np.argmax(_brightness(frames))) == 30
    offset = _onset_s(decoded, rate) - round(at * sample_rate) / sample_rate
    label = f"{codec} {sample_rate} Hz x{channels} click @ {at:.4f} s"
    print(f"\n{label}: offset {offset * 1e3:+.3f} ms")
    assert abs(offset) <= TOLERANCE_S
    assert len(decoded) == audio.shape[-1]


def test_priming_is_signalled_not_baked_in(tmp_path: Path) -> None:
    """Independent of read_mp4: raw PyAV timestamps and the MP4 edit list show the delay."""
    sample_rate = 16000
    at = 30 / FPS
    path = write_mp4(
        tmp_path / "raw.mp4", _clip(FPS, 2 * FPS, white=30), _click(sample_rate, 2.0, at),
        FPS, sample_rate,
    )

    # 1. The encoder's priming packet carries a negative pts (-1024 for FFmpeg's aac).
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        packets = [p for p in container.demux(stream) if p.size]
    priming = -packets[0].pts
    assert packets[0].pts < 0 and packets[1].pts == 0
    assert packets[0].time_base == Fraction(1, sample_rate)

    # 2. The muxer wrote an edit list whose media_time skips exactly those samples.
    edits = _edit_lists(path)
    assert edits["soun"] and edits["soun"][0][1] == priming
    assert edits["vide"], "video track should carry an edit list too"

    # 3. A plain PyAV decode starts at time 0 with the priming already removed, the click
    #    lands at its planted time, and the white frame is shown at 30 / 24 s.
    with av.open(str(path)) as container:
        audio_frames = list(container.decode(audio=0))
    with av.open(str(path)) as container:
        video_frames = list(container.decode(video=0))
    assert audio_frames[0].time == 0.0 and video_frames[0].time == 0.0
    raw = np.concatenate([f.to_ndarray()[0] for f in audio_frames])
    offset = _onset_s(raw, sample_rate) - at
    print(f"\nraw PyAV decode: first audio packet pts {-priming}, elst {edits['soun']}, "
          f"click offset {offset * 1e3:+.3f} ms")
    assert abs(offset) <= TOLERANCE_S
    white = max(video_frames, key=lambda f: f.to_ndarray(format="rgb24").mean())
    assert white.time == pytest.approx(at)

    # 4. Control: ignoring the edit list exposes the priming as a lag of exactly `priming`
    #    samples, i.e. the waveform itself was not shifted to compensate.
    with av.open(str(path), options={"ignore_editlist": "1"}) as container:
        lagged = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    lag = _onset_s(lagged, sample_rate) - _onset_s(raw, sample_rate)
    assert lag == pytest.approx(priming / sample_rate)


# ------------------------------------------------------------------------ inputs/outputs


def test_silent_video(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "silent.mp4", _clip(FPS, 12, white=3), None, FPS)
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 0 and len(container.streams.video) == 1
    frames, audio, fps, rate = read_mp4(path)
    assert frames.shape[0] == 12 and int(np.argmax(_brightness(frames))) == 3
    assert audio.shape == (0,) and audio.dtype == np.float32 and rate == 0 and fps == FPS


def test_float_and_torch_video_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = np.repeat(rng.integers(40, 215, (1, 8, 8, 3)), 8, axis=1).repeat(8, axis=2)
    video = np.repeat(base, 4, axis=0).astype(np.uint8)  # [4, 64, 64, 3] flat 8x8 blocks
    as_float = torch.from_numpy(video).float() / 127.5 - 1.0
    for name, value in {
        "uint8_torch": torch.from_numpy(video),
        "float_thwc": as_float.numpy(),
        "float_cthw": as_float.permute(3, 0, 1, 2).to(torch.bfloat16),
    }.items():
        frames, *_ = read_mp4(write_mp4(tmp_path / f"{name}.mp4", value, None, FPS))
        assert frames.shape == video.shape, name
        assert np.abs(frames.astype(int) - video).mean() < 4, name


def test_audio_shorter_than_video_and_fractional_fps(tmp_path: Path) -> None:
    audio = _click(16000, 0.5, 0.25)
    fps = Fraction(30000, 1001)
    path = write_mp4(tmp_path / "short.mp4", _clip(30, 30, white=7), audio, fps, 16000)
    frames, decoded, read_fps, _ = read_mp4(path)
    assert len(frames) == 30 and read_fps == pytest.approx(float(fps))
    assert len(decoded) == len(audio)
    assert abs(_onset_s(decoded, 16000) - 0.25) <= TOLERANCE_S


@pytest.mark.parametrize(
    ("video", "audio", "kwargs", "needle"),
    [
        (np.zeros((4, 63, 64, 3), np.uint8), None, {}, "odd side"),
        (np.zeros((4, 64, 65, 3), np.uint8), None, {}, "odd side"),
        (np.zeros((64, 64, 3), np.uint8), None, {}, "expected [T, H, W, 3]"),
        (np.zeros((4, 64, 64, 4), np.uint8), None, {}, "expected [T, H, W, 3]"),
        (np.zeros((0, 64, 64, 3), np.uint8), None, {}, "empty"),
        (np.zeros((4, 64, 64, 3), np.int32), None, {}, "dtype"),
        (np.full((4, 64, 64, 3), np.nan, np.float32), None, {}, "NaN"),
        (None, np.array([0.0, np.nan, 0.0], np.float32), {}, "NaN"),
        (None, np.array([0.0, np.inf], np.float32), {}, "NaN or infinite"),
        (None, np.zeros((2, 3, 100), np.float32), {}, "[C, N]"),
        (None, np.zeros((3, 100), np.float32), {}, "C = 1 or 2"),
        (None, np.zeros((1000, 2), np.float32), {}, "audio.T"),
        (None, np.zeros(0, np.float32), {}, "empty"),
        (None, np.zeros(100, np.int16), {}, "float waveform"),
        (None, np.zeros(100, np.float32), {"sample_rate": 22000}, "resample"),
        (None, np.zeros(100, np.float32), {"sample_rate": None}, "sample_rate is required"),
        (None, None, {"fps": 0}, "fps"),
        (None, None, {"crf": 60}, "crf"),
        (None, None, {"video_codec": "vp9"}, "video_codec"),
    ],
)
def test_bad_inputs_raise_input_error(
    tmp_path: Path, video, audio, kwargs: dict, needle: str
) -> None:
    video = np.zeros((4, 64, 64, 3), np.uint8) if video is None else video
    args = {"fps": FPS, "sample_rate": 16000, **kwargs}
    target = tmp_path / "bad.mp4"
    with pytest.raises(InputError) as info:
        write_mp4(target, video, audio, args.pop("fps"), args.pop("sample_rate"), **args)
    assert needle in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.mp4"
    calls = []
    real = mp4._encode_audio_chunk

    def broken(stream, chunk, start, sample_rate):
        calls.append(start)
        if len(calls) == 5:  # video frames and some audio are already in the file
            raise RuntimeError("disk on fire")
        return real(stream, chunk, start, sample_rate)

    monkeypatch.setattr(mp4, "_encode_audio_chunk", broken)
    args = (_clip(FPS, 48, white=30), _click(16000, 2.0, 1.25), FPS, 16000)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_mp4(target, *args)
    assert list(tmp_path.iterdir()) == []

    target.write_bytes(b"previous result")  # an existing file survives a failed rewrite
    calls.clear()
    with pytest.raises(RuntimeError):
        write_mp4(target, *args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    assert target.read_bytes() == b"previous result"


def test_creates_parent_folders(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "a" / "b" / "clip.mp4", _clip(FPS, 4, white=0), None, FPS)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["clip.mp4"]


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="does not exist"):
        read_mp4(tmp_path / "missing.mp4")
    with pytest.raises(MediaError, match="is a folder; expected a video file"):
        read_mp4(tmp_path)
    with pytest.raises(MediaError, match="is a folder; expected a sound file"):
        media.read_audio(tmp_path, 16000)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(MediaError):
        read_mp4(junk)
    with pytest.raises(MediaError, match="does not exist"):
        read_wav(tmp_path / "missing.wav")


def test_write_clip_writes_the_container_its_extension_names(tmp_path: Path) -> None:
    video, audio = _clip(FPS, 2 * FPS, white=30), _click(16000, 2.0, 30 / FPS)
    for name, fmt in (("c.mp4", "mp4"), ("c.MKV", "matroska")):
        path = media.write_clip(tmp_path / name, video, audio, FPS, 16000)
        with av.open(str(path)) as container:
            assert fmt in container.format.name
        frames, decoded, _, rate = read_mp4(path)
        assert int(np.argmax(_brightness(frames))) == 30  # and the sound is still in sync:
        assert abs(_onset_s(decoded, rate) - 30 / FPS) <= TOLERANCE_S
    back, rate = read_wav(media.write_clip(tmp_path / "c.wav", video, audio, FPS, 16000))
    assert rate == 16000 and back.shape == audio.shape  # the sound alone
    for name in ("c.avi", "c"):
        with pytest.raises(MediaError, match=r"\.mp4 or \.mkv .*\.wav"):
            media.write_clip(tmp_path / name, video, audio, FPS, 16000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.MKV", "c.mp4", "c.wav"]


def test_check_clip_path_fails_fast_without_writing(tmp_path: Path) -> None:
    assert media.check_clip_path(tmp_path / "new" / "x.wav") == "wav"
    with pytest.raises(MediaError, match="is a folder; pass a file path such as .*clip.mp4"):
        media.check_clip_path(tmp_path)
    with pytest.raises(MediaError, match="character device"):
        media.check_clip_path("/dev/null")
    with pytest.raises(MediaError, match="cannot write a clip as 'x.avi'"):
        media.check_clip_path(tmp_path / "x.avi")
    assert list(tmp_path.iterdir()) == []


def test_check_length_reads_the_header_only(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "long.wav", np.zeros(8000 * 75, np.float32), 8000)
    mp4 = write_mp4(tmp_path / "long.mp4", np.zeros((150, 16, 16, 3), np.uint8), None, 2)
    for path, seconds in ((wav, "75.0"), (mp4, "75.0")):
        media.check_length(path, 80)
        with pytest.raises(MediaError, match=f"is {seconds} s long; at most 60 s"):
            media.check_length(path, 60)
    with pytest.raises(MediaError, match="is a folder"):
        media.check_length(tmp_path, 60)


# ---------------------------------------------------------------------------------- WAV


@pytest.mark.parametrize("channels", [1, 2])
def test_wav_roundtrip(tmp_path: Path, channels: int) -> None:
    rng = np.random.default_rng(1)
    audio = rng.uniform(-1, 1, (channels, 4000)).astype(np.float32)
    audio = audio[0] if channels == 1 else audio
    path = write_wav(tmp_path / "x.wav", torch.from_numpy(audio), 24000)
    back, rate = read_wav(path)
    assert rate == 24000 and back.shape == audio.shape and back.dtype == np.float32
    assert np.abs(back - audio).max() <= 0.5 / 32768 + 1e-9
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (channels, 2, 24000)


def test_wav_clips_and_validates(tmp_path: Path) -> None:
    back, _ = read_wav(write_wav(tmp_path / "loud.wav", np.array([2.0, -2.0, 0.5]), 8000))
    assert back[0] == pytest.approx(32767 / 32768) and back[1] == -1.0 and back[2] == 0.5
    with pytest.raises(InputError, match="NaN"):
        write_wav(tmp_path / "nan.wav", np.array([np.nan]), 8000)
    with pytest.raises(InputError, match="sample_rate"):
        write_wav(tmp_path / "rate.wav", np.zeros(10), 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loud.wav"]


def test_wav_write_failure_is_atomic(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "x.wav"
    target.write_bytes(b"old")

    def boom(self, data):
        raise OSError("no space left")

    monkeypatch.setattr(wave.Wave_write, "writeframes", boom)
    with pytest.raises(MediaError, match="no space left"):
        write_wav(target, np.zeros(100, np.float32), 16000)
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"] and target.read_bytes() == b"old"


# ------------------------------------------------------------------------------ previews


def test_frame_grid_layout() -> None:
    frames = np.stack([np.full((4, 6, 3), 10 * (i + 1), np.uint8) for i in range(5)])
    grid = frame_grid(frames, cols=3)
    assert grid.shape == (8, 18, 3) and grid.dtype == np.uint8
    assert grid[0, 0, 0] == 10 and grid[0, 6, 0] == 20 and grid[0, 12, 0] == 30
    assert grid[4, 0, 0] == 40 and grid[4, 6, 0] == 50 and grid[4, 12, 0] == 0  # empty cell
    assert frame_grid(frames, cols=10).shape == (4, 30, 3)
    assert frame_grid(torch.zeros(3, 2, 4, 6), cols=2).shape == (4, 12, 3)  # float [3,T,H,W]
    with pytest.raises(InputError, match="cols"):
        frame_grid(frames, cols=0)


def test_save_png_decodes_to_same_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)  # odd sizes are fine for PNG
    path = save_png(tmp_path / "p.png", image)
    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
    np.testing.assert_array_equal(decoded, image)
    with pytest.raises(InputError, match=r"\[H, W, 3\]"):
        save_png(tmp_path / "bad.png", np.zeros((2, 4, 4, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


def test_place_audio_follows_timestamps_like_a_player() -> None:
    """Chunks before time 0 are cut, gaps become silence, the tail stops at the signalled end."""
    rate = 1000
    parts = [
        (Fraction(-3, rate), np.arange(1, 6, dtype=np.float32)),  # samples at -3..1
        (Fraction(4, rate), np.full(3, 9, np.float32)),  # 2..3 missing -> silence
        (None, np.full(4, 7, np.float32)),  # no pts: continues right after the previous chunk
    ]
    out = mp4._place_audio(parts, origin=Fraction(0), sample_rate=rate, end=9)
    np.testing.assert_array_equal(out, [4, 5, 0, 0, 9, 9, 9, 7, 7])
    shifted = mp4._place_audio(parts[:1], origin=Fraction(-3, rate), sample_rate=rate, end=None)
    np.testing.assert_array_equal(shifted, [1, 2, 3, 4, 5])
