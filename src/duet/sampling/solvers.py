"""Flow-matching ODE solvers as pure steps with explicit state.

Convention: x_t = (1 - sigma) * x0 + sigma * noise, the model predicts the flow velocity
v = noise - x0, so the data prediction is x0 = x - sigma * v. Every solver has the signature

    step(x, velocity, sigmas, i, state) -> (x_next, state_next)

and moves x from sigmas[i] to sigmas[i + 1]. `sigmas` is a decreasing grid ending in 0
(see `duet.sampling.schedule`); `state` carries what a multistep method remembers, so a
joint sampler keeps one `SolverState` per modality and nothing is hidden in an object.
Arithmetic happens in the sample's dtype, with scalar coefficients in the dtype of `sigmas`,
like Ovi's official FlowUniPC scheduler: bf16 rounds after every op, so the products below
keep upstream's order and its bf16 trajectories come out bit for bit (float32 internal math
rounded per step is off by up to 0.19 after 50 steps on the toy reference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from duet.errors import ConfigError, InputError

UNIPC_ORDER = 2  # Ovi's solver_order; the formulas below cover orders 1 and 2 only


@dataclass(frozen=True)
class SolverState:
    """What a multistep solver remembers between steps. `SolverState()` starts a run."""

    x0: tuple[Tensor, ...] = ()  # data predictions of the latest steps, oldest first
    sample: Tensor | None = None  # the (corrected) sample the last predictor started from
    order: int = 0  # order of the last predictor step (the next corrector uses it)
    index: int | None = None  # i of the last step taken


Solver = Callable[[Tensor, Tensor, Tensor, int, SolverState], tuple[Tensor, SolverState]]


def _check_step(x: Tensor, velocity: Tensor, sigmas: Tensor, i: int) -> None:
    if velocity.shape != x.shape:
        raise InputError(f"velocity shape {tuple(velocity.shape)} != x shape {tuple(x.shape)}")
    if sigmas.ndim != 1 or not 0 <= i < sigmas.numel() - 1:
        raise InputError(
            f"step index i must be in [0, {sigmas.numel() - 2}] for sigmas of shape "
            f"{tuple(sigmas.shape)}, got {i}"
        )


def euler_step(
    x: Tensor, velocity: Tensor, sigmas: Tensor, i: int, state: SolverState
) -> tuple[Tensor, SolverState]:
    """Euler's method on the flow ODE dx/dsigma = v (first order, needs no history)."""
    _check_step(x, velocity, sigmas, i)
    return x + (sigmas[i + 1] - sigmas[i]) * velocity.to(x.dtype), state


def _lam(sigma: Tensor) -> Tensor:
    """Half log-SNR of the flow path, lambda = log(alpha / sigma) with alpha = 1 - sigma."""
    return torch.log(1 - sigma) - torch.log(sigma)


def _unic(x0_new: Tensor, sigmas: Tensor, i: int, state: SolverState) -> Tensor:
    """UniC corrector (bh2): redo the step sigmas[i-1] -> sigmas[i] from the previous sample,
    now also using x0_new, the data prediction at sigmas[i]. Its order is the last predictor's."""
    s, t = sigmas[i - 1], sigmas[i]
    h = _lam(t) - _lam(s)
    phi = torch.expm1(-h)  # e^{-h} - 1; also B(h) of variant bh2
    m0, last = state.x0[-1], state.sample
    assert last is not None  # corrector only runs once a step has been taken
    out = t / s * last - (1 - t) * phi * m0  # the order-1 (DDIM-like) update
    d_new = x0_new - m0
    if state.order == 1:
        return out - (1 - t) * phi * (0.5 * d_new)  # fixed rho = 1/2 of the official solver
    # Order 2: weights solve R @ rho = b (Zhao et al. 2023, Alg. 2, phi_k recursion for -h).
    r = (_lam(sigmas[i - 2]) - _lam(s)) / h
    g1 = phi / -h - 1  # next terms of the phi_k recursion in hh = -h
    g2 = g1 / -h - 0.5
    b = torch.stack([g1 / phi, 2 * g2 / phi])  # (2,)
    R = torch.stack([torch.ones_like(b), torch.stack([r, torch.ones_like(r)])])  # (2, 2)
    rho = torch.linalg.solve(R, b).to(last.dtype)  # (2,) rounded to the sample dtype, as upstream
    d_prev = (state.x0[-2] - m0) / r
    return out - (1 - t) * phi * (rho[0] * d_prev + rho[1] * d_new)


def _unip(x: Tensor, x0s: tuple[Tensor, ...], sigmas: Tensor, i: int, order: int) -> Tensor:
    """UniP predictor (bh2): step sigmas[i] -> sigmas[i+1] with the last `order` x0s."""
    s, t = sigmas[i], sigmas[i + 1]
    h = _lam(t) - _lam(s)  # +inf when t == 0: phi -> -1 and the update returns x0
    phi = torch.expm1(-h)
    m0 = x0s[-1]
    out = t / s * x - (1 - t) * phi * m0
    if order == 1:
        return out
    r = (_lam(sigmas[i - 1]) - _lam(s)) / h
    d_prev = (x0s[-2] - m0) / r
    # Upstream fixes rho = 1/2 here (the h -> 0 limit) instead of solving for b1 = g1 / phi.
    return out - (1 - t) * phi * (0.5 * d_prev)


def unipc_step(
    x: Tensor, velocity: Tensor, sigmas: Tensor, i: int, state: SolverState
) -> tuple[Tensor, SolverState]:
    """UniPC (Zhao et al. 2023), order 2, variant bh2, data prediction, UniC corrector,
    lower order at the first and last steps: Ovi/Wan's FlowUniPCMultistepScheduler.step.

    The corrector refines x with the new prediction before the predictor runs; the
    prediction itself still comes from the uncorrected x, as in the official code.
    """
    _check_step(x, velocity, sigmas, i)
    if state.index is not None and i != state.index + 1:
        expected = state.index + 1
        raise InputError(f"state is from step {state.index}, so i must be {expected}, got {i}")
    x0 = x - sigmas[i] * velocity.to(x.dtype)  # from the sample as passed in
    if state.sample is not None:
        x = _unic(x0, sigmas, i, state)
    x0s = (*state.x0, x0)[-UNIPC_ORDER:]
    order = min(UNIPC_ORDER, sigmas.numel() - 1 - i, len(x0s))  # 1 at the first and last steps
    x_next = _unip(x, x0s, sigmas, i, order)
    return x_next, SolverState(x0=x0s, sample=x, order=order, index=i)


SOLVERS: dict[str, Solver] = {"euler": euler_step, "unipc": unipc_step}


def get_solver(name: str) -> Solver:
    """Look a solver up by name."""
    if name not in SOLVERS:
        raise ConfigError(f"solver must be one of {sorted(SOLVERS)}, got {name!r}")
    return SOLVERS[name]
