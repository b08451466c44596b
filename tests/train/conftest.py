"""Fixtures for the training tests: synthetic datasets and tiny-model configs."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from duet.train import LatentDataset, TrainConfig
from train_helpers import TINY_MODEL, synthetic_tensors


@pytest.fixture
def dataset() -> LatentDataset:
    return LatentDataset(synthetic_tensors())


@pytest.fixture
def make_config(tmp_path):
    """TrainConfig for the tiny model writing under tmp_path/<out>."""

    def make(out: str = "run", **changes: Any) -> TrainConfig:
        base: dict[str, Any] = dict(
            model=TINY_MODEL, steps=6, batch_size=4, lr=1e-3, warmup_steps=2, ema_decay=0.9,
            checkpoint_every=3, keep_checkpoints=5, progress=False, out_dir=str(tmp_path / out))
        return TrainConfig.from_dict({**base, **changes})

    return make


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the
    threads stall each other (10x slower); torchrun workers also run with one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
