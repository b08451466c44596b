"""The shard format (`duet.data.shards`): what the writers put on disk is what the reader
returns, item by item, across shard boundaries."""

from __future__ import annotations

import pytest
import torch

from duet.data.shards import (CAPTIONS, ShardReader, existing_shards, read_header, shard_path,
                              write_captions, write_shard)
from duet.errors import ConfigError


def test_written_shards_read_back_item_by_item(tmp_path):
    g = torch.Generator().manual_seed(0)
    video, context = torch.randn(5, 4, 2, 3, 3, generator=g), torch.randn(5, 6, 8, generator=g)
    write_shard({"video": video[:3], "context": context[:3]}, shard_path(tmp_path, 0))
    write_shard({"video": video[3:], "context": context[3:]}, shard_path(tmp_path, 1))
    write_captions(tmp_path, [{"seed": s} for s in range(5)])
    assert [p.name for p in existing_shards(tmp_path)] == ["shard-00000.safetensors",
                                                           "shard-00001.safetensors"]
    assert (tmp_path / CAPTIONS).is_file()
    reader = ShardReader([tmp_path])
    assert len(reader) == 5
    assert reader.shapes == {"video": (4, 2, 3, 3), "video_context": (6, 8)}  # context mapped
    for i in range(5):
        item = reader.read(i)
        assert torch.equal(item["video"], video[i])
        assert torch.equal(item["video_context"], context[i])
    with pytest.raises(IndexError):
        reader.read(5)


def test_unknown_keys_are_refused_from_the_header(tmp_path):
    path = write_shard({"video": torch.zeros(2, 1), "subtitles": torch.zeros(2, 1)},
                       shard_path(tmp_path, 0))
    with pytest.raises(ConfigError, match="unknown keys"):
        read_header(path)
