"""A video tower whose temporal patch does not divide the clip's frame count."""

from __future__ import annotations

import pytest
import torch

from duet.config import TowerConfig
from duet.errors import InputError
from duet.model.state import ModalityInput
from duet.model.tower import Tower
from duet.sampling.guidance import video_prefix_timestep


def _tower(patch: tuple[int, int, int]) -> Tower:
    torch.manual_seed(0)
    cfg = TowerConfig("video", dim=32, ffn_dim=64, num_heads=2, num_layers=2, in_dim=4, out_dim=4,
                      text_len=8, text_dim=16, patch_size=patch)
    return Tower(cfg).eval()


def _input(latent: torch.Tensor) -> ModalityInput:
    ctx = torch.randn(latent.shape[0], 8, 16, generator=torch.Generator().manual_seed(1))
    return ModalityInput(latent=latent, timestep=torch.tensor([0.5, 0.7]), context=ctx)


@torch.no_grad()
def test_last_patch_is_filled_with_the_last_frame_and_cropped_back():
    tower = _tower((4, 2, 2))
    latent = torch.randn(2, 4, 9, 4, 4, generator=torch.Generator().manual_seed(2))  # 9 = 2*4 + 1
    out = tower(_input(latent))
    assert out.shape == latent.shape
    padded = torch.cat([latent, latent[:, :, -1:].expand(-1, -1, 3, -1, -1)], dim=2)  # 12 frames
    full = tower(_input(padded))
    assert full.shape == padded.shape
    torch.testing.assert_close(out, full[:, :, :9], rtol=1e-5, atol=1e-6)
    assert tower.prepare(_input(latent)).grid == (3, 2, 2)  # 3 token frames, not 2


@torch.no_grad()
def test_a_temporal_patch_sees_every_frame_it_covers():
    """Each of the 4 frames in a token reaches the output (no frame is dropped by striding)."""
    tower = _tower((4, 2, 2))
    latent = torch.randn(2, 4, 8, 4, 4, generator=torch.Generator().manual_seed(3))
    base = tower(_input(latent))
    for f in range(4):
        bumped = latent.clone()
        bumped[:, :, f] += 1.0
        assert (tower(_input(bumped)) - base)[:, :, :4].abs().max() > 1e-3


def test_spatial_sizes_must_still_divide():
    tower = _tower((4, 2, 2))
    with pytest.raises(InputError, match=r"H, W divisible by \(2, 2\)"):
        tower(_input(torch.randn(2, 4, 8, 5, 4)))


def test_image_to_video_needs_a_temporal_patch_of_one():
    """A clean first frame is one latent frame; a token of 4 frames cannot be half clean."""
    video = torch.zeros(1, 4, 9, 4, 4)
    t = torch.tensor([500.0])
    assert video_prefix_timestep(t, video, (1, 2, 2)).tolist() == [[0.0] * 4 + [500.0] * 32]
    with pytest.raises(InputError, match=r"each span 4 latent frames.*temporal patch is 1"):
        video_prefix_timestep(t, video, (4, 2, 2))
