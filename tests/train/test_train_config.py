"""TrainConfig: bad keys, types and shapes fail before any compute, naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from duet.errors import ConfigError
from duet.model import TwinModel
from duet.presets import get_preset
from duet.train import LatentDataset, TrainConfig, train
from duet.train.config import check_batch

from train_helpers import TINY_MODEL, synthetic_tensors


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if a model is ever built."""
    def boom(*args, **kwargs):
        raise AssertionError("a model was built before the config error")
    monkeypatch.setattr(TwinModel, "from_config", boom)


def test_unknown_keys_are_named():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['lerning_rate'\]"):
        TrainConfig.from_dict({"lerning_rate": 1e-4})
    with pytest.raises(ConfigError, match="unknown model key 'dims'"):
        TrainConfig.from_dict({"model": {"dims": 32}})
    with pytest.raises(ConfigError, match=r"unknown model key audio\.'heads'"):
        TrainConfig.from_dict({"model": {"audio": {"heads": 2}}})


def test_wrong_types_and_values_are_named():
    with pytest.raises(ConfigError, match="steps = '10' has the wrong type"):
        TrainConfig.from_dict({"steps": "10"})
    with pytest.raises(ConfigError, match="batch_size must be > 0"):
        TrainConfig.from_dict({"batch_size": 0})
    with pytest.raises(ConfigError, match="fsdp_unit"):
        TrainConfig.from_dict({"fsdp_unit": "layer"})
    with pytest.raises(ConfigError, match="stage 'stage3' is unknown"):
        TrainConfig.from_dict({"stage": "stage3"})
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig.from_dict({"ema_decay": 1.0})


def test_impossible_model_shape_is_named():
    with pytest.raises(ConfigError, match="model.*dim 30 is not divisible by num_heads 4"):
        TrainConfig.from_dict({"model": {**TINY_MODEL, "dim": 30, "num_heads": 4}})


def test_batch_must_split_over_ranks_and_micro_steps():
    with pytest.raises(ConfigError, match="batch_size 6 is not divisible by grad_accum 4"):
        TrainConfig.from_dict({"batch_size": 6, "grad_accum": 4})
    cfg = TrainConfig.from_dict({"batch_size": 6, "grad_accum": 2})
    check_batch(cfg, world=3)
    with pytest.raises(ConfigError, match="not divisible by world size 2 x grad_accum 2"):
        check_batch(cfg, world=2)


def test_data_that_does_not_fit_the_model_fails_before_compute(no_compute, tmp_path):
    cfg = TrainConfig.from_dict({"model": TINY_MODEL, "out_dir": str(tmp_path), "batch_size": 2})
    odd = synthetic_tensors(4)
    odd["video"] = torch.zeros(4, 4, 2, 5, 4)  # H = 5 is not divisible by the patch (1, 2, 2)
    with pytest.raises(ConfigError, match=r"\(H, W\) = \(5, 4\) are not divisible by model.patch_size \(2, 2\)"):
        train(cfg, dataset=LatentDataset(odd))
    wide = synthetic_tensors(4)
    wide["context"] = torch.zeros(4, 5, 17)
    with pytest.raises(ConfigError, match="model.text_dim is 16"):
        train(cfg, dataset=LatentDataset(wide))
    with pytest.raises(ConfigError, match="stage 'full' needs video latents"):
        train(cfg, dataset=LatentDataset(synthetic_tensors(4, video=False)))
    with pytest.raises(ConfigError, match="data is empty"):
        train(cfg)
    assert not any(tmp_path.iterdir())  # nothing written either


def test_a_temporal_patch_rescales_the_audio_rope_to_video_tokens():
    """Ovi's factor maps audio latents onto video latent frames; with 4 frames per video
    token the shared axis counts tokens, so the factor is a quarter (demo: 0.768 -> 0.192)."""
    def twin(model):
        return TrainConfig.from_dict({"preset": "demo", "model": model}).twin()
    assert twin({}).audio.rope_time_scale == 0.768
    assert twin({"video": {"patch_size": [4, 2, 2]}}).audio.rope_time_scale == 0.192
    assert twin({"video": {"patch_size": [4, 2, 2]}, "audio": {"rope_time_scale": 1.0}}).audio.rope_time_scale == 1.0
    bridged = TrainConfig.from_dict({"preset": "demo-bridge", "model": {"video": {"patch_size": [4, 2, 2]}}})
    assert bridged.twin().audio.rope_time_scale == get_preset("demo-bridge").model.audio.rope_time_scale


def test_json_and_toml_files(tmp_path):
    a = {"model": TINY_MODEL, "stage": "fusion", "data": ["x"]}
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.toml").write_text(
        'stage = "fusion"\ndata = ["x"]\nbetas = [0.9, 0.99]\n[model]\ndim = 32\nnum_heads = 2\n'
        '[model.audio]\nin_dim = 6\n')
    a, b = TrainConfig.from_file(tmp_path / "a.json"), TrainConfig.from_file(tmp_path / "b.toml")
    assert a.data == ("x",) and a.twin().video.dim == 32 and a.adam_betas == (0.9, 0.95)
    assert b.adam_betas == (0.9, 0.99) and b.twin().audio.in_dim == 6 and b.peak_lr == 5e-5
    assert a.flow().video_weight == 0.85 and a.flow().audio_weight == 0.15
    (tmp_path / "c.toml").write_text("steps = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        TrainConfig.from_file(tmp_path / "c.toml")


def test_the_video_tower_stages_of_the_demo_recipe():
    """recipes/demo/{pictures,clips,uncond,uncond2}.json: the video tower docs/default-model.md
    measures, on the chroma frame codec (18 channels, x0 head, chroma loss weighted 8x)."""
    root = Path(__file__).resolve().parents[2] / "recipes" / "demo"
    stages = {n: TrainConfig.from_file(root / f"{n}.json") for n in ("pictures", "clips", "uncond", "uncond2")}
    assert stages["pictures"].video_frames == 1 and stages["pictures"].batch_size == 64
    assert stages["clips"].init_from == "pictures/final"
    assert stages["uncond"].text_dropout == stages["uncond2"].text_dropout == 0.1
    assert stages["uncond2"].init_from == "uncond/final"
    for c in stages.values():
        assert c.flow().weighting("video") == "x0" and c.twin().video.in_dim == 18
        assert c.video_channel_weights[-2:] == (8, 8)


def test_set_overrides_keys_and_tables(tmp_path):
    """`duet train --set KEY=VALUE`: a dotted KEY reaches into tables, VALUE is JSON (or a
    plain string), so one checked-in config serves its variants (recipes/demo/run.sh)."""
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"preset": "demo", "stage": "fusion", "steps": 10,
                                "init_from": {"video": "video/final", "audio": "audio/final"}}))
    cfg = TrainConfig.from_file(path, ["steps=20", "model.audio.rope_time_scale=1.0",
                                       "init_from.video=/runs/demo/video/final",
                                       "independent_t=true", "data=[\"a\", \"b\"]", "out_dir=x=y"])
    assert cfg.steps == 20 and cfg.independent_t is True and cfg.data == ("a", "b")
    assert cfg.init_from == {"video": "/runs/demo/video/final", "audio": "audio/final"}
    assert cfg.out_dir == "x=y" and cfg.twin().audio.rope_time_scale == 1.0
    assert json.loads(path.read_text())["steps"] == 10  # the file is left as it is
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        TrainConfig.from_file(path, ["steps"])
    with pytest.raises(ConfigError, match="steps is not a table"):
        TrainConfig.from_file(path, ["steps.x=1"])
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['stpes'\]"):
        TrainConfig.from_file(path, ["stpes=3"])


def test_duet_train_and_rl_pass_set_to_the_config(tmp_path, caplog):
    from duet.cli import main

    path = tmp_path / "run.json"
    path.write_text(json.dumps({"preset": "demo", "batch_size": 2}))
    assert main(["train", str(path), "--set", "batch_size=0", "-q"]) == 2
    assert "batch_size must be > 0" in caplog.text
    rl = tmp_path / "rl.json"
    rl.write_text(json.dumps({"preset": "demo", "rewards": {"sync": 1.0}}))
    assert main(["rl", str(rl), "--set", "group_size=1", "-q"]) == 2
    assert "group_size must be >= 2" in caplog.text


def test_a_bundle_directory_is_a_base_preset(tmp_path):
    """Fine-tuning a trained bundle takes its shape and codecs from its config.json; the
    `model` and `codecs` keys still override on top; a wrong name says what else it may be."""
    import dataclasses

    from duet.train.model_setup import preset_with
    from duet.weights import write_config

    demo = get_preset("demo")
    trained = preset_with(demo, {"video": {"in_dim": 18, "out_dim": 18}, "num_layers": 2})
    trained = dataclasses.replace(trained, codecs={
        **trained.codecs, "video": {"name": "frames", "weights": "video_codec/frames.safetensors"}})
    write_config(tmp_path / "bundle", trained, {})
    cfg = TrainConfig(preset=str(tmp_path / "bundle"))
    assert cfg.twin() == trained.model
    assert cfg.base_preset().codecs["video"]["weights"] == str(
        tmp_path / "bundle" / "video_codec" / "frames.safetensors")
    assert TrainConfig(preset=str(tmp_path / "bundle"), model={"num_layers": 3}).twin().video.num_layers == 3
    with pytest.raises(ConfigError, match="unknown preset 'nope'; .* or give a bundle directory"):
        TrainConfig(preset="nope")
