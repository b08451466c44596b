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
    assert first["video"].shape == (2, 18, 97, 4, 4)  # 97 frames, 16 + 2 chroma channels, stride (1, 16, 16)
    assert first["audio"].shape == (2, 126, 80)  # 4.04 s at 31.25 latents/s, 80 mels
    assert first["context"].shape == (2, 96, 384) and second["video"].shape[0] == 1
    captions = json.loads((tmp_path / "captions.json").read_text())
    assert [c["seed"] for c in captions] == [10, 11, 12]
    clip = make_clip(12, config=world_config_for(preset))
    assert captions[2]["caption"] == clip.caption
    video = torch.from_numpy(clip.video).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    torch.testing.assert_close(second["video"], build_codecs(preset)[0].encode(video))


def test_a_stopped_build_resumes_with_the_shards_it_finished(tmp_path, monkeypatch):
    """A re-run with the same settings keeps the finished shards (their clips are not made
    again) and ends with the files a build that never stopped writes; other settings
    rebuild every shard."""
    from duet.data import dataset

    preset = get_preset("demo")
    whole = build_shards(tmp_path / "whole", preset, range(10, 15), shard_size=2, progress=False)
    part = tmp_path / "part"
    build_shards(part, preset, range(10, 15), shard_size=2, progress=False)
    (part / "shard-00001.safetensors").unlink()  # stopped: the second shard and the captions
    (part / "captions.json").unlink()  # are missing
    made = []
    real = dataset.make_clip
    monkeypatch.setattr(dataset, "make_clip", lambda seed, **kw: made.append(seed) or real(seed, **kw))
    paths = build_shards(part, preset, range(10, 15), shard_size=2, progress=False)
    assert made == [12, 13]
    assert (part / "captions.json").read_text() == (tmp_path / "whole" / "captions.json").read_text()
    for a, b in zip(paths, whole, strict=True):
        assert load_file(a).keys() == load_file(b).keys()
        for key, value in load_file(a).items():
            torch.testing.assert_close(value, load_file(b)[key])
    made.clear()
    config = world_config_for(preset, kinds=("bounce",))
    build_shards(part, preset, range(10, 13), shard_size=2, config=config, progress=False)
    assert made == [10, 11, 12]  # other settings: nothing kept
    assert sorted(p.name for p in part.glob("shard-*")) == ["shard-00000.safetensors",
                                                            "shard-00001.safetensors"]
