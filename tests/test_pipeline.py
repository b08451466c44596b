"""DuetPipeline end to end with the demo preset and its shipped weights (fast, deterministic)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from duet import loading
from duet.presets import get_preset
from duet.errors import CheckpointError, InputError, PromptError
from duet.media import read_mp4
from duet.pipeline import DuetPipeline, resolve_device_dtype, snap_size
from duet.weights import BUNDLE_WEIGHTS, load_weights, read_config, save_weights, write_config

FAST = dict(steps=2, duration=0.5, progress=False)


@pytest.fixture(scope="module")
def pipe() -> DuetPipeline:
    return DuetPipeline.from_pretrained("demo", device="cpu")


def test_a_shipped_bundle_is_the_default_and_its_config_is_authoritative(pipe, tmp_path, monkeypatch):
    shipped = tmp_path / "assets" / "demo"
    save_weights({k: v.to(torch.bfloat16) for k, v in pipe.model.state_dict().items()},
                 shipped / BUNDLE_WEIGHTS)
    write_config(shipped, get_preset("demo"), {"random_init": False})
    monkeypatch.setattr(loading, "shipped_bundle", lambda name: shipped if name == "demo" else None)
    loaded = DuetPipeline.from_pretrained("demo", device="cpu")
    preset, extra = read_config(shipped)
    assert not loaded.random_init and extra["random_init"] is False
    assert preset == get_preset("demo") == loaded.preset
    assert all(t.dtype == torch.bfloat16 for t in load_weights(shipped / BUNDLE_WEIGHTS).values())
    assert (shipped / BUNDLE_WEIGHTS).stat().st_size <= 50 * 2**20  # the package budget
    a, b = pipe("waves", seed=2, **FAST), loaded("waves", seed=2, **FAST)
    assert (a.video.float() - b.video.float()).abs().mean() < 2  # bf16 rounding only


def test_without_shipped_weights_the_demo_runs_random_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(loading, "shipped_bundle", lambda name: None)
    with caplog.at_level("WARNING", logger="duet.loading"):
        pipe = DuetPipeline.from_pretrained("demo", device="cpu")
    assert pipe.random_init and any("RANDOM" in r.getMessage() for r in caplog.records)


def test_generates_a_clip_of_the_requested_length(pipe):
    clip = pipe("a red ball bounces <AUDCAP>thuds<ENDAUDCAP>", **FAST)
    # 0.5 s at 24 fps -> 12 frame intervals -> st*k + 1 = 13 frames
    assert clip.video.shape == (13, 64, 64, 3) and clip.video.dtype == torch.uint8
    assert clip.audio.shape == (round(13 / 24 * 16000),)
    assert clip.audio.dtype == torch.float32 and clip.audio.abs().max() <= 1
    assert clip.video.float().std() > 1  # not a constant picture


def test_same_seed_same_clip_other_seed_other_clip(pipe):
    a = pipe("a cat meows", seed=3, **FAST)
    b = pipe("a cat meows", seed=3, **FAST)
    c = pipe("a cat meows", seed=4, **FAST)
    assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)
    assert not torch.equal(a.video, c.video)


def test_batched_and_sequential_cfg_agree(pipe):
    a = pipe("a dog barks", seed=1, batch_cfg=True, **FAST)
    b = pipe("a dog barks", seed=1, batch_cfg=False, **FAST)
    assert (a.video.int() - b.video.int()).abs().max() <= 1


def test_image_to_audio_video_keeps_the_first_frame(pipe):
    from duet.data.world import make_clip

    scene = make_clip(1_000_003, kind="bounce").video[0]  # 64x64, a held-out world frame
    img = np.zeros((64, 96, 3), np.uint8)
    img[:, 16:80] = scene  # wider than the output: center-cropped back to the scene
    clip = pipe("a red ball", image=img, **FAST)
    first = clip.video[0].float()
    # the first latent frame is held at the image's encoding, and the frame codec decodes
    # each frame on its own: the first frame is the image's codec round trip
    x = torch.from_numpy(scene).permute(2, 0, 1)[:, None, None].float().permute(1, 0, 2, 3, 4) / 127.5 - 1
    trip = ((pipe.video_codec.decode(pipe.video_codec.encode(x))[0, :, 0].permute(1, 2, 0) + 1) * 127.5)
    assert (first - trip.round()).abs().max() <= 1
    assert (first - torch.from_numpy(scene).float()).abs().mean() < 8


def test_save_pretrained_roundtrip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "bundle")
    mask = os.umask(0)
    os.umask(mask)
    for f in ("model.safetensors", "config.json"):  # shareable, though safetensors writes 0600
        assert (tmp_path / "bundle" / f).stat().st_mode & 0o777 == 0o666 & ~mask, f
    again = DuetPipeline.from_pretrained(tmp_path / "bundle", device="cpu")
    assert again.random_init == pipe.random_init
    assert dataclasses.replace(again.preset, codecs=pipe.preset.codecs) == pipe.preset
    copied = Path(again.preset.codecs["video"]["weights"])  # the bundle carries its codec
    assert copied.parent.parent == tmp_path / "bundle"
    assert copied.read_bytes() == Path(pipe.preset.codecs["video"]["weights"]).read_bytes()
    sa, sb = pipe.model.state_dict(), again.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # Same weights, another allocation: CPU kernels may round differently in the last bit
    # (measured: at most 1 uint8 level; audio off by up to 1.3e-2 in a few samples, as
    # Griffin-Lim's phase iterations amplify last-bit differences of the mel).
    a, b = pipe("waves", seed=2, **FAST), again("waves", seed=2, **FAST)
    assert (a.video.int() - b.video.int()).abs().max() <= 2
    assert (a.audio - b.audio).abs().mean() < 1e-3 and (a.audio - b.audio).abs().max() < 0.05


def test_bundle_with_wrong_keys_lists_them(pipe, tmp_path):
    bundle = pipe.save_pretrained(tmp_path / "b")
    state = load_weights(bundle / BUNDLE_WEIGHTS)
    state.pop("video_model.head.head.bias")
    state["audio_model.extra.weight"] = torch.zeros(1)
    state["video_model.blocks.0.ffn.0.weight"] = torch.zeros(3, 3)
    save_weights(state, bundle / BUNDLE_WEIGHTS)
    with pytest.raises(CheckpointError) as e:
        DuetPipeline.from_pretrained(bundle, device="cpu")
    msg = str(e.value)
    assert "video_model.head.head.bias" in msg and "audio_model.extra.weight" in msg
    assert "video_model.blocks.0.ffn.0.weight (3, 3) (expected" in msg


def test_truncated_weights_are_reported(pipe, tmp_path):
    bundle = pipe.save_pretrained(tmp_path / "t")
    data = (bundle / BUNDLE_WEIGHTS).read_bytes()
    (bundle / BUNDLE_WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        DuetPipeline.from_pretrained(bundle, device="cpu")


def test_weights_that_are_not_finite_are_refused_at_load_naming_file_and_tensor(pipe, tmp_path):
    bundle = pipe.save_pretrained(tmp_path / "n")
    state = load_weights(bundle / BUNDLE_WEIGHTS)
    name = "audio_model.blocks.1.ffn.0.weight"
    for bad in (float("nan"), float("inf")):
        state[name][3, 4] = bad
        save_weights(state, bundle / BUNDLE_WEIGHTS)
        with pytest.raises(CheckpointError) as e:
            DuetPipeline.from_pretrained(bundle, device="cpu")
        assert str(bundle / BUNDLE_WEIGHTS) in str(e.value) and name in str(e.value)


@pytest.mark.parametrize("prompt", ["", "   ", "x <S>unclosed", "a <AUDCAP>b"])
def test_bad_prompts_raise_prompt_error(pipe, prompt):
    with pytest.raises(PromptError):
        pipe(prompt, **FAST)


@pytest.mark.parametrize("kw, needle", [
    (dict(video_negative="<S>broken"), "video_negative: speech '<S>broken'"),
    (dict(audio_negative="noise <AUDCAP>hiss"), "audio_negative: audio caption"),
    (dict(video_negative="blur \udcff"), "video_negative: prompt is not valid UTF-8"),
])
def test_negative_prompts_get_the_checks_of_prompts(pipe, kw, needle):
    with pytest.raises(PromptError, match=needle):
        pipe("a ball", **FAST, **kw)


@pytest.mark.parametrize("seed", [2**64 + 1, -1, 1.5])
def test_a_seed_torch_cannot_take_is_refused(pipe, seed):
    with pytest.raises(InputError, match="out of range; use an integer from 0 to 184467"):
        pipe("a ball", seed=seed, **FAST)


def test_snap_size_follows_ovi():
    assert snap_size(720, 720, 720 * 720, 32) == (704, 704)
    assert snap_size(None, None, 720 * 720, 32) == (704, 704)
    h, w = snap_size(720, 1280, 720 * 720, 32)
    assert h % 32 == 0 and w % 32 == 0 and w > h and abs(h * w - 720 * 720) / (720 * 720) < 0.15
    with pytest.raises(InputError, match="aspect ratio"):
        snap_size(1, 1000, 64 * 64, 16)
    with pytest.raises(InputError):
        snap_size(-5, 10, 64 * 64, 16)


def test_device_and_dtype_checks():
    assert resolve_device_dtype("cpu", None) == (torch.device("cpu"), torch.float32)
    with pytest.raises(InputError, match="float16"):
        resolve_device_dtype("cpu", "float16")
    with pytest.raises(InputError, match="dtype"):
        resolve_device_dtype("cpu", "int8")
    with pytest.raises(InputError, match="'meta' cannot run the model"):
        resolve_device_dtype("meta", None)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            resolve_device_dtype("cuda", None)


def test_clip_saves_a_decodable_mp4(pipe, tmp_path):
    clip = pipe("a bell rings <AUDCAP>ding<ENDAUDCAP>", **FAST)
    frames, audio, fps, sr = read_mp4(clip.save(tmp_path / "c.mp4"))
    assert frames.shape == (13, 64, 64, 3) and fps == 24 and sr == 16000
    assert abs(len(audio) - clip.audio.shape[0]) <= 16  # the MP4 edit list counts in ms


def test_too_long_prompt_is_cut_with_a_warning(pipe, caplog):
    long = "a ball " * 60  # ~122 MiniLM tokens; the demo model reads 96
    with caplog.at_level("WARNING", logger="duet.pipeline"):
        clip = pipe(long, **FAST)
    assert clip.video.shape[0] == 13
    assert any("the model reads 96" in r.getMessage() and "dropped" in r.getMessage()
               for r in caplog.records)


def test_disabling_cross_modal_attention_changes_the_clip(pipe):
    a = pipe("a ball bounces", seed=5, **FAST)
    b = pipe("a ball bounces", seed=5, cross_modal=False, **FAST)
    assert not torch.equal(a.audio, b.audio)


def test_stg_cross_modal_and_rescale_terms_change_the_clip(pipe):
    prompt = "a blue metal ball bounces <AUDCAP>high pings<ENDAUDCAP>"
    base = pipe(prompt, seed=4, **FAST)
    for kw in (dict(stg_guidance=1.0), dict(cross_modal_guidance=(2.0, 3.0)), dict(guidance_rescale=0.7)):
        other = pipe(prompt, seed=4, **kw, **FAST)
        assert not torch.equal(base.audio, other.audio), kw
    with pytest.raises(InputError, match="stg_guidance must be one number"):
        pipe(prompt, stg_guidance=(1.0, 2.0, 3.0), **FAST)


def test_the_empty_negative_prompt_is_used_not_replaced_by_the_default(pipe, monkeypatch):
    sampler = dataclasses.replace(pipe.preset.sampler, video_negative="blur, jitter")
    monkeypatch.setattr(pipe, "preset", dataclasses.replace(pipe.preset, sampler=sampler))
    prompt = "a red rubber ball bounces <AUDCAP>thuds<ENDAUDCAP>"
    default = pipe(prompt, seed=6, **FAST)
    spelled = pipe(prompt, seed=6, video_negative=pipe.preset.sampler.video_negative, **FAST)
    empty = pipe(prompt, seed=6, video_negative="", **FAST)
    assert torch.equal(default.video, spelled.video)
    assert not torch.equal(default.video, empty.video)


def test_a_shift_per_modality_gives_each_its_own_grid(pipe):
    prompt = "a green wood ball bounces <AUDCAP>knocks<ENDAUDCAP>"
    base = pipe(prompt, seed=5, shift=5.0, **FAST)
    same = pipe(prompt, seed=5, shift=(5.0, 5.0), **FAST)
    assert torch.equal(base.video, same.video) and torch.equal(base.audio, same.audio)
    sigmas = []
    pipe(prompt, seed=5, shift=(5.0, 1.0), callback=lambda s: sigmas.append(s["sigma"]), **FAST)
    assert isinstance(sigmas[0], tuple) and sigmas[1][0] > sigmas[1][1]


def test_video_to_audio_keeps_the_video_clean_and_generates_sound(pipe):
    from duet.data.world import make_clip

    world = make_clip(1_000_003, kind="bounce")
    seen = []
    clip = pipe(world.caption, from_video=world.video[:30], steps=2, progress=False,
                callback=lambda s: seen.append((s["t"], s["video"].clone(), s["audio"].clone())))
    assert torch.equal(clip.video, torch.from_numpy(world.video[:30]))  # returned as given
    assert clip.audio.shape == (20000,) and clip.audio.abs().max() > 0
    assert all(t[0].item() == 0 and t[1].item() > 0 for t, _, _ in seen)  # video held at t = 0
    assert torch.equal(seen[0][1], seen[-1][1]) and not torch.equal(seen[0][2], seen[-1][2])


def test_audio_to_video_keeps_the_sound(pipe):
    wave = np.sin(np.linspace(0, 800 * np.pi, 16000)).astype(np.float32) * 0.3
    clip = pipe("a bell <AUDCAP>a tone<ENDAUDCAP>", from_audio=wave, steps=2, progress=False)
    assert clip.video.shape == (24, 64, 64, 3)  # 1.0 s at 24 fps
    torch.testing.assert_close(clip.audio, torch.from_numpy(wave))


@pytest.mark.parametrize("kw, needle", [
    (dict(from_video=np.zeros((9, 64, 64, 3), np.uint8), from_audio=np.zeros(8000, np.float32)),
     "at most one of"),
    (dict(from_video=np.zeros((9, 64, 64, 3), np.uint8), duration=2.0), "sets the clip's duration"),
    (dict(from_video=np.zeros((1, 64, 64, 3), np.uint8)), "needs at least 2"),
    (dict(from_video=np.zeros((9, 64, 64), np.uint8)), "uint8 \\[T, H, W, 3\\]"),
    (dict(from_audio=np.zeros(8000, np.int16)), "float waveform"),
    (dict(from_audio=np.zeros(16000 * 61, np.float32)), "61.0 s long; given clips are at most 60 s"),
    (dict(from_video=np.zeros((24 * 61, 2, 2, 3), np.uint8)), "61.0 s long; given clips are at most"),
])
def test_bad_conditioning_input_is_refused(pipe, kw, needle):
    with pytest.raises(InputError, match=needle):
        pipe("a ball", steps=1, progress=False, **kw)


def test_bridge_preset_generates_and_cross_modal_guidance_reads_its_bridge():
    from duet.model import TwinModel

    preset = get_preset("demo-bridge")
    torch.manual_seed(0)
    bridged = DuetPipeline.from_components(preset, TwinModel.from_config(preset.model).eval())
    assert bridged.model.bridge is not None
    plain = bridged("a ball <AUDCAP>thuds<ENDAUDCAP>", seed=1, **FAST)
    dual = bridged("a ball <AUDCAP>thuds<ENDAUDCAP>", seed=1, cross_modal_guidance=3.0, **FAST)
    assert plain.video.shape == (13, 64, 64, 3)
    # a new bridge adds nothing (zero-initialised outputs), so cross-modal guidance adds nothing ...
    assert torch.equal(plain.video, dual.video) and torch.equal(plain.audio, dual.audio)
    with torch.no_grad():
        for layer in bridged.model.bridge.layers:
            for p in (layer.to_video.o.weight, layer.to_audio.o.weight):
                p.normal_(std=0.05)
    # ... and once it carries something, the term moves the clip
    dual = bridged("a ball <AUDCAP>thuds<ENDAUDCAP>", seed=1, cross_modal_guidance=3.0, **FAST)
    plain = bridged("a ball <AUDCAP>thuds<ENDAUDCAP>", seed=1, **FAST)
    assert (dual.audio - plain.audio).abs().max() > 1e-3


# ---- long clips: chunks of the native length (duet.chunks, duet.stitch) ----------------
LONG = dict(steps=2, progress=False)
BALL = "a red ball bounces <AUDCAP>thuds<ENDAUDCAP>"


def test_a_long_clip_is_made_in_native_chunks_each_continuing_the_last(pipe):
    steps = []
    clip = pipe(BALL, duration=8.0, seed=5, callback=steps.append, **LONG)
    assert clip.video.shape == (193, 64, 64, 3)  # 8 s at 24 fps
    assert clip.audio.shape == (round(193 / 24 * 16000),)
    assert clip.audio[:-1000].abs().max() > 0.01  # sound to the end (the last chunk's too)
    # chunks of at most the native 97 frames: the working set does not grow with the clip
    assert [(s["chunk"], s["chunks"]) for s in steps] == [(c, 3) for c in range(3) for _ in range(2)]
    assert max(s["video"].shape[2] for s in steps) == 97 and max(s["audio"].shape[1] for s in steps) == 126
    # chunk 2 (frames 85-181) holds its first 6 latent frames and 8 audio latents clean:
    # the same after every step, and the frame codec's encoding of chunk 1's frames 85-90
    held = [s for s in steps if s["chunk"] == 1]
    assert torch.equal(held[0]["video"][:, :, :6], held[1]["video"][:, :, :6])
    assert torch.equal(held[0]["audio"][:, :8], held[1]["audio"][:, :8])
    assert not torch.equal(held[0]["video"][:, :, 6:], held[1]["video"][:, :, 6:])
    frames = clip.video[85:91].permute(3, 0, 1, 2)[None].float() / 127.5 - 1  # (1, 3, 6, 64, 64)
    assert (pipe.video_codec.encode(frames) - held[0]["video"][:, :, :6]).abs().mean() < 0.05


def test_the_first_chunk_of_a_long_clip_is_the_native_clip_of_the_same_seed(pipe):
    native = pipe(BALL, seed=5, **LONG)  # the preset's 4.04 s, one chunk
    long = pipe(BALL, duration=8.0, seed=5, **LONG)
    # up to where the second chunk starts to be crossfaded in (frame 85 + 6 held)
    assert torch.equal(long.video[:91], native.video[:91])
    assert torch.equal(long.audio[:111 * 512], native.audio[:111 * 512])


def test_then_gives_the_next_chunk_its_prompt(pipe):
    same = pipe(BALL, duration=6.0, seed=1, **LONG)
    other = pipe(BALL, duration=6.0, seed=1, then=["a blue ball <AUDCAP>a clear ding<ENDAUDCAP>"], **LONG)
    assert torch.equal(same.video[:91], other.video[:91])
    assert (same.video[100:].float() - other.video[100:].float()).abs().mean() > 1


def test_an_image_starts_a_long_clip(pipe):
    from duet.data.world import make_clip

    scene = make_clip(1_000_003, kind="bounce").video[0]
    clip = pipe(BALL, image=scene, duration=6.0, **LONG)
    assert clip.video.shape[0] == 145
    assert (clip.video[0].float() - torch.from_numpy(scene).float()).abs().mean() < 8


@pytest.mark.parametrize("kw, needle", [
    (dict(duration=121.0), r"duration must be in \(0, 120\] seconds, got 121"),
    (dict(duration=8.0, overlap=97), "leaves nothing new"),
    (dict(duration=8.0, then=["b"] * 3), "at most 2"),
    (dict(duration=8.0, then=["<S>unclosed"]), "then\\[0\\]"),
    (dict(duration=8.0, schedule=[(5.0, "<AUDIOCAP>x")]), "schedule at 5 s"),
    (dict(from_audio=np.zeros(16000, np.float32), then=["b"]), "for generated clips"),
])
def test_bad_long_clip_requests_are_one_line(pipe, kw, needle):
    with pytest.raises((InputError, PromptError), match=needle) as e:
        pipe(BALL, **LONG, **kw)
    assert "\n" not in str(e.value)


# ---- __call__ as steps, guidance resolved once (issue 18) ------------------------------
BALL_TERMS = dict(stg_guidance=0.5, cross_modal_guidance=(2.0, 1.5), guidance_rescale=0.3,
                  slg_block=1)
# 16 strided values of the last step's latents (seed 7, 2 steps), first taken from the code
# before __call__ was split into steps, re-taken with the weights shipped second on 2026-12-07:
# the steps must compose to the same clip.
BEFORE = {
    "plain": (dict(duration=0.5), [
        -0.163315, 0.546331, -0.085553, 0.445462, -0.177447, -0.313303, -0.442908, -0.092736,
        -0.412514, 0.007709, 0.663333, 0.309105, -0.018432, 0.124701, 0.613097, -0.285937], [
        -1.902068, -2.321315, -1.308619, -1.733295, -3.236232, -3.215515, -2.018595, -1.116984,
        -2.232966, -1.435789, -0.635311, -3.307512, -3.222714, -3.578812, -2.537808, -2.680215]),
    "all terms": (dict(duration=0.5, **BALL_TERMS), [
        -0.135891, 0.559658, -0.044552, 0.439381, -0.240392, -0.278173, -0.368312, -0.032042,
        -0.457512, 0.030234, 0.745172, 0.356286, 0.004930, 0.179456, 0.567002, -0.203575], [
        -1.787743, -2.602120, -1.791817, -2.363498, -3.430424, -3.528928, -2.245842, -1.341316,
        -2.360481, -1.652606, -0.740377, -3.283451, -3.046668, -3.564293, -2.618835, -2.656355]),
    "two chunks": (dict(duration=5.0), [
        -0.178623, 0.241330, -0.007885, 0.006319, 0.045495, 0.081853, 0.265691, -0.031443,
        -0.428072, 0.503340, 0.653121, 0.156184, -0.086362, 0.011306, -0.135422, 0.237323], [
        -3.415906, -1.442314, -1.630287, -1.028881, -0.602786, -2.661697, -1.739808, -2.619411,
        -2.451963, -1.321296, -1.926881, -1.622480, -1.912442, -1.892366, -2.043715, -2.158628]),
}


def _strided(x: torch.Tensor) -> torch.Tensor:
    return x.flatten()[::max(1, x.numel() // 16)][:16]


@pytest.mark.parametrize("case", list(BEFORE))
def test_the_steps_make_the_latents_the_single_call_made(pipe, case):
    kw, video, audio = BEFORE[case]
    last = {}
    pipe(BALL, seed=7, steps=2, progress=False, callback=last.update, **kw)
    torch.testing.assert_close(_strided(last["video"]), torch.tensor(video), rtol=0, atol=1e-4)
    torch.testing.assert_close(_strided(last["audio"]), torch.tensor(audio), rtol=0, atol=1e-4)


def test_calling_the_steps_by_hand_gives_the_clip_of_call(pipe):
    from duet.sampling.guidance import resolve_guidance
    from duet.stitch import ClipBuffer

    guidance = resolve_guidance(pipe.preset.sampler, pipe.model.num_layers, **BALL_TERMS)
    request = pipe.check_inputs(
        BALL, guidance, height=None, width=None, duration=0.5, steps=2, shift=None,
        solver=None, video_negative=None, audio_negative=None, image=None, from_video=None,
        from_audio=None, seed=None, then=(), schedule=(), overlap=None, cross_modal=True)
    given = pipe.prepare_given(request, None, None, None)
    (chunk,) = request.plan.chunks
    latents = pipe.prepare_latents(request, chunk, given, None, torch.Generator().manual_seed(3))
    video, audio = pipe.denoise(request, chunk, latents, pipe.encode_prompt(request), progress=False)
    pixels, wave = pipe.decode(chunk, video, audio, given)
    out = ClipBuffer(13, 64, 64, round(13 / 24 * 16000))  # what __call__ blends them into
    out.add_video(0, pixels.permute(1, 2, 3, 0), 0, 0)
    out.add_audio(0, wave, 0, 0)
    clip = pipe(BALL, seed=3, steps=2, duration=0.5, progress=False, **BALL_TERMS)
    assert torch.equal(clip.video, out.video) and torch.equal(clip.audio, out.audio)


def test_bridge_guidance_is_the_deprecated_name_of_cross_modal_guidance(pipe):
    with pytest.warns(DeprecationWarning, match="pass cross_modal_guidance") as seen:
        old = pipe(BALL, seed=4, bridge_guidance=(2.0, 3.0), **FAST)
    assert seen[0].filename == __file__  # the warning points at the caller's line
    new = pipe(BALL, seed=4, cross_modal_guidance=(2.0, 3.0), **FAST)
    assert torch.equal(old.video, new.video) and torch.equal(old.audio, new.audio)
    with pytest.raises(InputError, match="not both"), pytest.warns(DeprecationWarning):
        pipe(BALL, bridge_guidance=2.0, cross_modal_guidance=3.0, **FAST)


def test_slg_block_none_is_the_presets_and_slg_false_turns_it_off(pipe):
    import dataclasses

    sampler = dataclasses.replace(pipe.preset.sampler, slg_block=1)  # the demo's is None
    slg_preset = DuetPipeline(dataclasses.replace(pipe.preset, sampler=sampler), pipe.model,
                              pipe.text_encoder, pipe.video_codec, pipe.audio_codec)
    from_preset = slg_preset(BALL, seed=2, **FAST)
    assert torch.equal(from_preset.video, pipe(BALL, seed=2, slg_block=1, **FAST).video)
    assert torch.equal(slg_preset(BALL, seed=2, slg=False, **FAST).video,
                       pipe(BALL, seed=2, **FAST).video)
    assert not torch.equal(from_preset.video, pipe(BALL, seed=2, **FAST).video)
    with pytest.raises(InputError, match=r"slg_block \[4\] out of range"):
        pipe(BALL, slg_block=4, **FAST)
