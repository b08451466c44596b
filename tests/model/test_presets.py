"""The real presets build the official 11.66B structure with the official key names."""

from __future__ import annotations

import json

import pytest
import torch

from duet.config import PRESETS, get_preset
from duet.errors import ConfigError
from duet.model import TwinModel


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
