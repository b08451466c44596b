"""Which parameters each training stage trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from duet.errors import ConfigError
from duet.model import TwinModel
from duet.presets import get_preset
from duet.train import STAGES, apply_stage, get_stage, train
from duet.train.config import TrainConfig
from duet.train.stages import FUSION_LAYERS
from duet.weights import load_weights

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


def test_keep_towers_freezes_a_tower_but_its_fusion_layers(model):
    full = sum(p.numel() for p in model.parameters())
    video = {n: p.numel() for n, p in model.named_parameters() if n.startswith("video_model.")}
    fusion = {n for n in video if any(f".cross_attn.{layer}." in n for layer in FUSION_LAYERS)}
    assert len(fusion) == 2 * 7  # k/v_fusion weight and bias, two norms' weights and a bias
    kept = full - sum(n for name, n in video.items() if name not in fusion)
    assert apply_stage(model, "full", keep_towers=("video",)) == kept
    trainable = _trainable(model)
    assert {n for n in trainable if n.startswith("video_model.")} == fusion
    assert "audio_model.blocks.0.ffn.0.weight" in trainable
    with pytest.raises(ConfigError, match="keep_towers names 'video' and/or 'audio'"):
        apply_stage(model, "full", keep_towers=("vision",))
    with pytest.raises(ConfigError, match="keep_towers"):
        TrainConfig.from_dict({"keep_towers": ["vision"]})
    with pytest.raises(ConfigError, match="trains no parameter"):
        apply_stage(model, "video", keep_towers=("video",))


def test_a_joint_stage_leaves_a_kept_tower_as_it_was(make_config, dataset):
    """Three real training steps: the kept tower's own weights do not move, its fusion layers
    and the other tower do."""
    train(make_config(stage="fusion", keep_towers=["video"], steps=3, checkpoint_every=1),
          dataset=dataset)
    first, last = (load_weights(next(Path(make_config().out_dir).glob(f"checkpoints/step_*{s}"))
                                / "model.safetensors") for s in (1, 3))
    moved = {n for n in first if not torch.equal(first[n], last[n])}
    assert "video_model.blocks.0.cross_attn.k_fusion.weight" in moved
    assert "audio_model.blocks.0.self_attn.q.weight" in moved
    assert not any(n.startswith("video_model.") and "fusion" not in n for n in moved)
