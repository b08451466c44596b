"""Noise schedules for rectified-flow sampling, as pure functions.

Every schedule returns sigma in [0, 1] ending in an appended 0 (k-diffusion habit); solvers
never build their own grid. Sigma is the noise fraction: x_t = (1 - sigma) * x0 + sigma * noise.
The default grid reproduces the one Ovi's FlowUniPC scheduler builds with
`set_timesteps(steps, shift=5.0)`, bit for bit.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from duet.errors import ConfigError

NUM_TRAIN_TIMESTEPS = 1000  # the model is trained on t = 1000 * sigma, t in [0, 1000)


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be an integer >= 1, got {steps!r}")


def _check_shift(shift: float) -> None:
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not (
        math.isfinite(shift) and shift > 0
    ):
        raise ConfigError(f"shift must be a finite number > 0, got {shift!r}")


def training_sigma_max(num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> float:
    """Largest sigma of the N-point training grid, 1 - 1/N, as the float32 the official
    scheduler stores it (0.999 -> 0.99900001287...; exactly 0.999 gives a different grid)."""
    return float(torch.tensor(1.0 - 1.0 / num_train_timesteps, dtype=torch.float32))


def shift_sigmas(sigmas: Tensor, shift: float) -> Tensor:
    """Time shift of SD3 (Esser et al. 2024): sigma' = s*sigma / (1 + (s-1)*sigma).

    Shift > 1 spends more steps at high noise; 0 and 1 are fixed points. Keeps the dtype.
    """
    _check_shift(shift)
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def flow_sigmas(
    steps: int,
    shift: float = 5.0,
    *,
    sigma_max: float | None = None,
    sigma_min: float = 0.0,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Ovi/Wan FlowUniPC grid: `steps` sigmas evenly spaced from sigma_max down to (not
    including) sigma_min, time-shifted, then a final 0 appended. Shape (steps + 1,).

    The grid is built in float64 and rounded once to `dtype`, like the official scheduler.
    sigma_max defaults to `training_sigma_max()`; pass dtype=torch.float64 when the
    timesteps must match the official ones for every step count (see `sigmas_to_timesteps`).
    """
    _check_steps(steps)
    _check_shift(shift)
    if sigma_max is None:
        sigma_max = training_sigma_max()
    if not 0.0 < sigma_max <= 1.0:
        raise ConfigError(f"sigma_max must be in (0, 1], got {sigma_max!r}")
    if not 0.0 <= sigma_min < sigma_max:
        raise ConfigError(f"sigma_min must be in [0, sigma_max={sigma_max}), got {sigma_min!r}")
    grid = torch.linspace(sigma_max, sigma_min, steps + 1, dtype=torch.float64)[:-1]  # (steps,)
    grid = shift_sigmas(grid, shift)
    return torch.cat([grid, grid.new_zeros(1)]).to(dtype)  # (steps + 1,)


def sigmas_to_timesteps(sigmas: Tensor, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> Tensor:
    """Integer timesteps the model is conditioned on: trunc(1000 * sigma) for every sigma
    but the final one. Shape (len(sigmas) - 1,), int64 (e.g. 999, not 999.8).

    The official scheduler truncates the float64 grid. From float32 sigmas the result is the
    same for 4/10/50 steps at shift 5 (and every count up to 1000 except 517, 727, 750, 777);
    from `flow_sigmas(..., dtype=torch.float64)` it is always the same.
    """
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        shape = tuple(sigmas.shape)
        raise ConfigError(f"sigmas must be 1-D with at least 2 values, got shape {shape}")
    return (sigmas[:-1].double() * num_train_timesteps).to(torch.int64)  # trunc toward 0
