"""Rollouts: sample clips with the project's sampler and guidance, and keep what the RL
loss needs.

Each prompt is sampled G times from different noise (a group). Kept per sample: each
modality's final clean latent x0 (the loss re-noises it, as DiffusionNFT does), the prompt
context, and, when asked, the audio -> video attention map of the conditional pass
(`duet.model.probe`), averaged over heads, blocks and the steps of `window` (fractions of
the trajectory; OmniNFT: 50-90 %), for the region weights.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from duet.model.probe import AudioToVideoAttention
from duet.sampling.guidance import Conditioning, Guidance, guided_velocity
from duet.sampling.sampler import sample


@dataclass(frozen=True)
class RolloutConfig:
    """How rollouts are sampled: the σ grid (see `duet.sampling.schedule`), solver,
    guidance, items per model call and the attention window (None: no maps)."""

    sigmas: Tensor
    solver: str = "unipc"
    guidance: Guidance = Guidance()
    batch: int = 8
    window: tuple[float, float] | None = (0.5, 0.9)


@dataclass(frozen=True)
class Rollouts:
    """N samples. video [N, C, F, H, W] and audio [N, L, C] are the final x0 (float32);
    context [N, Lt, D] the prompts' text states; attention [N, L_audio, L_video] or None."""

    video: Tensor
    audio: Tensor
    context: Tensor
    attention: Tensor | None


def window_steps(steps: int, window: tuple[float, float]) -> list[int]:
    """Step indices i with lo <= i / steps < hi (at least the one at lo)."""
    lo, hi = window
    found = [i for i in range(steps) if lo <= i / steps < hi]
    return found or [min(steps - 1, int(lo * steps))]


@torch.no_grad()
def collect(model: nn.Module, context: Tensor, negative: Conditioning, video_noise: Tensor,
            audio_noise: Tensor, cfg: RolloutConfig) -> Rollouts:
    """Sample N = context.shape[0] clips from the given starting noise, `cfg.batch` at a time.

    negative: the negative prompts' states, one row each (expanded to every item).
    """
    parts = [_collect_batch(model, context[s:s + cfg.batch], negative,
                            video_noise[s:s + cfg.batch], audio_noise[s:s + cfg.batch], cfg)
             for s in range(0, context.shape[0], cfg.batch)]
    video, audio, maps = (list(x) for x in zip(*parts))
    attention = torch.cat(maps) if cfg.window is not None else None
    return Rollouts(torch.cat(video), torch.cat(audio), context, attention)


def _collect_batch(model: nn.Module, context: Tensor, negative: Conditioning, video: Tensor,
                   audio: Tensor, cfg: RolloutConfig) -> tuple[Tensor, Tensor, Tensor | None]:
    b = context.shape[0]
    uncond = Conditioning(negative.video.expand(b, -1, -1), negative.audio.expand(b, -1, -1))
    guided = functools.partial(guided_velocity, model, cond=Conditioning(context, context),
                               uncond=uncond, guidance=cfg.guidance)
    steps = cfg.sigmas.numel() - 1
    record = set(window_steps(steps, cfg.window)) if cfg.window is not None else set()
    maps: list[Tensor] = []
    calls = 0

    def denoise(v: Tensor, a: Tensor, t: Tensor) -> tuple[Tensor | None, Tensor | None]:
        nonlocal calls  # the sampler calls once per step, in order
        i, calls = calls, calls + 1
        if i not in record:
            return guided(v, a, t)
        with AudioToVideoAttention(model) as probe:
            out = guided(v, a, t)
        found = probe.take()
        if found is not None:
            maps.append(found[:b].float())  # the conditional pass's rows
        return out

    v0, a0 = sample(denoise, video, audio, cfg.sigmas, solver=cfg.solver, disable=True)
    if not record:
        return v0.float(), a0.float(), None
    assert maps, "the probe saw no fused pass: both modalities are sampled, so fusion runs"
    return v0.float(), a0.float(), torch.stack(maps).mean(0)
