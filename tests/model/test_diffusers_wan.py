"""Duet's video tower is Wan's DiT: on the same weights (official key names mapped by
`wan_dit_key`) it computes what diffusers' independent `WanTransformer3DModel` computes, so
the RoPE split, modulation, QK-norm, time and text embeddings and head agree with it."""

from __future__ import annotations

import pytest
import torch

from duet.config import TowerConfig
from duet.model import ModalityInput
from duet.model.tower import Tower
from duet.weights import load_into, wan_dit_key

diffusers = pytest.importorskip("diffusers")


def test_video_tower_matches_diffusers_wan():
    torch.manual_seed(0)
    ours = Tower(TowerConfig("video", dim=64, ffn_dim=128, num_heads=2, num_layers=2, in_dim=8,
                             out_dim=8, text_len=8, text_dim=32, cross_modal=False)).eval()
    for p in ours.parameters():  # every parameter random and of unit gain, so each one shows
        if p.dim() > 1:
            p.data.normal_(0.0, p[0].numel() ** -0.5)
        else:
            p.data.uniform_(-1.0, 1.0)
    theirs = diffusers.WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=32, in_channels=8,
        out_channels=8, text_dim=32, freq_dim=256, ffn_dim=128, num_layers=2).eval()
    load_into(theirs, {wan_dit_key(k): v for k, v in ours.state_dict().items()}, "mapped Wan DiT")

    g = torch.Generator().manual_seed(1)
    latent = torch.randn(2, 8, 3, 4, 6, generator=g)
    ctx = torch.randn(2, 8, 32, generator=g)
    t = torch.tensor([250.0, 900.0])
    with torch.no_grad():
        a = ours(ModalityInput(latent, t, ctx))
        (b,) = theirs(latent, t, ctx, return_dict=False)
    assert a.shape == b.shape == latent.shape
    assert ((a - b).norm() / b.norm()).item() < 1e-5  # swapping two blocks' norms: 2e-2
    assert (a[0] - a[1]).abs().mean() > 0.1 * a.abs().mean()  # the two items differ: not a constant
