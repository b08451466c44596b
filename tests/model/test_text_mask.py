"""`text_mask`: the padding rows of the text context stop taking part in cross-attention."""

from __future__ import annotations

import dataclasses

import torch

from duet.config import TowerConfig
from duet.model.tower import ModalityInput, Tower

VIDEO = TowerConfig("video", dim=32, ffn_dim=64, num_heads=2, num_layers=2, in_dim=4, out_dim=4,
                    text_len=12, text_dim=16, patch_size=(1, 2, 2))


def _outputs(cfg: TowerConfig, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The tower's output for a 5-row caption given as 5 rows and as `rows` zero-padded rows."""
    torch.manual_seed(0)
    tower = Tower(cfg).eval()
    g = torch.Generator().manual_seed(1)
    latent = torch.randn(2, 4, 3, 4, 4, generator=g)
    caption = torch.randn(2, 5, 16, generator=g)
    padded = torch.cat([caption, torch.zeros(2, rows - 5, 16)], dim=1)
    t = torch.tensor([700.0, 300.0])
    with torch.no_grad():
        return tower(ModalityInput(latent, t, caption)), tower(ModalityInput(latent, t, padded))


def test_masked_padding_rows_change_nothing_and_short_captions_stop_competing_with_them():
    masked = dataclasses.replace(VIDEO, text_mask=True)
    short, long = _outputs(masked, 12)
    torch.testing.assert_close(short, long, rtol=0, atol=1e-6)  # padding is padding
    plain_short, _ = _outputs(VIDEO, 12)
    # Off (the official model): the tower zero-pads to text_len and every row takes part,
    # so the same weights give another output once the padding is masked.
    assert (plain_short - short).abs().max() > 1e-3


def test_the_mask_keeps_the_caption_rows_and_always_the_first():
    tower = Tower(dataclasses.replace(VIDEO, text_mask=True))
    ctx = torch.zeros(2, 4, 16)
    ctx[0, :3] = 1.0  # three caption rows; item 1 is all zeros (it must still attend somewhere)
    keep = tower.text_rows(ctx)
    assert keep.shape == (2, 1, 1, 12)
    assert keep[0, 0, 0].tolist() == [True] * 3 + [False] * 9
    assert keep[1, 0, 0].tolist() == [True] + [False] * 11
    assert Tower(VIDEO).text_rows(ctx) is None  # off: no mask, SDPA's mask-free kernels
