"""Rollouts sample exactly what the sampler samples, and keep the attention of the window."""

from __future__ import annotations

import functools

import pytest
import torch

from duet.model import ModalityInput
from duet.model.probe import AudioToVideoAttention
from duet.sampling.guidance import Conditioning, Guidance, guided_velocity
from duet.sampling.sampler import sample
from duet.sampling.schedule import flow_sigmas
from duet.train.rl.rollout import RolloutConfig, collect, window_steps

from rl_helpers import tiny_twin


def test_window_steps():
    assert window_steps(10, (0.5, 0.9)) == [5, 6, 7, 8]
    assert window_steps(4, (0.5, 0.9)) == [2, 3]
    assert window_steps(2, (0.5, 0.9)) == [1] and window_steps(1, (0.5, 0.9)) == [0]


def _setup(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(n, 4, 8, generator=g)
    negative = Conditioning(torch.randn(1, 4, 8, generator=g), torch.randn(1, 4, 8, generator=g))
    video, audio = torch.randn(n, 4, 3, 4, 4, generator=g), torch.randn(n, 6, 5, generator=g)
    return context, negative, video, audio


@pytest.mark.parametrize("bridge", [False, True], ids=["ovi", "bridge"])
def test_rollouts_are_the_samplers_samples(bridge):
    model = tiny_twin(bridge).eval()
    context, negative, video, audio = _setup()
    guidance = Guidance(video_scale=3.0, audio_scale=2.0, negative_skip_blocks=(1,))
    cfg = RolloutConfig(flow_sigmas(4, 3.0), solver="unipc", guidance=guidance, batch=2)
    rolled = collect(model, context, negative, video, audio, cfg)
    uncond = Conditioning(negative.video.expand(3, -1, -1), negative.audio.expand(3, -1, -1))
    denoise = functools.partial(guided_velocity, model, cond=Conditioning(context, context),
                                uncond=uncond, guidance=guidance)
    v0, a0 = sample(denoise, video, audio, cfg.sigmas, solver="unipc", disable=True)
    torch.testing.assert_close(rolled.video, v0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rolled.audio, a0, rtol=1e-5, atol=1e-5)
    assert rolled.attention.shape == (3, 6, 3 * 2 * 2)
    torch.testing.assert_close(rolled.attention.sum(-1), torch.ones(3, 6))


def test_attention_is_the_conditional_pass_mean_over_the_window():
    model = tiny_twin().eval()
    context, negative, video, audio = _setup(n=2)
    guidance = Guidance(video_scale=3.0, audio_scale=3.0, negative_skip_blocks=())
    cfg = RolloutConfig(flow_sigmas(4, 3.0), solver="euler", guidance=guidance, batch=2)
    rolled = collect(model, context, negative, video, audio, cfg)
    maps = []  # replay the trajectory, probing the conditional pass alone
    uncond = Conditioning(negative.video.expand(2, -1, -1), negative.audio.expand(2, -1, -1))
    guided = functools.partial(guided_velocity, model, cond=Conditioning(context, context),
                               uncond=uncond, guidance=guidance)

    def denoise(v, a, t):
        if len(maps) < 4:
            with AudioToVideoAttention(model) as probe, torch.no_grad():
                model(ModalityInput(v, t, context), ModalityInput(a, t, context))
            maps.append(probe.take())
        return guided(v, a, t)

    sample(denoise, video, audio, cfg.sigmas, solver="euler", disable=True)
    torch.testing.assert_close(rolled.attention, (maps[2] + maps[3]) / 2)  # steps 2, 3 of 4
    none = collect(model, context, negative, video, audio,
                   RolloutConfig(cfg.sigmas, "euler", guidance, 2, window=None))
    assert none.attention is None and torch.equal(none.video, rolled.video)
