"""Latent datasets (memory and safetensors shards) and the per-rank batch plan."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from duet.errors import ConfigError
from duet.train import BatchPlan, LatentDataset

from train_helpers import synthetic_tensors, write_shards


def test_shards_read_like_memory(tmp_path):
    mem = LatentDataset(synthetic_tensors(8))
    disk = LatentDataset.from_shards([write_shards(tmp_path / "d", n=8, per_shard=3)])
    assert len(disk) == len(mem) == 8
    assert disk.item_shape("video") == (4, 2, 4, 4) and disk.item_shape("audio_context") == (5, 16)
    a, b = mem.gather([7, 0, 4]), disk.gather([7, 0, 4])
    for f in ("video", "audio", "video_context", "audio_context"):
        assert torch.equal(getattr(a, f), getattr(b, f))


def test_shards_must_agree(tmp_path):
    write_shards(tmp_path, n=4, per_shard=4)
    other = {"audio": torch.zeros(2, 9, 6), "context": torch.zeros(2, 5, 16)}
    save_file(other, str(tmp_path / "x.safetensors"))
    with pytest.raises(ConfigError, match="data: shard"):
        LatentDataset.from_shards([tmp_path])
    with pytest.raises(ConfigError, match="unknown keys"):
        LatentDataset({**other, "txt": torch.zeros(2)})
    with pytest.raises(ConfigError, match="no audio_context"):
        LatentDataset({"audio": torch.zeros(2, 8, 6)})


def test_audio_only_dataset_and_stage_filter():
    ds = LatentDataset(synthetic_tensors(4, video=False))
    assert ds.modalities == ("audio",)
    batch = LatentDataset(synthetic_tensors(4)).gather([0, 1]).only(("audio",))
    assert batch.video is None and batch.video_context is None and batch.audio.shape == (2, 8, 6)


def test_batch_plan_splits_one_global_batch_over_ranks_and_micro_steps():
    one = BatchPlan(size=20, batch_size=8, seed=3)
    split = BatchPlan(size=20, batch_size=8, grad_accum=2, world=2, seed=3)
    assert split.micro_batch == 2 and one.steps_per_epoch == 2
    for step in range(5):
        parts = [i for m in range(2) for r in range(2) for i in split.indices(step, m, r)]
        assert parts == one.indices(step, 0, 0)
    epoch0 = one.indices(0, 0, 0) + one.indices(1, 0, 0)
    assert len(set(epoch0)) == 16  # no repeats inside an epoch
    assert one.indices(2, 0, 0) != one.indices(0, 0, 0)  # a new permutation next epoch
    assert BatchPlan(20, 8, seed=4).indices(0, 0, 0) != one.indices(0, 0, 0)
    with pytest.raises(ConfigError, match="larger than the dataset"):
        BatchPlan(size=4, batch_size=8)
