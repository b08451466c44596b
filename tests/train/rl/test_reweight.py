"""Region-wise loss weights from the audio -> video attention map."""

from __future__ import annotations

import math

import pytest
import torch

from duet.errors import InputError
from duet.train.rl.reweight import latent_weights, token_weights, w_max_at


def test_token_weights_match_the_equation():
    g = torch.Generator().manual_seed(0)
    attn = torch.rand(2, 5, 2 * 3 * 2, generator=g).softmax(-1)  # (N, L_audio, F*H*W)
    grid, w_max = (2, 3, 2), 1.5
    got = token_weights(attn, grid, w_max)
    for n in range(2):
        for f in range(2):
            score = [float(attn[n, :, f * 6 + k].sum()) for k in range(6)]
            mean = sum(score) / 6
            std = math.sqrt(sum((s - mean) ** 2 for s in score) / 6)
            for k in range(6):
                z = (score[k] - mean) / (std + 1e-6)
                want = 1 + (w_max - 1) / (1 + math.exp(-(w_max - 1) * z))
                assert float(got[n, f * 6 + k]) == pytest.approx(want, rel=1e-5)


def test_more_attention_more_weight_and_bounds():
    attn = torch.zeros(1, 1, 4)
    attn[0, 0] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    w = token_weights(attn, (1, 2, 2), 1.5)[0]
    assert torch.all(w[1:] > w[:-1]) and torch.all((w > 1) & (w < 1.5))
    assert torch.equal(token_weights(attn, (1, 2, 2), 1.0), torch.ones(1, 4))  # w_max 1: off
    with pytest.raises(InputError, match="video tokens"):
        token_weights(attn, (1, 3, 2), 1.5)


def test_latent_weights_cover_each_tokens_patch():
    tokens = torch.arange(1.0, 7.0).view(1, 6)  # grid (F, H, W) = (3, 1, 2)
    w = latent_weights(tokens, (3, 1, 2), (2, 2, 2), frames=5)  # last temporal patch padded
    assert w.shape == (1, 1, 5, 2, 4)
    assert w[0, 0, 0].tolist() == [[1, 1, 2, 2]] * 2
    assert w[0, 0, 3].tolist() == [[3, 3, 4, 4]] * 2 and w[0, 0, 4, 0, 0] == 5


def test_w_max_ramps_from_one():
    assert w_max_at(0, 11) == 1.0 and w_max_at(10, 11) == 1.5 and w_max_at(5, 11) == 1.25
    assert w_max_at(50, 11) == 1.5 and w_max_at(0, 1) == 1.0
