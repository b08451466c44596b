"""Official `dit/*.json` configs load as they are (tests/fixtures/ovi_tiny/config.json holds
them in official form: the tiny dicts and, under `real`, Ovi's own values)."""

from __future__ import annotations

import json

import pytest

from duet.config import Preset
from duet.errors import CheckpointError, ConfigError
from duet.presets import get_preset
from duet.weights import read_config


@pytest.fixture(scope="module")
def official(reference_dir) -> dict:
    return json.loads((reference_dir / "config.json").read_text())


def preset_from(video: dict, audio: dict) -> Preset:
    return Preset.from_dict({"name": "official", "model": {"video": video, "audio": audio}})


def test_tiny_official_dicts_build_the_tiny_model(official):
    assert official["text_dim"] == 4096  # WanModel's default, and TowerConfig's
    assert preset_from(official["video"], official["audio"]).model == get_preset("tiny").model


def test_real_official_dicts_build_the_ovi_model(official):
    model = preset_from(official["real"]["video"], official["real"]["audio"]).model
    assert model == get_preset("ovi-720x720-5s").model
    assert model.audio.rope_time_scale == official["real"]["audio"]["temporal_rope_scaling_factor"]


def test_a_bundle_config_may_hold_the_official_dicts(official, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"format": "duet-bundle", "name": "tiny-official",
         "model": {"video": official["video"], "audio": official["audio"]}}))
    preset, _ = read_config(tmp_path)
    assert preset.model == get_preset("tiny").model


@pytest.mark.parametrize("tower, change, needle", [
    ("video", {"window_size": [256, 256]}, "local-window"),
    ("video", {"window_size": -1}, "local-window"),
    ("video", {"model_type": "i2v"}, "'i2v' is not supported"),
    ("video", {"model_type": "t2a"}, "['t2v', 'ti2v']"),
    ("audio", {"model_type": "tt2a"}, "['t2a']"),
    ("audio", {"model_type": ["t2a"]}, "not supported"),
    ("audio", {"rope_time_scale": 0.5}, "disagree"),
    ("audio", {"modality": "video"}, "modality 'video'"),
])
def test_unsupported_official_values_are_refused_by_name(official, tower, change, needle):
    towers = {"video": dict(official["video"]), "audio": dict(official["audio"])}
    towers[tower].update(change)
    with pytest.raises(ConfigError, match="^" + tower) as err:
        preset_from(**towers)
    assert needle in str(err.value)


def test_t2v_is_a_video_model_type(official):
    assert preset_from({**official["video"], "model_type": "t2v"}, official["audio"]).model \
        == get_preset("tiny").model


def test_a_bad_bundle_config_names_the_file(official, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"format": "duet-bundle", "name": "x",
         "model": {"video": {**official["video"], "window_size": [8, 8]}, "audio": official["audio"]}}))
    with pytest.raises(CheckpointError, match="config.json: video tower: window_size"):
        read_config(tmp_path)


def test_codec_overrides_merge_into_the_preset_and_reach_training_and_rl(tmp_path):
    from duet.presets import codecs_with
    from duet.train.config import TrainConfig, check_codec_files
    from duet.train.rl.config import RLConfig

    demo = get_preset("demo")
    merged = codecs_with(demo, {"video": {"weights": "chroma.safetensors"}})
    assert merged.codecs["video"] == {"name": "frames", "weights": "chroma.safetensors"}
    assert merged.codecs["audio"] == demo.codecs["audio"] and "weights" not in demo.codecs["video"]
    assert codecs_with(demo, {"video": {"name": "pixels", "stride": [1, 16, 16]}}).codecs["video"] == {
        "name": "pixels", "stride": [1, 16, 16]}  # a new name starts a fresh spec
    with pytest.raises(ConfigError, match="codecs.vidoe: expected a table"):
        codecs_with(demo, {"vidoe": {}})
    spec = {"video": {"weights": str(tmp_path / "chroma.safetensors")}}
    with pytest.raises(ConfigError, match="codecs.video.weights = .* does not exist"):
        check_codec_files(TrainConfig(preset="demo", codecs=spec))
    (tmp_path / "chroma.safetensors").write_bytes(b"")
    merged = codecs_with(demo, spec)
    assert TrainConfig(preset="demo", codecs=spec).bundle_preset().codecs == merged.codecs
    assert RLConfig(preset="demo", codecs=spec).train_config().bundle_preset().codecs == merged.codecs
