"""Seam measurements on synthetic clips: a smooth clip passes, a picture step, a click, a
level jump or a level dip at a seam each fail, and only there."""

from __future__ import annotations

import numpy as np
import pytest

from duet.chunks import plan_chunks
from duet.errors import InputError
from duet.eval.seams import frame_changes, measure_seams, plan_seams
from duet.presets import get_preset

FPS, SR = 24.0, 16000
SEAMS = [(3.0, 3.5), (6.0, 6.5)]


def smooth_clip(seconds: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """A picture brightening by one step per frame, and noise at a steady level."""
    t = int(seconds * FPS)
    frames = np.broadcast_to(np.arange(t, dtype=np.uint8)[:, None, None, None], (t, 16, 16, 3)).copy()
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32)
    return frames, audio


def test_frame_changes_are_mean_absolute_differences():
    f = np.zeros((3, 2, 2, 3), np.uint8)
    f[1] = 10
    f[2, 0] = 10
    assert frame_changes(f).tolist() == [10.0, 5.0]


def test_a_smooth_clip_passes_at_every_seam():
    frames, audio = smooth_clip()
    seams = measure_seams(frames, audio, FPS, SR, SEAMS)
    assert [round(s.time, 2) for s in seams] == [3.0, 6.0]
    assert all(s.video_ok and s.audio_ok for s in seams)
    assert all(0.9 < s.video_ratio < 1.1 for s in seams)  # the picture changes as fast everywhere
    assert all(s.video_ordinary == 1.0 for s in seams)


def test_a_picture_step_at_a_seam_fails_only_there():
    frames, audio = smooth_clip()
    frames[int(6.2 * FPS):] = np.clip(frames[int(6.2 * FPS):].astype(int) + 40, 0, 255)
    first, second = measure_seams(frames, audio, FPS, SR, SEAMS)
    assert first.video_ok and not second.video_ok and second.video_ratio > 5


@pytest.mark.parametrize("damage", ["click", "jump", "dip"])
def test_sound_faults_at_a_seam_fail_only_there(damage):
    frames, audio = smooth_clip()
    a, b = int(3.2 * SR), int(3.3 * SR)
    if damage == "click":
        audio[a] = 0.9
    elif damage == "jump":  # four times louder from the seam on
        audio[a:] *= 4
    else:  # a crossfade of out-of-phase copies: the level sinks in the middle of the seam
        audio[a:b] *= 0.05
    first, second = measure_seams(frames, audio, FPS, SR, SEAMS)
    assert not first.audio_ok and second.audio_ok


def test_plan_seams_span_the_overlaps_of_a_demo_plan():
    media = get_preset("demo").media
    spans = plan_seams(plan_chunks(481, media, "p"), media.fps, 512, 16000)
    assert len(spans) == 5
    # crossfaded: video frames 91-96 (3.792-4.042 s, after 6 held), audio latents 119-125
    # (3.808-4.032 s, after 8 held)
    assert spans[0] == (pytest.approx(91 / 24), pytest.approx(97 / 24))


def test_a_clip_without_seams_is_refused():
    frames, audio = smooth_clip(2.0)
    with pytest.raises(InputError, match="no seams"):
        measure_seams(frames, audio, FPS, SR, [])
