"""Stitching chunks: held frames and sound stay the previous chunk's, the rest of the
overlap is crossfaded without a step."""

from __future__ import annotations

import torch

from duet.stitch import ClipBuffer, frame_ramp, sample_ramp


def test_ramps_rise_from_the_old_chunk_to_the_new_one():
    assert frame_ramp(3).tolist() == [0.25, 0.5, 0.75]
    w = sample_ramp(1000)
    assert 0 < w[0] < 1e-5 and 1 - 1e-5 < w[-1] < 1
    torch.testing.assert_close(w + w.flip(0), torch.ones(1000))  # amplitudes sum to one
    assert (w.diff() > 0).all()


def test_video_keeps_held_frames_and_crossfades_the_rest_of_the_overlap():
    buf = ClipBuffer(frames=10, height=1, width=1, samples=1)
    buf.add_video(0, torch.full((6, 1, 1, 3), -1.0), overlap=0, held=0)  # black, frames 0-5
    buf.add_video(2, torch.full((8, 1, 1, 3), 1.0), overlap=4, held=1)  # white from frame 2
    # frame 2 held (the first chunk's), frames 3-5 crossfaded 1/4, 2/4, 3/4 toward white
    assert buf.video[:, 0, 0, 0].tolist() == [0, 0, 0, 64, 128, 191, 255, 255, 255, 255]


def test_audio_crossfade_has_no_click():
    buf = ClipBuffer(frames=1, height=1, width=1, samples=3000)
    buf.add_audio(0, torch.full((2000,), 0.5), overlap=0, held=0)
    buf.add_audio(1000, torch.full((2000,), -0.5), overlap=1000, held=200)
    a = buf.audio
    assert (a[:1200] == 0.5).all() and (a[2000:] == -0.5).all()
    # a full-scale step over 800 samples: no jump above the raised cosine's steepest slope
    assert a.diff().abs().max() < 1.0 * torch.pi / 2 / 800 * 1.01
