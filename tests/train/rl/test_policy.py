"""The old and reference policies: in-place parameter swaps and the old policy's decay."""

from __future__ import annotations

import pytest
import torch

from duet.train.rl.policy import old_decay, swapped, trainable_copy

from rl_helpers import tiny_twin


def test_swapped_exchanges_and_restores():
    model = tiny_twin()
    before = trainable_copy(model)
    other = {n: torch.full_like(p, 0.5) for n, p in before.items()}
    with swapped(model, other):
        assert all(torch.equal(p, torch.full_like(p, 0.5)) for p in model.parameters())
        assert all(torch.equal(other[n], before[n]) for n in before)  # holds the model's
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert all(torch.equal(v, torch.full_like(v, 0.5)) for v in other.values())


def test_old_policy_decay_schedule():
    assert old_decay(0) == 0.0 and old_decay(100) == pytest.approx(0.1)
    assert old_decay(10_000) == 0.5 and old_decay(10, rate=0.1, cap=0.9) == pytest.approx(0.9)
