"""The joint sampling loop: one shared timestep, one solver state per modality.

The denoiser is any callable `denoise(video, audio, t) -> (video_velocity, audio_velocity)`
(guidance is a closure around the model, see `guidance.py`), so the loop never knows
about CFG. Either modality may be None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import trange

from duet.sampling.schedule import sigmas_to_timesteps
from duet.sampling.solvers import SolverState, get_solver

Denoiser = Callable[[Tensor | None, Tensor | None, Tensor], tuple[Tensor | None, Tensor | None]]


@torch.no_grad()
def sample(denoise: Denoiser, video: Tensor | None, audio: Tensor | None, sigmas: Tensor, *,
           solver: str = "unipc", first_frame: Tensor | None = None,
           callback: Callable[[dict[str, Any]], None] | None = None, disable: bool = False,
           ) -> tuple[Tensor | None, Tensor | None]:
    """Integrate the flow ODE from noise at sigmas[0] to data at sigmas[-1] = 0.

    Pass `flow_sigmas(..., dtype=torch.float64)` to get the official integer timesteps
    for every step count (float32 grids differ by one at a few counts).

    video [B, C, F, H, W] and audio [B, L, C] are the starting noise. first_frame
    [B, C, 1, H, W]: a clean latent re-imposed on video frame 0 before every step
    (image-to-video; the denoiser must then give its tokens t = 0).
    The callback gets {"i", "t", "sigma", "video", "audio"} after each step.
    """
    step = get_solver(solver)
    timesteps = sigmas_to_timesteps(sigmas)  # int64, what the model is conditioned on
    sigmas = sigmas.float()  # float64 grids give exact official timesteps; solvers use float32
    batch = (video if video is not None else audio).shape[0]
    vstate, astate = SolverState(), SolverState()
    for i in trange(len(sigmas) - 1, disable=disable, desc="denoising"):
        if first_frame is not None:
            video = _impose(video, first_frame)
        t = timesteps[i].expand(batch).to((video if video is not None else audio).device)
        v_vel, a_vel = denoise(video, audio, t)
        if video is not None:
            video, vstate = step(video, v_vel, sigmas, i, vstate)
        if audio is not None:
            audio, astate = step(audio, a_vel, sigmas, i, astate)
        if callback is not None:
            callback({"i": i, "t": timesteps[i], "sigma": sigmas[i], "video": video, "audio": audio})
    if first_frame is not None:
        video = _impose(video, first_frame)
    return video, audio


def _impose(video: Tensor, first_frame: Tensor) -> Tensor:
    return torch.cat([first_frame.to(video.dtype), video[:, :, 1:]], dim=2)
