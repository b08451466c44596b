"""The joint sampling loop: one shared timestep, one solver state per modality.

The denoiser is any callable `denoise(video, audio, t) -> (video_velocity, audio_velocity)`
(guidance is a closure around the model, see `guidance.py`), so the loop never knows
about CFG. Either modality may be None. With one σ grid per modality (e.g. a different
shift for each) both grids have the same number of steps and t is a (video, audio) pair.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import trange

from duet.errors import InputError
from duet.sampling.schedule import sigmas_to_timesteps
from duet.sampling.solvers import SolverState, get_solver

Denoiser = Callable[[Tensor | None, Tensor | None, Any], tuple[Tensor | None, Tensor | None]]


@torch.no_grad()
def sample(denoise: Denoiser, video: Tensor | None, audio: Tensor | None,
           sigmas: Tensor | tuple[Tensor, Tensor], *,
           solver: str = "unipc", video_prefix: Tensor | None = None,
           audio_prefix: Tensor | None = None, held: str | None = None,
           callback: Callable[[dict[str, Any]], None] | None = None, disable: bool = False,
           desc: str = "denoising") -> tuple[Tensor | None, Tensor | None]:
    """Integrate the flow ODE from noise at sigmas[0] to data at sigmas[-1] = 0.

    Pass `flow_sigmas(..., dtype=torch.float64)` to get the official integer timesteps
    for every step count (float32 grids differ by one at a few counts).

    video [B, C, F, H, W] and audio [B, L, C] are the starting noise. video_prefix
    [B, C, k, H, W] and audio_prefix [B, n, C]: clean latents imposed on the first k video
    frames / n audio latents before the first step and after every step (a first frame for
    image-to-video, the previous chunk's frames and sound for long clips; the denoiser must
    give their tokens t = 0).
    sigmas may be one grid or (video grid, audio grid) of equal length.
    held: "video" or "audio" is given, not generated (video-to-audio, audio-to-video): that
    latent stays as passed, clean, and the model sees it at t = 0 throughout.
    The callback gets {"i", "t", "sigma", "video", "audio"} after each step ("t" and
    "sigma" are (video, audio) pairs with two grids).
    """
    step = get_solver(solver)
    if held not in (None, "video", "audio"):
        raise InputError(f"held must be None, 'video' or 'audio', got {held!r}")
    prefixed = video_prefix is not None or audio_prefix is not None
    if held is not None and (video is None or audio is None or prefixed):
        raise InputError("a held modality needs both latents and no clean prefix")
    for name, x, p, dim in (("video", video, video_prefix, 2), ("audio", audio, audio_prefix, 1)):
        if p is not None and (x is None or p.shape[dim] >= x.shape[dim]):
            raise InputError(f"the clean {name} prefix must be shorter than the {name} latents")
    one_grid = isinstance(sigmas, Tensor)
    grids = (sigmas, sigmas) if one_grid else tuple(sigmas)
    shared = one_grid and held is None  # the denoiser gets one t, else a (video, audio) pair
    if len(grids) != 2 or grids[0].shape != grids[1].shape:
        raise InputError("per-modality sigmas must be two grids with the same number of steps")
    timesteps = [sigmas_to_timesteps(g) for g in grids]  # int64, what the model is conditioned on
    grids = [g.float() for g in grids]  # float64 grids give exact official timesteps; solvers use float32
    batch = (video if video is not None else audio).shape[0]
    device = (video if video is not None else audio).device
    vstate, astate = SolverState(), SolverState()
    video, audio = _impose(video, video_prefix, 2), _impose(audio, audio_prefix, 1)
    for i in trange(len(grids[0]) - 1, disable=disable, desc=desc):
        tv, ta = (torch.zeros_like(ts[i]) if held == m else ts[i]
                  for m, ts in zip(("video", "audio"), timesteps))
        tv, ta = tv.expand(batch).to(device), ta.expand(batch).to(device)
        v_vel, a_vel = denoise(video, audio, tv if shared else (tv, ta))
        if video is not None and held != "video":
            video, vstate = step(video, v_vel, grids[0], i, vstate)
        if audio is not None and held != "audio":
            audio, astate = step(audio, a_vel, grids[1], i, astate)
        video, audio = _impose(video, video_prefix, 2), _impose(audio, audio_prefix, 1)  # clean
        if callback is not None:
            sig = [torch.zeros_like(g[i]) if held == m else g[i] for m, g in zip(("video", "audio"), grids)]
            callback({"i": i, "t": tv[0] if shared else (tv[0], ta[0]),
                      "sigma": sig[0] if shared else (sig[0], sig[1]), "video": video, "audio": audio})
    return video, audio


def _impose(x: Tensor | None, prefix: Tensor | None, dim: int) -> Tensor | None:
    """x with its leading entries along `dim` replaced by the clean prefix."""
    if prefix is None:
        return x
    k = prefix.shape[dim]
    return torch.cat([prefix.to(x.dtype), x.narrow(dim, k, x.shape[dim] - k)], dim=dim)
