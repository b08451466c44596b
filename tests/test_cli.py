"""The `duet` command line: exit codes, files written, messages."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from duet import loading
from duet import pipeline as pipeline_module
from duet.cli import main
from duet.media import read_mp4, read_wav

P = "a red ball bounces <AUDCAP>low thuds<ENDAUDCAP>"
F = ["--steps", "2", "--duration", "0.5", "-q"]


def test_quiet_generate_prints_nothing_at_all(tmp_path):
    """The real command in its own process: no library notices, bars or summary with -q."""
    import duet

    quieting = ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY")
    env = {k: v for k, v in os.environ.items() if k not in quieting}  # the CLI must set them
    env.update(PYTHONPATH=str(Path(duet.__file__).parents[1]),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    run = subprocess.run([sys.executable, "-m", "duet", "generate", P, *F, "-o", "x.mp4"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    assert read_mp4(tmp_path / "x.mp4").frames.shape == (13, 64, 64, 3)


def test_generate_writes_mp4_with_the_default_model(tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    rc = main(["generate", "a ball bounces <AUDCAP>thud<ENDAUDCAP>", "-o", str(out),
               "--steps", "2", "--duration", "0.5", "--quiet", "--seed", "1"])
    assert rc == 0
    frames, audio, fps, sr = read_mp4(out)
    assert frames.shape[0] == 13 and sr == 16000 and len(audio) > 0
    # the RANDOM warning appears exactly when this install ships no trained demo weights
    assert ("RANDOM" in capsys.readouterr().err) == (loading.shipped_bundle("demo") is None)


def test_generate_without_weights_warns_about_random_weights(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(loading, "shipped_bundle", lambda name: None)
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
    (["generate", "ok", "--cross-modal-guidance", "2,-1"], "cross_modal_audio"),
    (["generate", "ok", "--stg-guidance", "1", "--stg-blocks", "9"], "stg_blocks [9]"),
    (["generate", "ok", "--guidance-rescale", "2"], "rescale"),
    (["info", "ovi-9000"], "unknown preset"),
    # argv bytes that are not UTF-8 reach Python as lone surrogates
    (["generate", "a ball \udcff\udcfe bounces <AUDCAP>thud<ENDAUDCAP>"], "not valid UTF-8"),
    (["generate", P, "--seed", "18446744073709551617"], "from 0 to 18446744073709551615"),
    (["generate", P, "--device", "meta"], "'meta' cannot run the model"),
    (["generate", P, "--video-negative", "<S>broken"], "video_negative: speech '<S>broken'"),
    (["generate", P, "--audio-negative", "hiss <AUDCAP>x"], "audio_negative: audio caption"),
])
def test_bad_input_exits_2_without_output(tmp_path, capsys, args, needle):
    out = tmp_path / "x.mp4"
    assert main([*args, "-o", str(out)] if args[0] == "generate" else args) == 2
    err = capsys.readouterr().err
    assert needle in err and _one_line(err)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def _one_line(err: str) -> bool:
    """A user error is one line on stderr (no traceback, no usage text)."""
    return err.startswith("duet: error: ") and err.count("\n") == 1 and err.endswith("\n")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_output_that_is_not_a_regular_file_is_refused_before_any_work(tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.setattr(pipeline_module.DuetPipeline, "from_pretrained", _must_not_load)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    for out, needle in (
            ("/dev/null", "/dev/null is a character device"),
            (fifo, "pipe.mp4 is a named pipe (FIFO)"),
            (tmp_path, f"{tmp_path} is a folder; pass a file path such as {tmp_path / 'clip.mp4'}"),
            ("/proc/out.mp4", "cannot write /proc/out.mp4: the folder /proc does not accept"),
            (tmp_path / "out.avi", ".mp4 or .mkv (video + sound), or .wav (the sound alone)")):
        if str(out).startswith("/proc") and not os.path.isdir("/proc/self"):
            continue
        assert main(["generate", P, *F, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert needle in err and _one_line(err)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and stat.S_ISFIFO(fifo.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.mp4"]


def _must_not_load(*args, **kwargs):
    raise AssertionError("the model was loaded although the input was refused")


def test_output_through_a_symlink_writes_its_target_and_wav_is_the_sound_alone(tmp_path):
    target = tmp_path / "clips" / "sound.wav"
    target.parent.mkdir()
    link = tmp_path / "latest.wav"
    link.symlink_to(target)
    assert main(["generate", P, *F, "-o", str(link)]) == 0
    assert link.is_symlink() and target.is_file()
    audio, rate = read_wav(target)
    assert rate == 16000 and audio.ndim == 1 and abs(len(audio) - 13 / 24 * 16000) <= 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["clips", "latest.wav", "sound.wav"]


def test_ctrl_c_prints_one_line_exits_130_and_leaves_no_part_file(tmp_path, capsys, monkeypatch):
    import duet.media.mp4

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(duet.media.mp4, "_encode_audio_chunk", interrupted)  # while writing the MP4
    assert main(["generate", P, *F, "-o", str(tmp_path / "x.mp4")]) == 130
    # (only the last line: a transformers imported by an earlier test keeps its weight bar,
    # which the CLI's own process hides; see test_quiet_generate_prints_nothing_at_all)
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "duet: interrupted" and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_given_audio_or_video_longer_than_60_s_is_refused_before_loading(tmp_path, capsys,
                                                                         monkeypatch):
    import numpy as np

    from duet.media import write_mp4, write_wav

    monkeypatch.setattr(pipeline_module.DuetPipeline, "from_pretrained", _must_not_load)
    wav = write_wav(tmp_path / "ten-minutes.wav", np.zeros(16000 * 600, np.float32), 16000)
    mp4 = write_mp4(tmp_path / "long.mp4", np.zeros((140, 16, 16, 3), np.uint8), None, 2)
    for flag, path, seconds in (("--from-audio", wav, "600.0"), ("--from-video", mp4, "70.0")):
        assert main(["generate", P, "--steps", "2", "-q", flag, str(path),
                     "-o", str(tmp_path / "x.mp4")]) == 2
        err = capsys.readouterr().err
        assert f"is {seconds} s long; at most 60 s" in err and _one_line(err)
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("change, needle", [
    (lambda cfg: cfg["media"].update(fps="fast"), "media.fps is 'fast' (str); expected a number"),
    (lambda cfg: cfg["model"]["video"].update(dim="big"), "model.video.dim is 'big'"),
    (lambda cfg: [1, 2], "holds a JSON list"),
])
def test_a_bundle_config_of_the_wrong_shape_is_one_line(tmp_path, capsys, change, needle):
    import json
    import shutil

    bundle = tmp_path / "bundle"
    shipped = loading.shipped_bundle("demo") or pytest.skip("no shipped demo bundle")
    shutil.copytree(shipped, bundle)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg = change(cfg) or cfg
    (bundle / "config.json").write_text(json.dumps(cfg))
    for args in (["generate", P, *F, "--model", str(bundle), "-o", str(tmp_path / "x.mp4")],
                 ["info", str(bundle)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert needle in err and str(bundle / "config.json") in err and _one_line(err)


def test_weights_with_nan_are_refused_at_load_naming_the_file(tmp_path, capsys, monkeypatch):
    from duet.weights import load_weights, save_weights

    bundle = pipeline_module.DuetPipeline.from_pretrained("demo").save_pretrained(tmp_path / "b")
    state = load_weights(bundle / "model.safetensors")
    state["video_model.head.head.weight"][0, 0] = float("nan")
    save_weights(state, bundle / "model.safetensors")
    monkeypatch.setattr(pipeline_module, "sample", _must_not_load)  # refused before generating
    assert main(["generate", P, *F, "--model", str(bundle), "-o", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err
    assert f"{bundle / 'model.safetensors'} holds NaN" in err
    assert "video_model.head.head.weight" in err
    assert _one_line(err) and not (tmp_path / "x.mp4").exists()


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
    assert "wrong shape" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_generate_from_an_image_file(tmp_path):
    import numpy as np

    from duet.data.world import make_clip
    from duet.media import save_png

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
    assert main(["eval", "sync", *paths, "--chance"]) == 0
    chance = capsys.readouterr().out.strip().splitlines()[-1].split("|")
    assert chance[1].strip().startswith("chance") and float(chance[4]) > 40  # unrelated: far off
    assert main(["eval", "sync", *paths, "--chance", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows["chance"]["n_visual"] == 6 * rows["all"]["n_visual"] > 0
    assert main(["eval", "sync", str(tmp_path / "missing.mp4")]) == 2
    capsys.readouterr()
    assert main(["eval", "sync", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is a folder; expected a video file" in err and _one_line(err)
    assert main(["eval", "sync", paths[0], "all"]) == 2  # would hide the summary row
    err = capsys.readouterr().err
    assert "clip 'all' has the name of a summary row; pass it as ./all" in err and _one_line(err)
    assert main(["eval", "sync", paths[0], paths[1], paths[0]]) == 2
    assert "is given twice" in capsys.readouterr().err


def test_eval_sync_json_prints_null_when_nothing_pairs(tmp_path, capsys):
    import json

    import numpy as np

    from duet.data.world import make_clip
    from duet.media import write_mp4

    clip = make_clip(1_000_001, kind="bounce")  # a bounce, and silence: nothing to pair
    silence = np.zeros(16000, np.float32)
    path = write_mp4(tmp_path / "silent.mp4", clip.video[:24], silence, 24, 16000)
    assert main(["eval", "sync", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out
    rows = json.loads(out)
    assert rows["all"]["median_offset_ms"] is None and rows[str(path)]["offsets_ms"] == []


@pytest.mark.parametrize("clips", ["0", "-1"])
def test_data_build_refuses_no_clips(tmp_path, capsys, clips):
    assert main(["data", "build", "-o", str(tmp_path / "shards"), "--clips", clips, "-q"]) == 2
    err = capsys.readouterr().err
    assert "no clips to build" in err and _one_line(err)
    assert list(tmp_path.iterdir()) == []


def test_data_build_sets_the_world(tmp_path, capsys):
    """--kinds, --max-balls, --drop-in and --gravity reach the world the clips are drawn from; a value
    outside the world's range is one line, before any clip is drawn."""
    import json

    data = tmp_path / "shards"
    assert main(["data", "build", "-o", str(data), "--clips", "4", "--shard-size", "4", "-q",
                 "--kinds", "bounce", "--max-balls", "1", "--drop-in", "0", "--gravity", "2"]) == 0
    texts = [c["caption"] for c in json.loads((data / "captions.json").read_text())]
    assert len(texts) == 4 and all(" ball falls and bounces " in t for t in texts)
    assert main(["data", "build", "-o", str(tmp_path / "bad"), "--clips", "2", "-q",
                 "--drop-in", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "drop_in is a probability in [0, 1], got 1.5" in err and _one_line(err)
    assert not (tmp_path / "bad").exists()


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


def test_a_new_frame_codec_goes_from_data_build_to_the_bundle(tmp_path):
    """`data build --video-codec-weights` encodes with that codec; a run whose config names it
    under codecs.video copies it into the bundle, so `generate` decodes with it."""
    import json
    import shutil

    import torch

    from duet.codecs.frames import FrameAEConfig, FrameAutoencoder, save_frame_codec
    from safetensors.torch import load_file

    arch = FrameAEConfig(latent_channels=3, widths=(4, 4, 4, 4, 4), chroma_channels=2)
    save_frame_codec(FrameAutoencoder(arch), torch.zeros(5), torch.ones(5), tmp_path / "c.safetensors")
    data = tmp_path / "shards"
    assert main(["data", "build", "-o", str(data), "--clips", "2", "--shard-size", "2", "-q",
                 "--video-codec-weights", str(tmp_path / "c.safetensors")]) == 0
    assert load_file(next(data.glob("*.safetensors")))["video"].shape[1] == 5
    cfg = {"preset": "demo", "model": {"dim": 32, "ffn_dim": 64, "num_layers": 1,
                                       "video": {"in_dim": 5, "out_dim": 5}},
           "codecs": {"video": {"weights": str(tmp_path / "c.safetensors")}},
           "data": [str(data)], "batch_size": 2, "steps": 2, "warmup_steps": 1,
           "out_dir": str(tmp_path / "run"), "progress": False}
    (tmp_path / "train.json").write_text(json.dumps(cfg))
    assert main(["train", str(tmp_path / "train.json"), "-q"]) == 0
    bundle = tmp_path / "run" / "final"
    written = json.loads((bundle / "config.json").read_text())["codecs"]["video"]
    assert written == {"name": "frames", "weights": "video_codec/c.safetensors"}
    (tmp_path / "c.safetensors").unlink()  # the bundle carries its own copy
    out = tmp_path / "chroma.mp4"
    assert main(["generate", "a red ball bounces", "-o", str(out), "--model", str(bundle),
                 "--steps", "1", "--duration", "0.5", "-q"]) == 0
    assert read_mp4(out).frames.shape == (13, 64, 64, 3)
    from duet.pipeline import DuetPipeline  # save_pretrained carries the codec on

    again = DuetPipeline.from_pretrained(bundle).save_pretrained(tmp_path / "again")
    shutil.rmtree(bundle / "video_codec")
    assert main(["generate", "a red ball bounces", "-o", str(out), "--model", str(again),
                 "--steps", "1", "--duration", "0.5", "-q"]) == 0
    (tmp_path / "bad.json").write_text(json.dumps({**cfg, "codecs": {"vidoe": {}}}))
    assert main(["train", str(tmp_path / "bad.json")]) == 2
    (tmp_path / "bad.json").write_text(json.dumps({**cfg, "out_dir": str(tmp_path / "run2")}))
    assert main(["train", str(tmp_path / "bad.json")]) == 2  # the codec file is gone


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
    """`--lora DIR[:SCALE]` reaches the weights `duet generate` samples with: scale 0 leaves
    them bit for bit, scale 1 moves them. (Weights, not MP4s, are compared: CPU matmuls are
    only reproducible to rounding between processes' memory layouts, and one pixel's
    rounding can shift the encoder's choices.)"""
    import torch

    from duet.cli import build_parser
    from duet.generate_options import load_pipeline
    from duet.presets import get_preset
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
    weights = {}
    for tag, extra in (("plain", []), ("zero", ["--lora", f"{adapter}:0"]), ("one", ["--lora", str(adapter)])):
        args = build_parser().parse_args(["generate", "p", "-o", str(tmp_path / "x.mp4"), *extra])
        weights[tag] = load_pipeline(args).model.state_dict()
    name = "video_model.blocks.0.self_attn.q.weight"
    assert all(torch.equal(weights["plain"][k], weights["zero"][k]) for k in weights["plain"])
    assert not torch.equal(weights["plain"][name], weights["one"][name])
    out = tmp_path / "one.mp4"
    assert main(["generate", "a ball <AUDCAP>thud<ENDAUDCAP>", "-o", str(out), "--steps", "2",
                 "--duration", "0.5", "-q", "--lora", str(adapter)]) == 0
    assert read_mp4(out).frames.shape[0] > 0
    assert main(["generate", "x", "--lora", str(tmp_path), "-o", str(tmp_path / "bad.mp4")]) == 2


def test_generate_compile_flag_compiles_every_block(tmp_path):
    from duet.cli import build_parser
    from duet.generate_options import load_pipeline
    from duet.model.compile import CompiledOrEager

    args = build_parser().parse_args(["generate", "p", "-o", str(tmp_path / "x.mp4"), "--compile"])
    model = load_pipeline(args).model
    blocks = [*model.video_model.blocks, *model.audio_model.blocks]
    assert all(isinstance(b.self_attention, CompiledOrEager) and isinstance(b.cross_attention_ffn, CompiledOrEager)
               for b in blocks)
    args = build_parser().parse_args(["generate", "p", "-o", str(tmp_path / "x.mp4")])
    assert not isinstance(load_pipeline(args).model.video_model.blocks[0].self_attention, CompiledOrEager)


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
    assert seen[0].interp_weight == 0.0 and seen[0].arch.spatial_stride == 16
    assert main(["codec", "train", "-o", str(out), "--interp-weight", "1", "--widths", "16,32,64,96",
                 "-q"]) == 0
    assert seen[1].interp_weight == 1.0 and seen[1].arch.widths == (16, 32, 64, 96)
    assert seen[1].arch.spatial_stride == 8
    assert "held-out PSNR 30.00 dB" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["codec", "train", "-o", str(out), "--latent-noise", "lots"])


def test_generate_a_long_clip_with_follow_on_prompts(tmp_path, capsys):
    out = tmp_path / "long.mp4"
    schedule = tmp_path / "schedule.json"
    schedule.write_text('[{"at": 3.0, "prompt": "a blue ball <AUDCAP>a ding<ENDAUDCAP>"}]')
    assert main(["generate", P, "--duration", "6", "--steps", "1", "--schedule", str(schedule),
                 "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert read_mp4(out).frames.shape == (145, 64, 64, 3)  # 6 s at 24 fps, two chunks
    assert main(["eval", "seams", str(out), "--json"]) == 0
    (seam,) = json.loads(capsys.readouterr().out)
    assert seam["time"] == pytest.approx(91 / 24)  # after the 6 held frames of chunk 2
    assert seam["video_ratio"] > 0 and seam["click_limit"] > 0
    assert main(["eval", "seams", str(out)]) == 0
    assert "| 3.79 |" in capsys.readouterr().out


@pytest.mark.parametrize("extra, needle", [
    (["--duration", "121"], "duration must be in (0, 120] seconds, got 121"),
    (["--duration", "8", "--then", "a", "--then", "b", "--then", "c"], "at most 2"),
    (["--duration", "8", "--overlap", "200"], "use at most 96"),
    (["--duration", "8", "--then", "<S>open"], "then[0]: speech"),
    (["--duration", "8", "--schedule", "missing.json"], "cannot read schedule"),
])
def test_bad_long_clip_options_exit_2_in_one_line(tmp_path, capsys, extra, needle):
    out = tmp_path / "x.mp4"
    assert main(["generate", P, "--steps", "1", "-q", *extra, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err and _one_line(err)
    assert not out.exists()


@pytest.mark.parametrize("value, parsed", [("3", 3.0), ("2,1.5", (2.0, 1.5))])
def test_bridge_guidance_is_an_alias_of_cross_modal_guidance(value, parsed):
    from duet.cli import build_parser

    new = build_parser().parse_args(["generate", "p", "--cross-modal-guidance", value])
    old = build_parser().parse_args(["generate", "p", "--bridge-guidance", value])
    assert new.cross_modal_guidance == old.cross_modal_guidance == parsed
    assert vars(new) == vars(old)
    assert build_parser().parse_args(["generate", "p"]).cross_modal_guidance == 1.0


def test_generate_kwargs_name_the_pipelines_arguments():
    """The CLI's flags reach the pipeline under its own argument names: --no-slg is slg=False
    (no sentinel block), the guidance scale is cross_modal_guidance."""
    import inspect

    from duet.cli import build_parser
    from duet.generate_options import GivenInputs, generate_kwargs
    from duet.pipeline import DuetPipeline

    class Pipe:  # what generate_kwargs reads of a pipeline
        preset = None
        audio_codec = None

    args = build_parser().parse_args(["generate", "p", "--no-slg", "--bridge-guidance", "2"])
    kwargs = generate_kwargs(args, Pipe(), GivenInputs(None, None))
    assert (kwargs["slg"], kwargs["cross_modal_guidance"]) == (False, 2.0)
    assert "slg_block" not in kwargs and "bridge_guidance" not in kwargs
    assert set(kwargs) <= set(inspect.signature(DuetPipeline.__call__).parameters)


def test_the_command_line_loads_no_torch():
    """`duet --help` stays fast: building the parser imports argparse and the handler modules,
    which import the library inside their functions."""
    code = ("import sys, duet.cli; duet.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'numpy', 'duet.pipeline') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
