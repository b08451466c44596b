"""A tower that predicts the clean latent (`prediction = "sample"`) still returns a velocity."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from duet.config import TowerConfig
from duet.errors import ConfigError
from duet.model.state import ModalityInput
from duet.model.tower import SAMPLE_T_MIN, Tower

VIDEO = TowerConfig("video", dim=32, ffn_dim=64, num_heads=2, num_layers=2, in_dim=4, out_dim=4,
                    text_len=8, text_dim=16, patch_size=(2, 2, 2))
AUDIO = TowerConfig("audio", dim=32, ffn_dim=64, num_heads=2, num_layers=2, in_dim=6, out_dim=6,
                    text_len=8, text_dim=16, patch_size=(1,))


def _pair(cfg: TowerConfig) -> tuple[Tower, Tower]:
    torch.manual_seed(0)
    velocity = Tower(cfg).eval()
    sample = Tower(dataclasses.replace(cfg, prediction="sample")).eval()
    sample.load_state_dict(velocity.state_dict())  # same parameters, other reading of the head
    return velocity, sample


@torch.no_grad()
@pytest.mark.parametrize("cfg, shape", [(VIDEO, (2, 4, 5, 4, 4)), (AUDIO, (2, 10, 6))])
def test_the_head_output_becomes_x_t_minus_x0_over_t(cfg, shape):
    velocity, sample = _pair(cfg)
    g = torch.Generator().manual_seed(1)
    latent, ctx = torch.randn(shape, generator=g), torch.randn(2, 8, 16, generator=g)
    t = torch.tensor([500.0, 20.0])  # 0.5, and 0.02 below the clamp
    x0 = velocity(ModalityInput(latent, t, ctx))  # the same head output, read as x0
    v = sample(ModalityInput(latent, t, ctx))
    assert v.shape == latent.shape
    per_item = torch.tensor([0.5, SAMPLE_T_MIN]).view(-1, *[1] * (latent.dim() - 1))
    torch.testing.assert_close(v, (latent - x0) / per_item, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_per_token_timesteps_reach_their_own_latent_cells():
    """Video tokens span 2 frames x 2 x 2 cells; a token's t divides exactly its cells."""
    velocity, sample = _pair(VIDEO)
    g = torch.Generator().manual_seed(2)
    latent, ctx = torch.randn(1, 4, 4, 4, 4, generator=g), torch.randn(1, 8, 16, generator=g)
    t = torch.full((1, 8), 800.0)  # grid (2, 2, 2): 8 tokens
    t[0, 0] = 0.0  # token (f=0, h=0, w=0): frames 0-1, rows 0-1, columns 0-1
    x0 = velocity(ModalityInput(latent, t, ctx))
    v = sample(ModalityInput(latent, t, ctx))
    cell_t = torch.full_like(latent, 0.8)
    cell_t[:, :, 0:2, 0:2, 0:2] = SAMPLE_T_MIN
    torch.testing.assert_close(v, (latent - x0) / cell_t, rtol=1e-5, atol=1e-5)


def test_unknown_prediction_is_refused():
    with pytest.raises(ConfigError, match="prediction must be 'velocity' or 'sample'"):
        dataclasses.replace(VIDEO, prediction="epsilon")
