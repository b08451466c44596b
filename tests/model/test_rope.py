"""RoPE tables and rotations against the official ones (tests/fixtures/ovi_tiny/rope.*)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from duet.model.rope import apply_rope, audio_rope, head_dim_split, video_rope

SCALE = 0.19676


@pytest.fixture(scope="module")
def rope_ref(reference_dir):
    return load_file(reference_dir / "rope.safetensors")


def test_head_dim_split_is_44_42_42_for_ovi():
    assert head_dim_split(128) == (44, 42)
    assert head_dim_split(32) == (12, 10)


@pytest.mark.parametrize("tag", ["tiny", "real"])
def test_video_rotation_matches_official(rope_ref, tag):
    x = rope_ref[f"rope.{tag}.video_x"]
    grid = tuple(rope_ref[f"rope.{tag}.video_grid"][0].tolist())
    table = video_rope(grid, x.shape[-1])
    hp = apply_rope(x.double(), table)
    torch.testing.assert_close(hp.float(), rope_ref[f"rope.{tag}.video_rotated_hp"], atol=1e-6, rtol=1e-6)
    bf = apply_rope(x, table)
    assert bf.dtype == torch.bfloat16
    torch.testing.assert_close(bf, rope_ref[f"rope.{tag}.video_rotated_bf16"], atol=2e-2, rtol=1e-2)


@pytest.mark.parametrize("tag", ["tiny", "real"])
def test_audio_rotation_is_scaled_and_partial(rope_ref, tag):
    x = rope_ref[f"rope.{tag}.audio_x"]
    d = x.shape[-1]
    table = audio_rope(x.shape[1], d, SCALE)
    torch.testing.assert_close(apply_rope(x.double(), table).float(),
                               rope_ref[f"rope.{tag}.audio_rotated_hp"], atol=1e-6, rtol=1e-6)
    # the official table's rows are the scaled temporal angles p * 0.19676 * w_j
    freqs = rope_ref[f"rope.{tag}.audio_freqs"]  # (rows, a/2, 2) = (cos, sin)
    cos, sin = audio_rope(freqs.shape[0], d, SCALE)
    a = head_dim_split(d)[0]
    torch.testing.assert_close(cos[:, : a // 2], freqs[..., 0])
    torch.testing.assert_close(sin[:, : a // 2], freqs[..., 1])
    # channels past the temporal ones are not rotated at all
    assert torch.equal(apply_rope(x, table)[..., a:], x[..., a:])


def test_audio_and_video_share_one_time_axis():
    """With time scale 1/4, audio latent 4f meets video latent frame f at the same angle."""
    vcos, vsin = video_rope((8, 1, 1), 128)  # one token per frame
    acos, asin = audio_rope(32, 128, 0.25)
    a = head_dim_split(128)[0] // 2
    torch.testing.assert_close(acos[::4, :a], vcos[:, :a])
    torch.testing.assert_close(asin[::4, :a], vsin[:, :a])
    assert not torch.allclose(acos[1::4, :a], vcos[:, :a])


def test_complex_rotation_equals_the_real_formula_bit_for_bit():
    """apply_rope's one complex multiply makes the same products as re*cos - im*sin,
    re*sin + im*cos, so the speed-up changes no output; strided inputs work too."""
    cos, sin = video_rope((2, 3, 4), 64)
    x = torch.randn(2, 8, 24, 64).transpose(1, 2)  # (B, L, H, D), not contiguous
    pairs = x.unflatten(-1, (-1, 2))
    re, im = pairs[..., 0], pairs[..., 1]
    c, s = cos.float()[None, :, None, :], sin.float()[None, :, None, :]
    want = torch.stack([re * c - im * s, re * s + im * c], dim=-1).flatten(-2)
    assert torch.equal(apply_rope(x, (cos, sin)), want)
