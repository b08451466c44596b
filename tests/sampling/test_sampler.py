"""The joint loop (UniPC + per-modality CFG + skip-layer guidance) against the official
engine loop run with the tiny reference model (tests/fixtures/ovi_tiny/unipc.*)."""

from __future__ import annotations

import pytest
import torch

from duet.errors import InputError
from duet.reference import load_cases, load_model, run_engine_loop
from duet.sampling.guidance import CleanPrefix, Conditioning, Guidance, guided_velocity
from duet.sampling.sampler import sample
from duet.sampling.schedule import flow_sigmas


def rel_l2(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.fixture(scope="module")
def ref(reference_dir):
    return load_cases(reference_dir)[1]


@pytest.mark.parametrize("batched", [True, False])
def test_float32_loop_matches_official_high_precision(reference_dir, ref, batched):
    states = run_engine_loop(load_model(reference_dir, torch.float32), ref, torch.float32, batched)
    assert len(states) == 4
    for k, (v, a) in enumerate(states, start=1):
        torch.testing.assert_close(v, ref[f"loop_hp.vid.{k}"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(a, ref[f"loop_hp.audio.{k}"], atol=1e-4, rtol=1e-4)


def test_bfloat16_loop_matches_official_bf16(reference_dir, ref):
    states = run_engine_loop(load_model(reference_dir, torch.bfloat16), ref, torch.bfloat16)
    for k, (v, a) in enumerate(states, start=1):
        assert v.dtype == torch.bfloat16
        assert rel_l2(v, ref[f"loop.vid.{k}"]) < 3e-2
        assert rel_l2(a, ref[f"loop.audio.{k}"]) < 3e-2


def test_first_frame_is_reimposed_and_gets_t0(reference_dir, ref):
    model = load_model(reference_dir, torch.float32)
    seen = []

    def denoise(video, audio, t):
        seen.append(video[:, :, :1].clone())
        cond = Conditioning(ref["in.ctx.pos"][None], ref["in.ctx.pos"][None])
        return guided_velocity(model, video, audio, t, cond, cond, Guidance(1.0, 1.0),
                               clean=CleanPrefix(video=1))

    first = ref["in.vid.A_i2v"][None, :, :1].float()
    noise = torch.randn(1, 48, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    v, _ = sample(denoise, noise, None, flow_sigmas(3, 5.0), video_prefix=first, disable=True)
    assert all(torch.equal(s, first) for s in seen)
    assert torch.equal(v[:, :, :1], first)
    assert not torch.allclose(v[:, :, 1:], noise[:, :, 1:])


def test_per_modality_sigma_grids(reference_dir, ref):
    model = load_model(reference_dir, torch.float32)
    cond = Conditioning(ref["in.ctx.pos"][None], ref["in.ctx.pos"][None])
    seen = []

    def denoise(video, audio, t):
        seen.append(t)
        return guided_velocity(model, video, audio, t, cond, cond, Guidance(1.0, 1.0))

    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 48, 3, 8, 8, generator=g), torch.randn(1, 15, 20, generator=g)
    grid5, grid1 = flow_sigmas(4, 5.0, dtype=torch.float64), flow_sigmas(4, 1.0, dtype=torch.float64)
    shared = sample(denoise, *noise, grid5, disable=True)
    same = sample(denoise, *noise, (grid5, grid5), disable=True)
    assert all(torch.equal(x, y) for x, y in zip(shared, same))
    seen.clear()
    apart = sample(denoise, *noise, (grid5, grid1), disable=True)
    assert all(isinstance(t, tuple) and t[0].item() >= t[1].item() for t in seen)
    assert seen[1][0].item() > seen[1][1].item()  # shift 5 keeps video noisier than audio
    assert not torch.equal(apart[1], shared[1])
    with pytest.raises(InputError, match="same number of steps"):
        sample(denoise, *noise, (grid5, flow_sigmas(3, 1.0)), disable=True)
