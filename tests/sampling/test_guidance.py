"""Multi-term guidance: text CFG (+ SLG in the negative pass), STG, cross-modal guidance (dual
CFG) and std rescale; all passes batched into one forward must equal running them apart; a
call's options resolved against the preset's defaults in one place."""

from __future__ import annotations

import pytest
import torch

from duet.config import SamplerConfig
from duet.errors import ConfigError, InputError
from duet.model import ModalityInput
from duet.reference import load_cases, load_model
from duet.sampling.guidance import (CleanPrefix, Conditioning, Guidance, audio_prefix_timestep,
                                    combine, guided_velocity, model_velocity, resolve_guidance,
                                    video_prefix_timestep)


@pytest.fixture(scope="module")
def setup(reference_dir):
    model = load_model(reference_dir, torch.float32)
    ref = load_cases(reference_dir)[1]
    g = torch.Generator().manual_seed(0)
    video = torch.randn(2, 48, 3, 8, 8, generator=g)
    audio = torch.randn(2, 15, 20, generator=g)
    pos = ref["in.ctx.pos"][None].expand(2, -1, -1)
    neg = torch.randn(2, 7, pos.shape[-1], generator=g)  # a shorter negative context
    t = torch.tensor([700.0, 300.0])
    return model, video, audio, t, Conditioning(pos, pos), Conditioning(neg, neg)


ALL_TERMS = Guidance(video_scale=4.0, audio_scale=3.0, negative_skip_blocks=(1,), stg_video=0.7,
                     stg_audio=0.4, stg_blocks=(0, 2), cross_modal_video=1.5, cross_modal_audio=2.5,
                     rescale=0.6)


def test_every_term_batched_equals_sequential(setup):
    model, video, audio, t, cond, uncond = setup
    batched = guided_velocity(model, video, audio, t, cond, uncond, ALL_TERMS)
    apart = guided_velocity(model, video, audio, t, cond, uncond,
                            Guidance(**{**ALL_TERMS.__dict__, "batched": False}))
    for x, y in zip(batched, apart):
        torch.testing.assert_close(x, y, atol=2e-5, rtol=1e-5)


def test_each_term_follows_its_formula(setup):
    model, video, audio, t, cond, uncond = setup
    run = lambda c, **kw: model_velocity(model, video, audio, t, c, **kw)  # noqa: E731
    c, u = run(cond), run(uncond, skip_blocks=(1,))
    s, solo = run(cond, skip_blocks=(0, 2)), run(cond, cross_modal=False)
    g = Guidance(video_scale=4.0, audio_scale=1.0, negative_skip_blocks=(1,), stg_video=0.0,
                 stg_audio=0.5, stg_blocks=(0, 2), cross_modal_video=2.0, cross_modal_audio=1.0)
    v, a = guided_velocity(model, video, audio, t, cond, uncond, g)
    torch.testing.assert_close(v, u[0] + 4.0 * (c[0] - u[0]) + (c[0] - solo[0]), atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(a, c[1] + 0.5 * (c[1] - s[1]), atol=2e-5, rtol=1e-5)


def test_default_is_ovi_cfg_with_slg_in_the_negative_pass(setup):
    model, video, audio, t, cond, uncond = setup
    c = model_velocity(model, video, audio, t, cond)
    u = model_velocity(model, video, audio, t, uncond, skip_blocks=(1,))
    v, a = guided_velocity(model, video, audio, t, cond, uncond, Guidance(negative_skip_blocks=(1,)))
    torch.testing.assert_close(v, u[0] + 4.0 * (c[0] - u[0]), atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(a, u[1] + 3.0 * (c[1] - u[1]), atol=2e-5, rtol=1e-5)


def test_rescale_pulls_std_toward_the_conditional():
    g = torch.Generator().manual_seed(1)
    cond, uncond = torch.randn(2, 4, 10, generator=g), torch.randn(2, 4, 10, generator=g)
    out = {"cond": cond, "uncond": uncond}
    plain, full = combine(out, 5.0, 0.0, 1.0, 0.0), combine(out, 5.0, 0.0, 1.0, 1.0)
    torch.testing.assert_close(full.std(dim=(1, 2)), cond.std(dim=(1, 2)))
    half = combine(out, 5.0, 0.0, 1.0, 0.5)
    torch.testing.assert_close(half, 0.5 * (plain + full))


def test_per_item_fusion_switch_and_skip_matrix_match_separate_calls(setup):
    model, video, audio, t, cond, _ = setup
    fused = model_velocity(model, video, audio, t, cond)
    solo = model_velocity(model, video, audio, t, cond, cross_modal=False)
    mixed = model_velocity(model, video, audio, t, cond, cross_modal=torch.tensor([True, False]))
    for m in range(2):
        torch.testing.assert_close(mixed[m][0], fused[m][0], atol=1e-6, rtol=0)
        torch.testing.assert_close(mixed[m][1], solo[m][1], atol=1e-6, rtol=0)
    skip0 = model_velocity(model, video, audio, t, cond, skip_blocks=(0,))
    skip2 = model_velocity(model, video, audio, t, cond, skip_blocks=(2,))
    matrix = torch.tensor([[True, False], [False, True]])
    both = model_velocity(model, video, audio, t, cond, skip_blocks=(0, 2), skip_items=matrix)
    for m in range(2):
        torch.testing.assert_close(both[m][0], skip0[m][0], atol=1e-6, rtol=0)
        torch.testing.assert_close(both[m][1], skip2[m][1], atol=1e-6, rtol=0)


@pytest.mark.parametrize("kw, needle", [
    (dict(video_scale=-1.0), "video_scale must be >= 0"),
    (dict(cross_modal_audio=float("nan")), "cross_modal_audio"),
    (dict(stg_video=1.0), "stg_blocks"),
    (dict(rescale=1.5), "rescale must be in"),
])
def test_bad_guidance_is_refused(kw, needle):
    with pytest.raises(ConfigError, match=needle):
        Guidance(**kw)


def test_out_of_range_stg_block_names_the_range(setup):
    model, video, audio, t, cond, uncond = setup
    with pytest.raises(InputError, match="out of range"):
        guided_velocity(model, video, audio, t, cond, uncond, Guidance(stg_video=1.0, stg_blocks=(9,)))


def test_a_clean_prefix_gets_t0_in_every_pass(setup):
    """Long clips hold the previous chunk's tail clean: its tokens are at t = 0 in the
    conditional pass and in every guidance pass, batched or not."""
    model, video, audio, t, cond, uncond = setup
    clean = CleanPrefix(video=2, audio=5)
    batched = guided_velocity(model, video, audio, t, cond, uncond, ALL_TERMS, clean=clean)
    apart = guided_velocity(model, video, audio, t, cond, uncond,
                            Guidance(**{**ALL_TERMS.__dict__, "batched": False}), clean=clean)
    for x, y in zip(batched, apart):
        torch.testing.assert_close(x, y, atol=2e-5, rtol=1e-5)
    vt, at = video_prefix_timestep(t, video, (1, 2, 2), 2), audio_prefix_timestep(t, audio, 5)
    assert vt.shape == (2, 3 * 16) and (vt[:, :32] == 0).all() and (vt[:, 32:] == t[:, None]).all()
    assert at.shape == (2, 15) and (at[:, :5] == 0).all() and (at[:, 5:] == t[:, None]).all()
    want = model(ModalityInput(video, vt, cond.video), ModalityInput(audio, at, cond.audio))
    got = model_velocity(model, video, audio, t, cond, clean=clean)
    plain = model_velocity(model, video, audio, t, cond)
    for w, g, p in zip(want, got, plain):
        torch.testing.assert_close(g, w)
        assert (g - p).abs().max() > 1e-3  # t = 0 on the prefix changes every prediction


OVI = SamplerConfig()  # Ovi's defaults: text 4.0 / 3.0, skip-layer guidance on block 11


def test_unset_options_resolve_to_the_presets_defaults():
    assert resolve_guidance(OVI, 30) == Guidance(
        video_scale=4.0, audio_scale=3.0, negative_skip_blocks=(11,), stg_video=0.0,
        stg_audio=0.0, stg_blocks=(15,), cross_modal_video=1.0, cross_modal_audio=1.0,
        rescale=0.0, batched=True)


@pytest.mark.parametrize("sampler_block, kw, skipped", [
    (11, dict(), (11,)),  # slg_block None: the preset's block
    (11, dict(slg_block=None), (11,)),
    (11, dict(slg_block=3), (3,)),
    (11, dict(slg=False), ()),  # off, whatever the preset says
    (11, dict(slg=False, slg_block=3), ()),
    (None, dict(), ()),  # a preset without skip-layer guidance (the demo)
    (None, dict(slg_block=3), (3,)),
])
def test_the_skip_layer_block_comes_from_the_preset_unless_given(sampler_block, kw, skipped):
    sampler = SamplerConfig(slg_block=sampler_block)
    assert resolve_guidance(sampler, 30, **kw).negative_skip_blocks == skipped


def test_given_options_override_and_pairs_split_per_modality():
    g = resolve_guidance(OVI, 30, video_guidance=2.0, audio_guidance=1.0, stg_guidance=(0.5, 0.25),
                         stg_blocks=[2, 7], cross_modal_guidance=3.0, guidance_rescale=0.7,
                         batch_cfg=False)
    assert (g.video_scale, g.audio_scale, g.stg_video, g.stg_audio, g.stg_blocks) == (
        2.0, 1.0, 0.5, 0.25, (2, 7))
    assert (g.cross_modal_video, g.cross_modal_audio, g.rescale, g.batched) == (3.0, 3.0, 0.7, False)
    assert resolve_guidance(OVI, 30, cross_modal_guidance=(2, 1.5)).cross_modal_video == 2.0


@pytest.mark.parametrize("kw, blocks, needle", [
    (dict(), 4, r"slg_block \[11\] out of range .* blocks 0..3"),  # the preset's block, small model
    (dict(slg_block=-1), 30, r"slg_block \[-1\] out of range"),  # no sentinel any more
    (dict(stg_blocks=(2, 2)), 30, r"stg_blocks \[2, 2\] out of range or repeated"),
    (dict(stg_guidance=(1.0, 2.0, 3.0)), 30, "stg_guidance must be one number or"),
    (dict(cross_modal_guidance="x"), 30, "cross_modal_guidance must be one number or"),
])
def test_bad_options_name_themselves(kw, blocks, needle):
    with pytest.raises(InputError, match=needle):
        resolve_guidance(OVI, blocks, **kw)
