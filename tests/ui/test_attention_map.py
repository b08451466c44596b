"""The attention picture: tokens summed per frame, time axes, colour where the mass is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from duet.ui.attention_map import colorize, frame_attention, render


def test_frame_attention_sums_each_frames_patches():
    w = torch.zeros(2, 3 * 4)  # 2 audio tokens, 3 frames of 4 patches
    w[0, 4:8] = 0.25  # audio 0 -> all of frame 1
    w[1, [0, 11]] = 0.5  # audio 1 -> half frame 0, half frame 2
    torch.testing.assert_close(frame_attention(w, 3), torch.tensor([[0, 1, 0], [0.5, 0, 0.5]]))
    with pytest.raises(ValueError, match="do not split into 5 frames"):
        frame_attention(w, 5)


def test_colour_ramp_runs_from_dark_to_bright():
    rgb = colorize(np.array([0.0, 0.5, 1.0])).astype(int)
    assert rgb.shape == (3, 3) and (np.diff(rgb.sum(-1)) > 0).all()


def test_picture_is_bright_where_the_audio_looked(tmp_path):
    a = np.zeros((10, 10))
    a[:, 9] = 1  # every audio instant looked at the last frame
    path = render(a, 2.0, tmp_path / "map.png", size=(200, 100))
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    left, top = 64, 36  # the plot's corner in the picture
    last_column = img[top + 10:top + 90, left + 185]
    first_column = img[top + 10:top + 90, left + 5]
    assert last_column.sum(-1).min() > 600 and first_column.sum(-1).max() < 250
