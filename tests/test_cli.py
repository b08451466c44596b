"""The `duet` command line: exit codes, files written, messages."""

from __future__ import annotations

import pytest

from duet import pipeline as pipeline_module
from duet.cli import main
from duet.media import read_mp4


def test_generate_writes_mp4_with_the_default_model(tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    rc = main(["generate", "a ball bounces <AUDCAP>thud<ENDAUDCAP>", "-o", str(out),
               "--steps", "2", "--duration", "0.5", "--quiet", "--seed", "1"])
    assert rc == 0
    frames, audio, fps, sr = read_mp4(out)
    assert frames.shape[0] == 13 and sr == 16000 and len(audio) > 0
    # the RANDOM warning appears exactly when this install ships no trained demo weights
    assert ("RANDOM" in capsys.readouterr().err) == (pipeline_module._shipped_bundle("demo") is None)


def test_generate_without_weights_warns_about_random_weights(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline_module, "_shipped_bundle", lambda name: None)
    out = tmp_path / "clip.mp4"
    rc = main(["generate", "a ball <AUDCAP>thud<ENDAUDCAP>", "-o", str(out),
               "--steps", "1", "--duration", "0.5", "--quiet"])
    assert rc == 0 and out.is_file()
    assert "RANDOM" in capsys.readouterr().err


@pytest.mark.parametrize("args, needle", [
    (["generate", "<S>never closed", "--steps", "1"], "<S>"),
    (["generate", "ok", "--model", "no-such-model"], "neither a bundle"),
    (["generate", "ok", "--height", "1", "--width", "900"], "aspect ratio"),
    (["generate", "ok", "--video-guidance", "-1"], "video_scale"),
    (["generate", "ok", "--bridge-guidance", "2,-1"], "bridge_audio"),
    (["generate", "ok", "--stg-guidance", "1", "--stg-blocks", "9"], "stg_blocks [9]"),
    (["generate", "ok", "--guidance-rescale", "2"], "rescale"),
    (["info", "ovi-9000"], "unknown preset"),
])
def test_bad_input_exits_2_without_output(tmp_path, capsys, args, needle):
    out = tmp_path / "x.mp4"
    assert main([*args, "-o", str(out)] if args[0] == "generate" else args) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_info_reports_ovi_sizes(capsys):
    assert main(["info", "ovi-720x720-5s"]) == 0
    out = capsys.readouterr().out
    assert "11.661B parameters" in out
    assert "15004 tokens" in out and "157 tokens" in out and "0.19676" in out


def test_convert_official_checkpoint(reference_dir, tmp_path, capsys):
    assert main(["convert", str(reference_dir / "weights.safetensors"), "--preset", "tiny",
                 "-o", str(tmp_path / "bundle")]) == 0
    assert (tmp_path / "bundle" / "config.json").exists()
    assert main(["info", str(tmp_path / "bundle")]) == 0
    assert "0.001B parameters" in capsys.readouterr().out
    # the same file declared as the wrong preset is refused with the mismatching keys
    assert main(["convert", str(reference_dir / "weights.safetensors"), "--preset", "demo",
                 "-o", str(tmp_path / "bad")]) == 2
    assert "shape mismatches" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_generate_from_an_image_file(tmp_path):
    import numpy as np

    from duet.media import save_png

    from duet.data.world import make_clip

    img = make_clip(1_000_005, kind="bounce").video[0]  # a held-out world frame (64x64)
    save_png(tmp_path / "first.png", img)
    out = tmp_path / "i2v.mp4"
    assert main(["generate", "a ball", "-o", str(out), "--image", str(tmp_path / "first.png"),
                 "--steps", "2", "--duration", "0.5", "--quiet"]) == 0
    first = read_mp4(out).frames[0].astype(float)
    assert np.abs(first - img).mean() < 10  # codec round trip + H.264
    assert main(["generate", "x", "-o", str(tmp_path / "y.mp4"), "--image", str(tmp_path / "nope.png")]) == 2


def test_eval_sync_on_world_clips(tmp_path, capsys):
    from duet.data.world import make_clip
    from duet.media import write_mp4

    paths = []
    for seed in (1_000_001, 1_000_002):
        clip = make_clip(seed, kind="bounce")
        paths.append(str(write_mp4(tmp_path / f"{seed}.mp4", clip.video, clip.audio, 24, 16000)))
    assert main(["eval", "sync", *paths]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1].split("|")
    assert last[1].strip() == "all" and int(last[2]) >= 4
    assert float(last[4]) < 10 and last[5].strip() == "100%"  # ground truth is in sync
    assert main(["eval", "sync", str(tmp_path / "missing.mp4")]) == 2


def test_data_build_train_generate_end_to_end(tmp_path, capsys):
    """World clips -> shards -> `duet train` (small demo-shaped model) -> `duet generate`."""
    import json

    data = tmp_path / "shards"
    assert main(["data", "build", "-o", str(data), "--clips", "4", "--shard-size", "2", "-q"]) == 0
    cfg = {"preset": "demo", "model": {"dim": 32, "ffn_dim": 64, "num_layers": 2},
           "data": [str(data)], "batch_size": 2, "steps": 6, "warmup_steps": 1, "lr": 1e-3,
           "checkpoint_every": 3, "out_dir": str(tmp_path / "run"), "progress": False}
    (tmp_path / "train.json").write_text(json.dumps(cfg))
    assert main(["train", str(tmp_path / "train.json"), "-q"]) == 0
    bundle = tmp_path / "run" / "final"
    assert (bundle / "model.safetensors").exists() and (tmp_path / "run" / "loss.png").exists()
    out = tmp_path / "trained.mp4"
    assert main(["generate", "a red ball bounces", "-o", str(out), "--model", str(bundle),
                 "--steps", "2", "--duration", "0.5", "-q"]) == 0
    assert "RANDOM" not in capsys.readouterr().err
    assert read_mp4(out).frames.shape == (13, 64, 64, 3)
    (tmp_path / "bad.json").write_text(json.dumps({**cfg, "stpes": 3}))
    assert main(["train", str(tmp_path / "bad.json")]) == 2


def test_generate_from_video_and_from_audio(tmp_path):
    from duet.data.world import make_clip
    from duet.media import write_mp4, write_wav

    world = make_clip(1_000_004, kind="bounce")
    src = write_mp4(tmp_path / "in.mp4", world.video[:24], world.audio[:16000], 24, 16000)
    out = tmp_path / "v2a.mp4"
    assert main(["generate", world.caption, "--from-video", str(src), "-o", str(out),
                 "--steps", "2", "-q"]) == 0
    frames, audio, _, _ = read_mp4(out)
    assert frames.shape == (24, 64, 64, 3) and abs(len(audio) - 16000) <= 16
    wav = write_wav(tmp_path / "in.wav", world.audio[:24000], 16000)
    out = tmp_path / "a2v.mp4"
    assert main(["generate", world.caption, "--from-audio", str(wav), "-o", str(out),
                 "--steps", "2", "-q"]) == 0
    assert read_mp4(out).frames.shape == (36, 64, 64, 3)


def test_generate_merges_lora_adapters(tmp_path):
    import torch

    from duet.config import get_preset
    from duet.lora import LoraSpec, add_lora, save_adapter
    from duet.model import TwinModel

    model = TwinModel.from_config(get_preset("demo").model)
    spec = LoraSpec(rank=2, targets=("self_attn",))
    add_lora(model, spec)
    with torch.no_grad():  # peft starts B at zero; a trained adapter would not be
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    adapter = save_adapter(tmp_path / "adapter", model, spec)
    outs = {}
    for tag, extra in (("plain", []), ("zero", ["--lora", f"{adapter}:0"]), ("one", ["--lora", str(adapter)])):
        out = tmp_path / f"{tag}.mp4"
        assert main(["generate", "a ball <AUDCAP>thud<ENDAUDCAP>", "-o", str(out), "--steps", "2",
                     "--duration", "0.5", "-q", *extra]) == 0
        outs[tag] = read_mp4(out).frames
    assert (outs["plain"] == outs["zero"]).all() and not (outs["plain"] == outs["one"]).all()
    assert main(["generate", "x", "--lora", str(tmp_path), "-o", str(tmp_path / "bad.mp4")]) == 2


def test_codec_train_options_reach_the_trainer(tmp_path, capsys, monkeypatch):
    import duet.train.codec as codec_module

    seen = []

    def fake_train(cfg, progress):
        seen.append(cfg)
        return {"loss_first": 1.0, "loss_last": 0.5, "heldout_psnr_db": 30.0, "params": 1e6, "wall_s": 1.0}

    monkeypatch.setattr(codec_module, "train_frame_codec", fake_train)
    out = tmp_path / "c.safetensors"
    assert main(["codec", "train", "-o", str(out), "--latent-noise", "0.3", "--steps", "7", "-q"]) == 0
    assert seen[0].latent_noise == 0.3 and seen[0].steps == 7 and seen[0].clips == 384
    assert "held-out PSNR 30.00 dB" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["codec", "train", "-o", str(out), "--latent-noise", "lots"])
