"""Schedules against the official FlowUniPC grid (reference/ovi_tiny/unipc.safetensors)."""

import math

import pytest
import torch
from safetensors.torch import load_file

from duet.errors import ConfigError
from duet.sampling.schedule import (
    flow_sigmas,
    shift_sigmas,
    sigmas_to_timesteps,
    training_sigma_max,
)


@pytest.fixture(scope="module")
def ref(reference_dir):
    return load_file(reference_dir / "unipc.safetensors")


@pytest.mark.parametrize("steps", [4, 10, 50])
def test_flow_sigmas_match_official_grid(ref, steps):
    sigmas = flow_sigmas(steps, 5.0)
    assert sigmas.dtype == torch.float32 and sigmas.shape == (steps + 1,)
    assert torch.equal(sigmas, ref[f"unipc.steps{steps}.sigmas"])  # bit for bit
    assert sigmas[-1] == 0 and bool((sigmas[1:] < sigmas[:-1]).all())


@pytest.mark.parametrize("steps", [4, 10, 50])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_timesteps_match_official(ref, steps, dtype):
    timesteps = sigmas_to_timesteps(flow_sigmas(steps, 5.0, dtype=dtype))
    assert timesteps.dtype == torch.int64
    assert torch.equal(timesteps, ref[f"unipc.steps{steps}.timesteps"])


def test_ten_step_timesteps_readme_example():
    expected = [999, 978, 952, 920, 882, 833, 768, 681, 555, 356]
    assert sigmas_to_timesteps(flow_sigmas(10)).tolist() == expected


def test_sigma_max_is_float32_of_0999(ref):
    # The official grid starts from float32(0.999) = 0.99900001287..., not from 0.999.
    assert training_sigma_max() == float(torch.tensor(0.999, dtype=torch.float32))
    assert not torch.equal(flow_sigmas(10, sigma_max=0.999), ref["unipc.steps10.sigmas"])


def test_shift_sigmas_fixed_points_and_identity():
    sigmas = torch.linspace(1, 0, 11, dtype=torch.float64)
    assert torch.equal(shift_sigmas(sigmas, 1.0), sigmas)
    shifted = shift_sigmas(sigmas, 5.0)
    assert shifted[0] == 1 and shifted[-1] == 0
    assert bool((shifted[1:-1] > sigmas[1:-1]).all())  # shift > 1 moves steps to high noise
    # 1/s shift undoes shift s.
    assert torch.allclose(shift_sigmas(shifted, 1 / 5.0), sigmas, atol=1e-15)


def test_one_step_grid():
    sigmas = flow_sigmas(1, 5.0)
    assert sigmas.shape == (2,) and sigmas[-1] == 0
    assert sigmas_to_timesteps(sigmas).tolist() == [999]


@pytest.mark.parametrize("steps", [0, -3, 2.5, True, "10"])
def test_bad_steps(steps):
    with pytest.raises(ConfigError, match=rf"steps.*>= 1.*{steps!r}"):
        flow_sigmas(steps)


@pytest.mark.parametrize("shift", [0.0, -1.0, math.nan, math.inf])
def test_bad_shift(shift):
    with pytest.raises(ConfigError, match="shift.*> 0"):
        flow_sigmas(10, shift)
    with pytest.raises(ConfigError, match="shift"):
        shift_sigmas(torch.ones(3), shift)


def test_bad_sigma_range():
    with pytest.raises(ConfigError, match="sigma_max.*1.5"):
        flow_sigmas(10, sigma_max=1.5)
    with pytest.raises(ConfigError, match="sigma_min.*0.9"):
        flow_sigmas(10, sigma_max=0.5, sigma_min=0.9)
    with pytest.raises(ConfigError, match="sigmas"):
        sigmas_to_timesteps(torch.zeros(1))
