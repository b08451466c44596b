import math

import pytest
import torch

from duet.codecs import PixelCodec, VideoCodec, get_video_codec, video_codec_names
from duet.errors import ConfigError, InputError


def smooth_clip(b: int = 2, t: int = 17, h: int = 64, w: int = 96, speed: float = 1.0):
    """A clip whose colours vary slowly in space and (by `speed`) in time, in [-1, 1]."""
    tt = torch.linspace(0, 1, t)[:, None, None] * speed
    yy = torch.linspace(-1, 1, h)[None, :, None]
    xx = torch.linspace(-1, 1, w)[None, None, :]
    rgb = [0.6 * torch.sin(2 * tt + 1.5 * xx + 0.5 * yy),
           0.5 * torch.cos(1.3 * yy - xx + tt),
           0.4 * torch.sin(2 * xx * yy + tt)]
    return torch.stack(rgb)[None].repeat(b, 1, 1, 1, 1)  # [B, 3, T, H, W]


def test_is_a_video_codec_and_shapes():
    codec = PixelCodec()
    assert isinstance(codec, VideoCodec)
    assert codec.to("cpu", torch.float32) is codec
    video = smooth_clip()
    z = codec.encode(video)
    assert z.shape == (2, 3, 5, 8, 12)
    assert codec.latent_shape(17, 64, 96) == (3, 5, 8, 12)
    assert codec.decode(z).shape == video.shape
    assert codec.encode(video[:, :, :1]).shape == (2, 3, 1, 8, 12)  # a single image
    wan_like = PixelCodec(stride=(4, 16, 16))
    assert wan_like.latent_shape(121, 720, 720)[1:] == (31, 45, 45)


def test_latents_are_causal_block_means():
    codec = PixelCodec(opponent=False, scale=1.0)
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    z = codec.encode(video)
    torch.testing.assert_close(z[:, :, 0], video[:, :, 0].reshape(1, 3, 2, 8, 2, 8).mean((3, 5)))
    torch.testing.assert_close(
        z[:, :, 1], video[:, :, 1:5].reshape(1, 3, 4, 2, 8, 2, 8).mean((2, 4, 6)))


def test_first_latent_frame_sees_only_the_first_frame():
    codec = PixelCodec()
    video = smooth_clip()
    z = codec.encode(video)
    changed = video.clone()
    changed[:, :, 5] += 0.5  # frame 5 belongs to latent frame 2 (frames 5-8)
    dz = (codec.encode(changed) - z).abs().amax(dim=(0, 1, 3, 4))
    assert dz[0] == 0 and dz[1] == 0 and dz[3] == 0 and dz[4] == 0
    assert dz[2] > 0.1
    changed = video.clone()
    changed[:, :, 0] -= 0.5
    dz = (codec.encode(changed) - z).abs().amax(dim=(0, 1, 3, 4))
    assert dz[0] > 0.1 and dz[1:].max() == 0


def test_constant_clip_roundtrips_exactly():
    codec = PixelCodec()
    video = torch.empty(1, 3, 9, 32, 24)
    video[:, 0], video[:, 1], video[:, 2] = 0.3, -0.7, 0.95
    torch.testing.assert_close(codec.decode(codec.encode(video)), video, atol=1e-6, rtol=0)


def test_smooth_clip_roundtrips_with_low_error():
    codec = PixelCodec()
    static = smooth_clip(speed=0.0)
    err = codec.decode(codec.encode(static)) - static
    assert err.pow(2).mean().sqrt() < 0.015  # measured 0.011 (bilinear upsampling only)
    slow = smooth_clip(speed=0.25)
    err = codec.decode(codec.encode(slow)) - slow
    assert err.pow(2).mean().sqrt() < 0.02  # time averaging over groups of 4 adds a little


def test_decode_interpolates_linearly_in_time_between_latent_centres():
    """A brightness ramp survives stride 4 exactly up to the last latent frame's centre (6.5
    for 9 frames): no staircase of held frames, so motion keeps its timing."""
    codec = PixelCodec(stride=(4, 8, 8))
    t = torch.arange(9, dtype=torch.float32)
    video = (0.1 * t - 0.5)[None, None, :, None, None].expand(1, 3, 9, 8, 8).contiguous()
    out = codec.decode(codec.encode(video))[0, 0, :, 0, 0]
    torch.testing.assert_close(out[:7], video[0, 0, :7, 0, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[7:], torch.full((2,), 0.1 * 6.5 - 0.5), atol=1e-6, rtol=0)


def test_temporal_stride_one_keeps_a_single_frame_flash():
    codec = PixelCodec(stride=(1, 4, 4))
    video = torch.full((1, 3, 7, 8, 8), -0.5)
    video[:, :, 3] = 0.5
    torch.testing.assert_close(codec.decode(codec.encode(video)), video, atol=1e-6, rtol=0)


def test_default_scale_gives_unit_variance_for_random_flat_colours():
    colours = torch.rand(4096, 3, 1, 1, 1, generator=torch.Generator().manual_seed(0)) * 2 - 1
    z = PixelCodec().encode(colours.expand(-1, -1, 1, 8, 8))
    std = z.std(dim=(0, 2, 3, 4))
    assert torch.allclose(std, torch.ones(3), atol=0.05), std
    assert PixelCodec().scale == (math.sqrt(3),) * 3


def test_decode_clamps_to_pixel_range_and_keeps_dtype():
    codec = PixelCodec()
    out = codec.decode(torch.randn(1, 3, 2, 4, 4) * 5)
    assert out.shape == (1, 3, 5, 32, 32)
    assert out.min() >= -1 and out.max() <= 1
    video = smooth_clip(b=1).bfloat16()
    assert codec.encode(video).dtype == torch.bfloat16
    assert codec.decode(codec.encode(video)).dtype == torch.bfloat16


@pytest.mark.parametrize("shape, hint", [
    ((1, 3, 10, 64, 64), "pad to 9"),
    ((1, 3, 0, 64, 64), "pad to 1"),
    ((1, 3, 9, 60, 64), "height 60 .* crop to 64"),
    ((1, 3, 9, 64, 4), "width 4 .* crop to 8"),
    ((1, 4, 9, 64, 64), r"\[B, 3, T, H, W\]"),
    ((3, 9, 64, 64), r"\[B, 3, T, H, W\]"),
])
def test_bad_video_sizes_name_the_nearest_valid_one(shape, hint):
    with pytest.raises(InputError, match=hint):
        PixelCodec().encode(torch.zeros(shape))


def test_bad_inputs_and_options():
    codec = PixelCodec()
    with pytest.raises(InputError, match="floating point"):
        codec.encode(torch.zeros(1, 3, 5, 8, 8, dtype=torch.uint8))
    with pytest.raises(InputError, match="trim or pad to 13"):
        codec.latent_shape(12, 64, 64)
    with pytest.raises(ConfigError, match="stride"):
        PixelCodec(stride=(4, 8))
    with pytest.raises(ConfigError, match="scale"):
        PixelCodec(scale=0.0)


def test_registry():
    assert "pixels" in video_codec_names()
    codec = get_video_codec("pixels", stride=(4, 16, 16))
    assert isinstance(codec, PixelCodec) and codec.stride == (4, 16, 16)
    with pytest.raises(ConfigError, match=r"choose one of \['frames', 'pixels'"):
        get_video_codec("wan2.1-vae")
    with pytest.raises(ConfigError, match="strides"):
        get_video_codec("pixels", strides=(4, 8, 8))
