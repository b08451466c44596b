"""The real presets build the official 11.66B structure with the official key names."""

from __future__ import annotations

import json

import pytest
import torch

from duet.config import Preset
from duet.errors import CheckpointError, ConfigError
from duet.model import TwinModel
from duet.presets import PRESETS, get_preset
from duet.weights import read_config


@pytest.mark.parametrize("name", ["ovi-720x720-5s", "ovi-960x960-5s", "ovi-960x960-10s"])
def test_real_preset_keys_shapes_and_count(reference_dir, name):
    real = json.loads((reference_dir / "real_keys.json").read_text())
    model = TwinModel.from_config(get_preset(name).model, device="meta")
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == real["keys"]
    total = sum(p.numel() for p in model.parameters())
    assert total == real["param_counts"]["total"] == 11_660_753_108
    video = sum(p.numel() for p in model.video_model.parameters())
    assert video == real["param_counts"]["video_model_total"]


def test_tiny_preset_matches_reference_config(reference_dir):
    model = TwinModel.from_config(get_preset("tiny").model, device="meta")
    assert sum(p.numel() for p in model.parameters()) == 1_358_164
    assert len(model.state_dict()) == 237


def test_rope_time_scale_follows_latent_rates():
    assert get_preset("ovi-720x720-5s").model.audio.rope_time_scale == 0.19676
    assert get_preset("ovi-960x960-10s").model.audio.rope_time_scale == 0.19676


def test_unknown_preset_lists_choices():
    with pytest.raises(ConfigError, match="ovi-720x720-5s"):
        get_preset("ovi-1080p")
    assert "tiny" in PRESETS


def test_meta_model_loads_real_dtype_without_memory():
    model = TwinModel.from_config(get_preset("ovi-720x720-5s").model, device="meta",
                                  dtype=torch.bfloat16)
    assert all(p.is_meta and p.dtype == torch.bfloat16 for p in model.parameters())


def test_every_preset_round_trips_through_its_dict():
    for preset in PRESETS.values():
        assert Preset.from_dict(json.loads(preset.to_json())) == preset


@pytest.mark.parametrize("path, value, needle", [
    (("media", "fps"), "fast", "media.fps is 'fast' (str); expected a number"),
    (("model", "video", "dim"), "big", "model.video.dim is 'big' (str); expected an integer"),
    (("model", "audio", "patch_size"), [1.5],
     "model.audio.patch_size is [1.5] (list); expected a list of integers"),
    (("model", "video", "qk_norm"), 1, "model.video.qk_norm is 1 (int); expected true or false"),
    (("sampler", "slg_block"), "x", "sampler.slg_block is 'x' (str); expected an integer or null"),
    (("sampler", "solver"), "heun", "expected one of 'unipc', 'euler'"),
    (("media",), [24], "media must be a JSON object"),
    (("model",), "ovi", "model must be a JSON object"),
])
def test_config_values_of_the_wrong_type_are_named(path, value, needle):
    d = json.loads(get_preset("demo").to_json())
    parent = d
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    with pytest.raises(ConfigError) as e:
        Preset.from_dict(d)
    assert needle in str(e.value)


def test_a_bundle_config_that_is_not_an_object_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="holds a JSON list, not the object"):
        read_config(tmp_path)
