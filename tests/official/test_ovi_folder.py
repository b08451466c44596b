"""The official weights folder end to end: tiny same-format files for every component
(DiT safetensors, Wan2.2 VAE .pth, umT5 .pth + tokenizer, MMAudio VAE + BigVGAN) load
through `duet.weights` into one pipeline that writes an MP4; `duet doctor` reports each
file; a self-contained bundle round-trips."""

from __future__ import annotations

import dataclasses
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_mmaudio import write_ext_weights
from tiny_umt5 import TINY as TINY_T5
from tiny_umt5 import write_tiny_wan_umt5
from tiny_wan_vae import write_tiny_checkpoint

from duet.config import MediaConfig
from duet.doctor import doctor
from duet.errors import CheckpointError, ConfigError, InputError
from duet.inputs import fit_frames
from duet.media import read_mp4
from duet.model import TwinModel
from duet.pipeline import DuetPipeline
from duet.presets import get_preset
from duet.weights import DIT_FILES, OviFiles, check_dit, locate, save_weights, write_bundle

PROMPT = "a cat says <S>hello<E> <AUDCAP>rain falls on the roof<ENDAUDCAP>"


def tiny_ovi_preset():
    """The reference tiny towers, conditioned by the tiny umT5 (32-d), at a small clip size."""
    base = get_preset("tiny")
    towers = dataclasses.replace(
        base.model,
        video=dataclasses.replace(base.model.video, text_dim=TINY_T5["dim"]),
        audio=dataclasses.replace(base.model.audio, text_dim=TINY_T5["dim"]))
    media = MediaConfig(frames=9, area=32 * 32)
    sampler = dataclasses.replace(base.sampler, slg_block=None)  # Ovi's block 11 of 30; tiny has 3
    return dataclasses.replace(base, name="tiny-official", model=towers, media=media, sampler=sampler)


def write_folder(root: Path, preset) -> Path:
    """An official-layout folder with tiny files (the DiT as Ovi/model.safetensors, bf16)."""
    wan = root / "Wan2.2-TI2V-5B"
    wan.mkdir(parents=True)
    write_tiny_checkpoint(wan / "Wan2.2_VAE.pth")
    write_tiny_wan_umt5(wan)
    write_ext_weights(root / "MMAudio")
    torch.manual_seed(0)
    net = TwinModel.from_config(preset.model)
    save_weights({k: v.to(torch.bfloat16) for k, v in net.state_dict().items()},
                 root / "Ovi" / "model.safetensors")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, object]:
    preset = tiny_ovi_preset()
    return write_folder(tmp_path_factory.mktemp("ovi") / "ckpts", preset), preset


@pytest.fixture(scope="module")
def pipe(folder) -> DuetPipeline:
    root, preset = folder
    return DuetPipeline.from_official(root, preset, device="cpu", dtype="float32")


def test_official_folder_generates_an_mp4(pipe, tmp_path):
    assert type(pipe.video_codec).__name__ == "WanVAECodec"
    assert type(pipe.audio_codec).__name__ == "MMAudioCodec"
    clip = pipe(PROMPT, steps=2, seed=0, progress=False)
    assert tuple(clip.video.shape) == (9, 32, 32, 3) and clip.video.dtype == torch.uint8
    assert clip.sample_rate == 16000
    assert clip.audio.shape[0] == 6000  # the sound track spans the 9 frames: 0.375 s
    back = read_mp4(clip.save(tmp_path / "clip.mp4"))
    assert back.frames.shape == (9, 32, 32, 3)
    assert back.audio.shape[0] > 0.3 * 16000


def test_image_to_audio_video_keeps_the_first_frame_latent(pipe):
    """i2av: the picture goes through the Wan VAE and its latent frame stays clean (t = 0)
    at every step, while the other latent frames are denoised."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)
    want = pipe.video_codec.encode(fit_frames(image[None], 32, 32)).float()  # [1, 48, 1, 2, 2]
    seen: list[torch.Tensor] = []
    hook = pipe.model.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append((kwargs.get("video") or args[0]).latent.clone()),
        with_kwargs=True)
    try:
        clip = pipe(PROMPT, steps=3, seed=0, image=image, progress=False)
    finally:
        hook.remove()
    assert tuple(clip.video.shape) == (9, 32, 32, 3) and len(seen) == 3  # CFG batched: 1 call/step
    for latent in seen:  # every pass of every step sees the clean image latent on frame 0
        assert torch.equal(latent[:, :, :1], want.expand(latent.shape[0], -1, -1, -1, -1))
    assert not torch.allclose(seen[0][:, :, 1:], seen[-1][:, :, 1:])  # the rest is denoised
    with pytest.raises(InputError, match="RGB"):
        pipe(PROMPT, steps=1, image=image[..., :1], progress=False)


def test_locate_names_every_missing_file(tmp_path, folder):
    root, _ = folder
    with pytest.raises(CheckpointError, match="does not exist"):
        locate(tmp_path / "nowhere", "ovi-720x720-5s")
    with pytest.raises(CheckpointError, match="model_960x960.safetensors"):
        locate(root, "ovi-960x960-5s")
    with pytest.raises(ConfigError, match="Ovi presets"):
        DuetPipeline.from_pretrained("demo", weights=root)


def test_wrong_preset_dit_is_named(folder):
    root, _ = folder
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        DuetPipeline.from_pretrained("ovi-720x720-5s", weights=root, device="cpu")
    with pytest.raises(CheckpointError, match="not an ovi-720x720-5s DiT: .*wrong shape"):
        check_dit(root / "Ovi" / "model.safetensors", "ovi-720x720-5s")


def write_header_only_dit(path: Path, preset: str) -> None:
    """A sparse file with the real DiT's safetensors header: header checks see 23 GB of
    correctly named and shaped bf16 tensors, the disk holds a few hundred kB."""
    model = TwinModel.from_config(get_preset(preset).model, device="meta")
    header, offset = {}, 0
    for k, v in model.state_dict().items():
        n = v.numel() * 2
        header[k] = {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        f.truncate(8 + len(blob) + offset)


def test_doctor_reports_each_file(tmp_path, folder):
    src, _ = folder
    root = tmp_path / "ckpts"
    for rel in ("Wan2.2-TI2V-5B", "MMAudio"):
        import shutil
        shutil.copytree(src / rel, root / rel)
    write_header_only_dit(root / "Ovi" / DIT_FILES["ovi-720x720-5s"], "ovi-720x720-5s")
    (root / "Ovi" / DIT_FILES["ovi-960x960-5s"]).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    vae = root / "Wan2.2-TI2V-5B" / "Wan2.2_VAE.pth"
    vae.write_bytes(vae.read_bytes()[:2000])  # a download cut short
    checks = {c.component: c for c in doctor(root)}
    assert checks["dit ovi-720x720-5s"].status == "ok"
    assert "2073 tensors" in checks["dit ovi-720x720-5s"].detail  # the real key count
    assert checks["dit ovi-960x960-5s"].status == "bad"
    assert checks["dit ovi-960x960-10s"].status == "missing"
    assert checks["video vae"].status == "bad" and "Wan2.2_VAE.pth" in checks["video vae"].detail
    for ok in ("text encoder", "tokenizer", "audio vae", "vocoder"):
        assert checks[ok].status == "ok", checks[ok]
    assert doctor(tmp_path / "nowhere")[0].status == "missing"

    run = subprocess.run([sys.executable, "-m", "duet", "doctor", "--weights", str(root), "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 1  # the VAE is broken, so no preset is usable
    report = json.loads(run.stdout)
    assert report["usable_presets"] == []
    assert {c["status"] for c in report["checks"]} == {"ok", "bad", "missing"}


def test_self_contained_bundle_round_trips(folder, tmp_path):
    root, preset = folder
    out = write_bundle(root, preset, tmp_path / "bundle")
    config = json.loads((out / "config.json").read_text())
    assert config["codecs"]["video"]["path"] == "video_vae/Wan2.2_VAE.pth"  # relative to the bundle
    for rel in ("video_vae/Wan2.2_VAE.pth", "audio_vae/v1-16.pth", "audio_vae/best_netG.pt",
                "text_encoder/models_t5_umt5-xxl-enc-bf16.pth", "text_encoder/google/umt5-xxl"):
        assert (out / rel).exists(), rel
    moved = tmp_path / "moved"
    out.rename(moved)  # relative paths: the bundle works wherever it lives
    pipe = DuetPipeline.from_pretrained(moved, device="cpu", dtype="float32")
    a = pipe(PROMPT, steps=2, seed=1, progress=False)
    b = DuetPipeline.from_official(root, preset, device="cpu", dtype="float32")(
        PROMPT, steps=2, seed=1, progress=False)
    assert torch.equal(a.video, b.video) and torch.allclose(a.audio, b.audio, atol=1e-6)
    assert OviFiles.at(root, "ovi-960x960-10s").dit.name == "model_960x960_10s.safetensors"


def test_a_long_clip_runs_the_ovi_components_chunk_by_chunk(folder):
    """The Ovi path makes long clips the way the demo does: chunks of the native 9 frames
    (3 causal latent frames), each holding the Wan VAE's encoding of the previous chunk's
    frame and its audio latent clean (t = 0 on their tokens in every pass)."""
    root, preset = folder
    media = dataclasses.replace(preset.media, audio_latents=None)  # 11 latents for 9 frames
    pipe = DuetPipeline.from_official(root, dataclasses.replace(preset, media=media),
                                      device="cpu", dtype="float32")
    calls: list[tuple] = []
    hook = pipe.model.register_forward_pre_hook(
        lambda _m, args, kwargs: calls.append((kwargs.get("video") or args[0],
                                               kwargs.get("audio") or args[1])),
        with_kwargs=True)
    steps: list[dict] = []
    try:
        clip = pipe(PROMPT, steps=2, seed=0, duration=1.0, callback=steps.append, progress=False)
    finally:
        hook.remove()
    assert tuple(clip.video.shape) == (25, 32, 32, 3) and clip.audio.shape[0] == 16667
    assert {s["chunks"] for s in steps} == {5} and len(calls) == 10  # 5 chunks x 2 steps
    for video, audio in calls[:2]:  # the first chunk: plain text-to-audio-video
        assert video.timestep.dim() == 1 and audio.timestep.dim() == 1
    tokens = 1  # per latent frame: 32 px / 16 (VAE) / 2 (patch), squared
    for video, audio in calls[2:]:  # later chunks: latent frame 0 and audio latent 0 clean
        assert video.latent.shape[2] == 3 and (video.timestep[:, :tokens] == 0).all()
        assert (video.timestep[:, tokens:] > 0).all()
        assert (audio.timestep[:, :1] == 0).all() and (audio.timestep[:, 1:] > 0).all()
    chunk2 = [s for s in steps if s["chunk"] == 1]
    assert torch.equal(chunk2[0]["video"][:, :, :1], chunk2[1]["video"][:, :, :1])
    frame = clip.video[4:5].permute(3, 0, 1, 2)[None].float() / 127.5 - 1  # chunk 2's held frame
    assert (pipe.video_codec.encode(frame) - chunk2[0]["video"][:, :, :1]).abs().max() < 0.05
