"""World clips -> latent shards in the trainer's format."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from duet.components import build_codecs
from duet.data.dataset import build_shards, world_config_for
from duet.data.world import make_clip
from duet.errors import InputError
from duet.presets import get_preset


@pytest.mark.parametrize("seeds, shard_size, needle", [
    (range(0, 0), 2, "no clips to build"), (range(5, 4), 2, "no clips to build"),
    (range(3), 0, "shard_size must be at least 1"),
])
def test_build_shards_refuses_nothing_to_build(tmp_path, seeds, shard_size, needle):
    with pytest.raises(InputError, match=needle):
        build_shards(tmp_path / "out", get_preset("demo"), seeds, shard_size=shard_size)
    assert list(tmp_path.iterdir()) == []


def test_build_shards_encodes_clips_with_the_presets_codecs(tmp_path):
    preset = get_preset("demo")
    paths = build_shards(tmp_path, preset, range(10, 13), shard_size=2, progress=False)
    assert [p.name for p in paths] == ["shard-00000.safetensors", "shard-00001.safetensors"]
    first, second = load_file(paths[0]), load_file(paths[1])
    assert first["video"].shape == (2, 16, 97, 4, 4)  # 97 frames, 16 channels, stride (1, 16, 16)
    assert first["audio"].shape == (2, 126, 80)  # 4.04 s at 31.25 latents/s, 80 mels
    assert first["context"].shape == (2, 96, 384) and second["video"].shape[0] == 1
    captions = json.loads((tmp_path / "captions.json").read_text())
    assert [c["seed"] for c in captions] == [10, 11, 12]
    clip = make_clip(12, config=world_config_for(preset))
    assert captions[2]["caption"] == clip.caption
    video = torch.from_numpy(clip.video).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    torch.testing.assert_close(second["video"], build_codecs(preset)[0].encode(video))
