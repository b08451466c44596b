"""Tests for duet.data.world: determinism, captions, and that every recorded event is where
the sound starts and (bounce) where the ball touches the floor."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from duet.data.world import (
    BACKGROUNDS,
    HELDOUT_SEED_START,
    PALETTE,
    WORDS,
    WorldConfig,
    iter_clips,
    make_clip,
    split_of,
)
from duet.errors import ConfigError, InputError
from duet.text.prompt import parse_prompt

SEEDS = range(8)


@pytest.fixture(scope="module")
def clips():
    return {s: make_clip(s) for s in SEEDS}


@pytest.fixture(scope="module")
def quiet_clips():
    """No room tone, so the raw waveform before an event holds only earlier events."""
    cfg = WorldConfig(ambience=0.0)
    return [make_clip(s, kind, cfg) for s in range(5) for kind in ("bounce", "talk")]


def test_same_seed_is_byte_identical(clips):
    for s in (0, 1):
        again = make_clip(s)
        assert again.video.tobytes() == clips[s].video.tobytes()
        assert again.audio.tobytes() == clips[s].audio.tobytes()
        assert (again.caption, again.events, again.kind) == (
            clips[s].caption, clips[s].events, clips[s].kind)


def test_different_seeds_differ(clips):
    videos = {clips[s].video.tobytes() for s in SEEDS}
    audios = {clips[s].audio.tobytes() for s in SEEDS}
    assert len(videos) == len(audios) == len(SEEDS)


def test_forcing_the_drawn_kind_gives_the_same_clip(clips):
    for s in (0, 1):
        forced = make_clip(s, clips[s].kind)
        assert forced.video.tobytes() == clips[s].video.tobytes()
        assert forced.audio.tobytes() == clips[s].audio.tobytes()


def test_both_kinds_are_drawn(clips):
    assert {c.kind for c in clips.values()} == {"bounce", "talk"}


def test_shapes_dtypes_and_ranges(clips):
    cfg = WorldConfig()
    for c in clips.values():
        assert c.video.shape == (97, 64, 64, 3) and c.video.dtype == np.uint8
        assert c.audio.shape == (cfg.samples,) == (64667,) and c.audio.dtype == np.float32
        assert np.abs(c.audio).max() <= 1.0 and np.abs(c.audio).max() > 0.1
        assert list(c.events) == sorted(c.events) and len(c.events) >= 1
        edge = 3 / cfg.fps
        assert edge <= c.events[0] and c.events[-1] <= cfg.duration - edge
        assert np.all(np.diff(c.events) >= cfg.min_event_gap)


def test_config_changes_size_and_length():
    cfg = WorldConfig(height=48, width=80, frames=49, fps=12.0, sample_rate=8000)
    for kind in ("bounce", "talk"):
        c = make_clip(3, kind, cfg)
        assert c.video.shape == (49, 48, 80, 3)
        assert c.audio.shape == (round(49 / 12 * 8000),)
        assert c.events[-1] < 49 / 12


def test_captions_parse_and_describe_the_scene(clips):
    for c in clips.values():
        prompt = parse_prompt(c.caption)
        assert prompt.source_format == "audcap" and prompt.audio_description
        if c.kind == "bounce":
            assert not prompt.speech
            for ball in c.attributes["balls"]:
                assert f"{ball['size']} {ball['colour']}" in prompt.visual
                assert ball["colour"] in PALETTE
            assert c.attributes["background"] in BACKGROUNDS
            assert not any(ch.isdigit() for ch in c.caption)  # impact times are never told
        else:
            assert prompt.speech == (" ".join(c.attributes["words"]),)
            syllables = tuple(s for w in c.attributes["words"] for s in WORDS[w])
            assert syllables == c.attributes["syllables"]
            assert len(c.events) == len(syllables)


def _onset_near(x: np.ndarray, t: float, sr: int) -> tuple[float, float]:
    """(onset time, post/pre level ratio) around t: the first sample within 6 ms before t
    that rises 5 % of the way from the level before (max |x| over t-6..t-1 ms) to the peak
    just after (max |x| over t..t+5 ms)."""
    lo, n0 = round((t - 0.006) * sr), t * sr
    pre = np.abs(x[lo : round(n0 - 0.001 * sr)]).max()
    post = np.abs(x[round(n0) : round(n0 + 0.005 * sr)]).max()
    first = lo + int(np.argmax(np.abs(x[lo:]) > pre + 0.05 * (post - pre)))
    return first / sr, post / max(pre, 1e-12)


def test_events_are_where_the_sound_starts(quiet_clips):
    sr = WorldConfig().sample_rate
    for c in quiet_clips:
        for t in c.events:
            onset, ratio = _onset_near(c.audio.astype(np.float64), t, sr)
            assert ratio > 1.2, (c.kind, t)
            assert abs(onset - t) <= 0.001, (c.kind, c.attributes["seed"], t, onset)


def test_impacts_are_where_the_ball_touches_the_floor():
    """At 480 fps the frame nearest each impact shows the ball lowest, resting on the floor."""
    cfg = WorldConfig(fps=480.0, frames=720, kinds=("bounce",), min_event_gap=0.05)
    c = make_clip(2, config=cfg)
    bg = np.asarray(BACKGROUNDS[c.attributes["background"]], np.float32)
    floor_y = c.attributes["floor_y"]
    frames = c.video.astype(np.float32)
    rows = np.arange(cfg.height)[None, :, None] + 0.5
    checked = 0
    for ball in c.attributes["balls"]:
        ref = np.asarray(PALETTE[ball["colour"]], np.float32) - bg
        alpha = np.clip(((frames - bg) @ ref) / (ref @ ref), 0, 1)  # [T, H, W] coverage
        fits = np.linalg.norm(frames - bg - alpha[..., None] * ref, axis=-1) < 40
        alpha = alpha * fits * (rows < floor_y)
        centre = (alpha * rows).sum((1, 2)) / alpha.sum((1, 2))  # y of the ball's centre
        for t in ball["impacts"]:
            k = round(t * cfg.fps)
            window = range(k - 7, min(k + 8, cfg.frames))
            lowest = max(window, key=lambda i: centre[i])
            assert abs(lowest - k) <= 1, (t, lowest / cfg.fps)
            assert abs(centre[k] + ball["radius"] - floor_y) < 0.3
            checked += 1
    assert checked >= 3


def test_split_convention():
    assert split_of(0) == split_of(HELDOUT_SEED_START - 1) == "train"
    assert split_of(HELDOUT_SEED_START) == "heldout"
    assert make_clip(HELDOUT_SEED_START).attributes["split"] == "heldout"
    clips = list(iter_clips(10, 2))
    assert [c.attributes["seed"] for c in clips] == [10, 11]
    with pytest.raises(InputError, match="held-out"):
        list(iter_clips(HELDOUT_SEED_START - 1, 2))


def _ball_mask(frames, colour: str) -> np.ndarray:
    """Pixels of a frame (or of every frame) within 30 grey levels of the ball's colour."""
    return np.abs(frames.astype(int) - PALETTE[colour]).max(-1) < 30


def _ball_pixels(frame, colour: str) -> int:
    return int(_ball_mask(frame, colour).sum())


@pytest.mark.parametrize("drop_in, in_first_frame", [(0.0, True), (1.0, False)])
def test_drop_in_sets_whether_balls_are_in_the_first_frame(drop_in, in_first_frame):
    """drop_in 0: every ball is in flight from the first frame; 1: every ball drops in from
    above later, so the first frame shows none."""
    config = WorldConfig(drop_in=drop_in, max_balls=1)
    for seed in range(8):
        clip = make_clip(seed, "bounce", config)
        (ball,) = clip.attributes["balls"]
        assert (_ball_pixels(clip.video[0], ball["colour"]) > 5) == in_first_frame, seed
        assert _ball_pixels(clip.video[-1], ball["colour"]) > 5  # it is there by the end


def _fastest_fall(clip) -> float:
    """Largest frame-to-frame move (px) of the ball's centre, from its pixels."""
    (ball,) = clip.attributes["balls"]
    mask = _ball_mask(clip.video, ball["colour"])
    rows = np.arange(clip.video.shape[1])[None, :, None]
    seen = mask.sum((1, 2)) > 5
    cy = (mask * rows).sum((1, 2)) / np.maximum(mask.sum((1, 2)), 1)
    both = seen[1:] & seen[:-1]
    return float(np.abs(np.diff(cy))[both].max())


def test_gravity_sets_how_fast_balls_fall():
    """A quarter of the gravity halves the fastest fall per frame (speed goes as sqrt(g)) and
    leaves fewer bounces per clip; the default world is the 6.25 one."""
    fast, slow = WorldConfig(max_balls=1, drop_in=0.0), WorldConfig(max_balls=1, drop_in=0.0,
                                                                    gravity=6.25 / 4)
    assert WorldConfig().gravity == 6.25
    clips = [(make_clip(s, "bounce", fast), make_clip(s, "bounce", slow)) for s in range(12)]
    speed_fast = max(_fastest_fall(a) for a, _ in clips)
    speed_slow = max(_fastest_fall(b) for _, b in clips)
    assert 5.5 < speed_fast < 7.5 and 0.4 < speed_slow / speed_fast < 0.6
    assert (np.mean([len(b.events) for _, b in clips])
            < 0.7 * np.mean([len(a.events) for a, _ in clips]))


def test_bad_arguments():
    with pytest.raises(InputError, match="kind"):
        make_clip(0, "juggle")
    with pytest.raises(InputError, match="seed"):
        make_clip(-1)
    with pytest.raises(ConfigError, match="kinds"):
        WorldConfig(kinds=("juggle",))
    with pytest.raises(ConfigError, match="drop_in is a probability"):
        WorldConfig(drop_in=1.5)
    with pytest.raises(ConfigError, match="gravity must be in"):
        WorldConfig(gravity=0.0)
    with pytest.raises(ConfigError, match="at least 1.5 s"):
        WorldConfig(frames=20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        WorldConfig().fps = 30.0  # type: ignore[misc]


def _digest(clip) -> str:
    d = hashlib.sha256()
    d.update(clip.video.tobytes())
    d.update(clip.audio.tobytes())
    d.update(clip.caption.encode())
    d.update(json.dumps(clip.attributes, sort_keys=True).encode())
    d.update(repr(clip.events).encode())
    return d.hexdigest()[:16]


@pytest.mark.parametrize("seed, kind, config, digest", [
    (0, "bounce", WorldConfig(), "4fa5f65d34bc94d2"),
    (1, "talk", WorldConfig(), "7bb69920e49442a4"),
    (2, None, WorldConfig(), "c98768884b10beee"),
    (3, None, WorldConfig(), "0252aff9b383a2eb"),
    (HELDOUT_SEED_START, None, WorldConfig(), "c0874ceb2da1fc42"),
    (5, "bounce", WorldConfig(ambience=0.0, max_balls=1, materials=("glass", "wood")),
     "136f540bdc24c6c5"),
])
def test_clips_match_recorded_digests(seed, kind, config, digest):
    """Clips recorded before `world` became a package of one module per scene kind: moving
    code must not change a single byte of what a seed draws."""
    assert _digest(make_clip(seed, kind, config)) == digest
