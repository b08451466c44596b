"""A DiT's model config read from its safetensors header, and `duet convert` without a
preset: the tiny reference weights give the tiny model, the real key table gives Ovi's."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from duet.cli import main
from duet.errors import CheckpointError, ConfigError
from duet.model import TwinModel
from duet.presets import get_preset
from duet.reference import load_cases, run_case
from duet.weights import (BUNDLE_WEIGHTS, load_weights, read_config, save_weights, tower_from_shapes,
                          twin_from_header, write_config)


def test_tiny_reference_header_gives_the_tiny_model(reference_dir):
    model = twin_from_header(reference_dir / "weights.safetensors", num_heads=2, text_len=16)
    assert model == get_preset("tiny").model


def test_real_key_table_gives_the_ovi_model_with_wan_heads(reference_dir):
    keys = json.loads((reference_dir / "real_keys.json").read_text())["keys"]
    shapes = {k: tuple(v) for k, v in keys.items()}
    ovi = get_preset("ovi-720x720-5s").model
    assert tower_from_shapes(shapes, "video") == ovi.video  # 3072 / 128 = 24 heads, 512 rows
    assert tower_from_shapes(shapes, "audio", rope_time_scale=0.19676) == ovi.audio


def test_head_count_is_required_when_the_width_is_not_wan_like(reference_dir):
    with pytest.raises(ConfigError, match="--num-heads"):
        twin_from_header(reference_dir / "weights.safetensors")


def test_convert_without_preset_runs_the_reference_case(reference_dir, tmp_path, capsys):
    out = tmp_path / "bundle"
    assert main(["convert", str(reference_dir / "weights.safetensors"), "--num-heads", "2",
                 "--text-len", "16", "-o", str(out)]) == 0
    assert "preset tiny" in capsys.readouterr().out
    preset, extra = read_config(out)
    assert preset == get_preset("tiny") and extra["random_init"] is False
    model = TwinModel.from_config(preset.model, device="meta")
    model.load_state_dict(load_weights(out / BUNDLE_WEIGHTS), strict=True, assign=True)
    cases, tensors = load_cases(reference_dir)
    outs = run_case(model.float().eval(), cases["a_t2v_joint"], tensors, torch.float32)
    for key, ours in outs.items():
        torch.testing.assert_close(ours, tensors[key.replace("out.", "out_hp.", 1)],
                                   atol=1e-4, rtol=1e-4)


def test_convert_reads_a_shape_no_preset_has(tmp_path):
    tiny = get_preset("tiny").model
    video = dataclasses.replace(tiny.video, dim=32, ffn_dim=96, num_heads=1, num_layers=2,
                                in_dim=8, out_dim=8, text_dim=24, qk_norm=False)
    audio = dataclasses.replace(tiny.audio, dim=32, ffn_dim=96, num_heads=1, num_layers=2,
                                in_dim=6, out_dim=6, text_dim=24, qk_norm=False,
                                audio_stem_kernel=3)
    model = TwinModel.from_config(dataclasses.replace(tiny, video=video, audio=audio))
    save_weights(model.state_dict(), tmp_path / "dit.safetensors")
    assert main(["convert", str(tmp_path / "dit.safetensors"), "--num-heads", "1",
                 "--text-len", "16", "-o", str(tmp_path / "b")]) == 0
    preset, _ = read_config(tmp_path / "b")
    assert preset.name == "custom" and preset.model == model.cfg
    assert preset.media == get_preset("ovi-720x720-5s").media


@pytest.mark.parametrize("args, needle", [
    ([], "--num-heads"),
    (["--num-heads", "3"], "not divisible by num_heads 3"),
    (["--preset", "tiny", "--num-heads", "2"], "either a preset or num_heads"),
    (["--preset", "demo"], "wrong shape"),
])
def test_convert_refusals_are_one_line(reference_dir, tmp_path, capsys, args, needle):
    out = tmp_path / "b"
    assert main(["convert", str(reference_dir / "weights.safetensors"), *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("name", ["missing.safetensors", "."])
def test_a_missing_checkpoint_is_one_line(tmp_path, capsys, name):
    assert main(["convert", str(tmp_path / name), "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err


def test_a_file_without_ovi_towers_is_named(tmp_path):
    save_weights({"encoder.weight": torch.zeros(2, 2)}, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="video_model.time_embedding.0.weight"):
        twin_from_header(tmp_path / "x.safetensors", num_heads=1)


def test_a_weights_folder_needs_a_preset(tmp_path, capsys):
    assert main(["convert", "--weights", str(tmp_path), "-o", str(tmp_path / "b")]) == 2
    assert "--weights needs --preset" in capsys.readouterr().err


def test_convert_casts_a_trained_bundle_and_carries_its_codec(tmp_path, capsys):
    """A trained bundle (fp32, its own shape and a codec file it names) -> the bf16 copy the
    package ships: same config, the codec copied along, weights equal after the cast."""
    src = tmp_path / "final"
    preset = dataclasses.replace(get_preset("tiny"), name="custom",
                                 codecs={"video": {"name": "frames", "weights": "video_codec/c.safetensors"}})
    model = TwinModel.from_config(preset.model)
    save_weights(model.state_dict(), src / BUNDLE_WEIGHTS)
    save_weights({"w": torch.arange(4.0)}, src / "video_codec" / "c.safetensors")
    write_config(src, preset, {"random_init": False, "note": "trained"})
    out = tmp_path / "ship"
    assert main(["convert", str(src), "--dtype", "bfloat16", "-o", str(out)]) == 0
    shipped, extra = read_config(out)
    assert shipped == preset and extra == {"random_init": False, "note": "trained; stored as bfloat16"}
    weights = load_weights(out / BUNDLE_WEIGHTS)
    assert weights.keys() == model.state_dict().keys()
    assert all(weights[k].dtype == torch.bfloat16 and torch.equal(weights[k], v.bfloat16())
               for k, v in model.state_dict().items())
    assert torch.equal(load_weights(out / "video_codec" / "c.safetensors")["w"], torch.arange(4.0))
    assert main(["convert", str(src), "--preset", "tiny", "-o", str(out)]) == 2
    assert "is a bundle" in capsys.readouterr().err


def test_convert_sets_the_sampler_defaults_a_bundle_ships_with(tmp_path, capsys):
    """A run records the preset's sampler; the shipped copy takes the settings measured best."""
    src = tmp_path / "final"
    preset = get_preset("tiny")
    save_weights(TwinModel.from_config(preset.model).state_dict(), src / BUNDLE_WEIGHTS)
    write_config(src, preset, {"random_init": False, "note": "trained"})
    out = tmp_path / "ship"
    assert main(["convert", str(src), "-o", str(out), "--set", "sampler.video_guidance=1",
                 "--set", "sampler.audio_negative=", "--set", "note=recipe X"]) == 0
    shipped, extra = read_config(out)
    assert shipped.sampler == dataclasses.replace(preset.sampler, video_guidance=1.0, audio_negative="")
    assert shipped.model == preset.model and extra == {"random_init": False, "note": "recipe X"}
    for flag, err in ((["--set", "model.video.dim=8"], "takes only sampler"),
                      (["--set", "sampler.steps=many"], "sampler.steps"),
                      (["--set", "sampler.guidance=2"], "guidance")):
        assert main(["convert", str(src), "-o", str(tmp_path / "bad"), *flag]) == 2
        assert err in capsys.readouterr().err
    dit = tmp_path / "dit.safetensors"
    save_weights({"w": torch.zeros(1)}, dit)
    assert main(["convert", str(dit), "-o", str(out), "--set", "sampler.steps=2"]) == 2
    assert "applies to a bundle directory" in capsys.readouterr().err
