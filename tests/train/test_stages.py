"""Which parameters each training stage trains."""

from __future__ import annotations

import pytest

from duet.errors import ConfigError
from duet.model import TwinModel
from duet.presets import get_preset
from duet.train import STAGES, apply_stage, get_stage
from duet.train.config import TrainConfig

from train_helpers import TINY_MODEL


@pytest.fixture
def model() -> TwinModel:
    return TwinModel.from_config(TrainConfig(model=TINY_MODEL).twin(), device="meta")


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_fusion_freezes_every_ffn_and_trains_attention_and_fusion_layers(model):
    count = apply_stage(model, "fusion")
    trainable = _trainable(model)
    assert count == sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    assert not any(".ffn." in n for n in trainable)
    assert all(".self_attn." in n or ".cross_attn." in n for n in trainable)
    for tower in ("video_model", "audio_model"):
        for layer in ("k_fusion.weight", "v_fusion.bias", "pre_attn_norm_fusion.weight",
                      "norm_k_fusion.weight", "q.weight", "o.bias"):
            assert f"{tower}.blocks.1.cross_attn.{layer}" in trainable
        assert f"{tower}.blocks.0.self_attn.k.weight" in trainable
        assert f"{tower}.patch_embedding.weight" not in trainable
        assert f"{tower}.blocks.0.modulation.modulation" not in trainable
    assert get_stage("fusion").betas == (0.9, 0.95)
    assert (get_stage("fusion").video_weight, get_stage("fusion").audio_weight) == (0.85, 0.15)


def test_tower_alone_stages(model):
    apply_stage(model, "audio")
    trainable = _trainable(model)
    assert trainable and all(n.startswith("audio_model.") for n in trainable)
    assert not any("fusion" in n for n in trainable)  # unused when the tower runs alone
    assert "audio_model.blocks.0.ffn.0.weight" in trainable
    assert get_stage("audio").modalities == ("audio",)
    apply_stage(model, "video")
    assert all(n.startswith("video_model.") for n in _trainable(model))


def test_full_trains_everything(model):
    assert apply_stage(model, "full") == sum(p.numel() for p in model.parameters())


def test_unknown_stage_lists_the_choices(model):
    with pytest.raises(ConfigError, match=r"\['audio', 'full', 'fusion', 'video'\]"):
        apply_stage(model, "stage2")
    assert sorted(STAGES) == ["audio", "full", "fusion", "video"]


def test_ovi_fusion_stage_trains_5_7b_parameters():
    ovi = TwinModel.from_config(get_preset("ovi-720x720-5s").model, device="meta")
    assert apply_stage(ovi, "fusion") == 5_665_443_840  # the paper: 5.7B of 11B trainable
    assert sum(p.numel() for n, p in ovi.named_parameters() if ".ffn." in n) == 5_285_867_520


def test_freeze_patterns_freeze_on_top_of_the_stage(model):
    pinned = ("*.cross_attn.q.*", "*.cross_attn.k_fusion.*")
    full = sum(p.numel() for p in model.parameters())
    frozen = sum(p.numel() for n, p in model.named_parameters()
                 if ".cross_attn.q." in n or ".cross_attn.k_fusion." in n)
    assert frozen > 0 and apply_stage(model, "full", pinned) == full - frozen
    trainable = _trainable(model)
    assert "audio_model.blocks.0.cross_attn.q.weight" not in trainable
    assert "audio_model.blocks.0.cross_attn.v_fusion.weight" in trainable
    with pytest.raises(ConfigError, match=r"freeze pattern\(s\) \['\*.crossattn.\*'\] match no parameter"):
        apply_stage(model, "full", ("*.crossattn.*",))
    assert TrainConfig.from_dict({"freeze": ["*.cross_attn.q.*"]}).freeze == ("*.cross_attn.q.*",)
    with pytest.raises(ConfigError, match="freeze"):
        TrainConfig.from_dict({"freeze": "*.q.*"})
