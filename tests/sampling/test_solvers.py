"""Solvers: UniPC against the official FlowUniPC trajectories, Euler against closed forms."""

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from duet.errors import ConfigError, InputError
from duet.sampling.schedule import flow_sigmas, sigmas_to_timesteps
from duet.sampling.solvers import SOLVERS, SolverState, euler_step, get_solver, unipc_step

# Measured 0.0 (bit-exact) on the CPU that made the reference, torch 2.13; other vector units
# round float32 sums differently and drift by about 1 ulp (~5e-7 at |x| ~ 4) from step 5 on.
F32_ATOL = 1e-5
# bf16 states and velocities may differ by one bf16 ulp where such a float32 drift flips a
# rounding. Doing the math in float32 and rounding each state to bf16 instead is off by
# 0.03 (10 steps) / 0.19 (50 steps), several ulps, so one ulp still catches that.
BF16_ULPS = 1.0
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


@pytest.fixture(scope="module")
def ref(reference_dir):
    return load_file(reference_dir / "unipc.safetensors")


def run(solver, x, velocity_fn, sigmas):
    """Integrate with `solver` over the whole grid; returns every state, x_T first."""
    states, state = [x], SolverState()
    for i in range(sigmas.numel() - 1):
        x, state = solver(x, velocity_fn(x, i), sigmas, i, state)
        states.append(x)
    return states


@pytest.mark.parametrize("steps", [10, 50])
@pytest.mark.parametrize("tag", ["f32", "bf16"])
def test_unipc_reproduces_official_toy_trajectory(ref, steps, tag):
    dtype, key = DTYPES[tag], f"toy.steps{steps}.{tag}"
    A, b = ref["toy.A"], ref["toy.b"]  # (8, 8), (8,)
    sigmas = flow_sigmas(steps, 5.0)
    timesteps = sigmas_to_timesteps(sigmas)
    velocities = []

    def velocity(x, i):  # v = A x + (t/1000) b, in float32, cast to the trajectory dtype
        v = (A @ x.float() + (timesteps[i] / 1000) * b[:, None]).to(dtype)  # (1, 8, 5)
        velocities.append(v)
        return v

    states = run(unipc_step, ref["toy.x_T"].to(dtype), velocity, sigmas)
    for k, (ours, theirs) in enumerate(zip(states, ref[f"{key}.samples"], strict=True)):
        assert ours.dtype == dtype
        assert_close_to_reference(ours, theirs, f"state {k}")
    for k, (ours, theirs) in enumerate(zip(velocities, ref[f"{key}.velocities"], strict=True)):
        assert_close_to_reference(ours, theirs, f"velocity {k}")


def assert_close_to_reference(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    """float32 within F32_ATOL; bf16 within BF16_ULPS units in the last place of the reference."""
    err = (ours.double() - theirs.double()).abs()
    if theirs.dtype == torch.float32:
        assert err.max().item() <= F32_ATOL, f"{what}: max abs error {err.max().item()}"
        return
    exponent = torch.floor(torch.log2(theirs.double().abs().clamp_min(2.0**-126)))
    ulps = (err / torch.exp2(exponent - 7)).max().item()  # bf16 keeps 7 mantissa bits
    assert ulps <= BF16_ULPS, f"{what}: {ulps} bf16 ulps off"


@pytest.mark.parametrize("modality, scale", [("vid", 4.0), ("audio", 3.0)])
def test_unipc_replays_engine_loop(ref, modality, scale):
    """The engine's 4-step bf16 loop, fed the stored model outputs (guidance done in bf16)."""
    sigmas = flow_sigmas(4, 5.0)
    x, state = ref[f"loop.{modality}.0"], SolverState()
    for i in range(4):
        pos, neg = ref[f"loop.pred_{modality}_pos.{i}"], ref[f"loop.pred_{modality}_neg.{i}"]
        x, state = unipc_step(x, neg + scale * (pos - neg), sigmas, i, state)
        assert torch.equal(x, ref[f"loop.{modality}.{i + 1}"]), f"step {i}"


def straight_path(shape=(2, 3, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    noise = torch.randn(shape, generator=g, dtype=torch.float64)
    return x0, noise


@pytest.mark.parametrize("solver", [euler_step, unipc_step])
@pytest.mark.parametrize("shift", [1.0, 5.0])
def test_exact_velocity_stays_on_straight_path(solver, shift):
    """With v = noise - x0 (the exact flow of one data point) every step lands on the path."""
    x0, noise = straight_path()
    sigmas = flow_sigmas(7, shift, dtype=torch.float64)
    x_T = (1 - sigmas[0]) * x0 + sigmas[0] * noise
    states = run(solver, x_T, lambda x, i: noise - x0, sigmas)
    for sigma, x in zip(sigmas, states, strict=True):
        assert torch.allclose(x, (1 - sigma) * x0 + sigma * noise, atol=1e-12)


@pytest.mark.parametrize("solver", [euler_step, unipc_step])
def test_point_attractor_field_is_exact_off_path(solver):
    """v(x, sigma) = (x - x0)/sigma pulls any x to x0 along a line; both solvers are exact."""
    x0, x_T = straight_path(seed=1)
    sigmas = flow_sigmas(5, 5.0, dtype=torch.float64)
    states = run(solver, x_T, lambda x, i: (x - x0) / sigmas[i], sigmas)
    for sigma, x in zip(sigmas, states, strict=True):
        assert torch.allclose(x, x0 + sigma / sigmas[0] * (x_T - x0), atol=1e-12)


def test_euler_converges_at_first_order():
    """dx/dsigma = x^2 from x(1) = 1/2 has x(0) = 1/3; the error halves when steps double."""
    errors = []
    for steps in (16, 32, 64, 128):
        sigmas = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
        x = run(euler_step, torch.tensor([0.5], dtype=torch.float64), lambda x, i: x**2, sigmas)[-1]
        errors.append(abs(x.item() - 1 / 3))
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    assert all(1.9 < r < 2.1 for r in ratios), ratios


def gaussian_flow(mu: float, tau: float):
    """Exact flow velocity and solution when data ~ N(mu, tau^2) and noise ~ N(0, 1)."""

    def var(s):  # marginal variance of x at sigma
        return (1 - s) ** 2 * tau**2 + s**2

    def velocity(x, s):  # dx/dsigma keeps the standardised offset (x - mean) / std fixed
        return -mu + (x - mu * (1 - s)) * (s - (1 - s) * tau**2) / var(s)

    def solution(x, s, s_next):
        return mu * (1 - s_next) + (x - mu * (1 - s)) * (var(s_next) / var(s)) ** 0.5

    return velocity, solution


@pytest.mark.parametrize("shift", [1.0, 5.0])
def test_unipc_is_second_order_on_gaussian_flow(shift):
    """UniPC's error drops > 3.5x when steps double (order >= 2) and beats Euler by 10x."""
    velocity, solution = gaussian_flow(mu=0.7, tau=0.3)
    x_T = torch.tensor([-1.5, 0.2, 2.0], dtype=torch.float64)
    errors = {}
    for steps in (64, 128):
        sigmas = flow_sigmas(steps, shift, dtype=torch.float64)
        exact = solution(x_T, sigmas[0], 0.0)
        for solver in (euler_step, unipc_step):
            x = run(solver, x_T, lambda x, i: velocity(x, sigmas[i]), sigmas)[-1]
            errors[solver, steps] = (x - exact).abs().max().item()
    assert errors[unipc_step, 64] / errors[unipc_step, 128] > 3.5
    assert errors[unipc_step, 128] < errors[euler_step, 128] / 10


def test_unipc_orders_history_and_purity():
    sigmas = flow_sigmas(5)
    x = torch.randn(2, 3, 4, 5)
    state, orders = SolverState(), []
    for i in range(5):
        v = torch.randn_like(x)
        x_before, v_before = x.clone(), v.clone()
        x_next, new_state = unipc_step(x, v, sigmas, i, state)
        again, _ = unipc_step(x, v, sigmas, i, state)  # same inputs, same output: no hidden state
        assert torch.equal(again, x_next) and torch.equal(x, x_before) and torch.equal(v, v_before)
        assert x_next.shape == x.shape and len(new_state.x0) == min(i + 1, 2)
        orders.append(new_state.order)
        x, state = x_next, new_state
    assert orders == [1, 2, 2, 2, 1]  # lower order at the first and the final step
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.order = 3  # type: ignore[misc]


def test_last_step_returns_data_prediction():
    sigmas = flow_sigmas(1)
    x, v = torch.randn(3, 4), torch.randn(3, 4)
    out, _ = unipc_step(x, v, sigmas, 0, SolverState())
    assert torch.allclose(out, x - sigmas[0] * v, atol=1e-6)


@pytest.mark.parametrize("name", sorted(SOLVERS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_solvers_keep_dtype_and_shape(name, dtype):
    sigmas = flow_sigmas(3)
    x = torch.randn(1, 2, 3, 4, 5).to(dtype)
    states = run(get_solver(name), x, lambda x, i: torch.randn(x.shape).to(x.dtype), sigmas)
    assert all(s.dtype == dtype and s.shape == x.shape for s in states)
    assert all(bool(torch.isfinite(s).all()) for s in states)


def test_get_solver():
    assert get_solver("euler") is euler_step and get_solver("unipc") is unipc_step
    with pytest.raises(ConfigError, match=r"\['euler', 'unipc'\].*'dpm'"):
        get_solver("dpm")


def test_bad_step_arguments():
    sigmas, x = flow_sigmas(4), torch.zeros(2, 3)
    with pytest.raises(InputError, match="velocity shape"):
        unipc_step(x, torch.zeros(3, 2), sigmas, 0, SolverState())
    with pytest.raises(InputError, match=r"\[0, 3\].*got 4"):
        euler_step(x, x, sigmas, 4, SolverState())
    _, state = unipc_step(x, x, sigmas, 0, SolverState())
    with pytest.raises(InputError, match="must be 1, got 2"):
        unipc_step(x, x, sigmas, 2, state)
