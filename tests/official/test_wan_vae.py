"""The Wan2.2 VAE codec (`duet.codecs.wan`) on tiny random checkpoints in the official
`Wan2.2_VAE.pth` format (written by `tiny_wan_vae.py`), plus the real layout on `meta`."""

from pathlib import Path

import pytest
import torch
from tiny_wan_vae import official_shapes, write_tiny_checkpoint

from duet.codecs import VideoCodec, get_video_codec
from duet.codecs.wan import (
    WAN22_LATENT_MEAN,
    WAN22_LATENT_STD,
    WanVAEArch,
    WanVAECodec,
    build_vae,
)
from duet.errors import CheckpointError, ConfigError, InputError
from duet.weights import wan_vae_key


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path_factory.mktemp("wan") / "Wan2.2_VAE.pth"
    return path, write_tiny_checkpoint(path)


@pytest.fixture(scope="module")
def codec(tiny: tuple[Path, dict[str, torch.Tensor]]) -> WanVAECodec:
    return WanVAECodec(tiny[0])


def clip(frames: int = 9, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, size, size, generator=g) * 2 - 1


def stats() -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(WAN22_LATENT_MEAN).view(1, -1, 1, 1, 1),
            torch.tensor(WAN22_LATENT_STD).view(1, -1, 1, 1, 1))


def test_tiny_checkpoint_loads_strictly_with_every_value(codec, tiny):
    _, official = tiny
    assert isinstance(codec, VideoCodec)
    assert codec.arch == WanVAEArch(dim=8, dec_dim=8)
    assert (codec.latent_channels, codec.stride) == (48, (4, 16, 16))
    loaded = codec.vae.state_dict()
    assert len(loaded) == len(official)
    for key, value in official.items():
        assert torch.equal(loaded[wan_vae_key(key)], value), key


def test_key_map_is_a_bijection_onto_diffusers_keys(tiny):
    _, official = tiny
    mapped = {wan_vae_key(k) for k in official}
    assert len(mapped) == len(official)
    assert mapped == set(build_vae(WanVAEArch(dim=8, dec_dim=8)).state_dict())


def test_real_wan22_layout_maps_onto_diffusers_wan22_config():
    # The official key set of the released VAE (written out from vae2_2.py's structure),
    # renamed, must be exactly diffusers' Wan2.2 network, shapes included.
    official = official_shapes()
    expected = {k: tuple(v.shape) for k, v in build_vae(WanVAEArch()).state_dict().items()}
    mapped = {wan_vae_key(k): s for k, s in official.items()}
    assert len(mapped) == len(official) == 196
    assert mapped == expected
    assert WanVAEArch.from_shapes(official, "Wan2.2_VAE.pth") == WanVAEArch()
    assert WanVAEArch().stride == (4, 16, 16)


def test_encode_decode_shapes(codec):
    x = clip(9, 64)
    z = codec.encode(x)
    assert z.shape == (1, 48, 3, 4, 4) and z.dtype == x.dtype
    assert codec.latent_shape(9, 64, 64) == (48, 3, 4, 4)
    y = codec.decode(z)
    assert y.shape == x.shape and y.abs().max() <= 1.0
    assert codec.encode(clip(1, 32)).shape == (1, 48, 1, 2, 2)


def test_encode_is_the_standardised_posterior_mean(codec):
    x = clip(5, 32)
    z = codec.encode(x)
    assert torch.equal(z, codec.encode(x))
    mean, std = stats()
    mu = codec.vae.encode(x).latent_dist.mean
    torch.testing.assert_close(z * std + mean, mu, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(codec.decode(z), codec.vae.decode(mu).sample, rtol=1e-5, atol=1e-5)


def test_bad_inputs_name_the_fix(codec):
    with pytest.raises(InputError, match=r"4k\+1 frames.*pad to 9 or trim to 5"):
        codec.encode(clip(8, 32))
    with pytest.raises(InputError, match="multiple of the codec stride 16"):
        codec.encode(clip(5, 40))
    with pytest.raises(InputError, match="shape"):
        codec.decode(torch.zeros(1, 16, 2, 2, 2))
    with pytest.raises(InputError, match="floating point"):
        codec.encode(torch.zeros(1, 3, 5, 32, 32, dtype=torch.uint8))
    with pytest.raises(InputError, match="dtype"):
        codec.to(dtype=torch.int64)


def _corrupt(kind: str, path: Path, official: dict[str, torch.Tensor]) -> None:
    state = dict(official)
    if kind == "missing key":
        del state["decoder.middle.1.proj.bias"]
    elif kind == "wrong shape":
        state["decoder.middle.1.proj.weight"] = torch.zeros(3, 3, 1, 1)
    elif kind == "unexpected key":
        state["decoder.extra.weight"] = torch.zeros(1)
    elif kind == "garbage":
        path.write_bytes(b"<html>404 Not Found</html>")
        return
    elif kind == "not a state dict":
        torch.save([torch.zeros(1)], path)
        return
    elif kind == "other layout":  # Wan2.1's VAE: RGB input, a flat list of encoder layers
        state = {"encoder.conv1.weight": torch.zeros(96, 3, 3, 3, 3),
                 "encoder.downsamples.0.residual.0.gamma": torch.zeros(96, 1, 1, 1),
                 "conv2.weight": torch.zeros(16, 16, 1, 1, 1)}
    torch.save(state, path)
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("kind, message", [
    ("missing key", "missing"), ("wrong shape", "wrong shape"),
    ("unexpected key", "unexpected .*decoder.extra.weight"),
    ("not a state dict", "state dict of tensors"),
    ("other layout", "Wan2.2 VAE layout.*Wan2.1_VAE.pth"),
    ("truncated", "truncated"), ("garbage", "not a readable PyTorch checkpoint"),
    ("nonexistent", "not found")])
def test_bad_checkpoints_raise_checkpoint_error_naming_the_file(tiny, tmp_path, kind, message):
    path = tmp_path / f"broken-{kind.replace(' ', '-')}.pth"
    if kind != "nonexistent":
        _corrupt(kind, path, tiny[1])
    with pytest.raises(CheckpointError, match=message) as err:
        WanVAECodec(path)
    assert path.name in str(err.value)


def test_nested_and_legacy_format_checkpoints_load_through_the_registry(tmp_path):
    path = tmp_path / "train-ckpt.pth"
    official = write_tiny_checkpoint(path, nested=True, legacy=True, seed=1)
    codec = get_video_codec("wan2.2-vae", path=str(path))
    assert isinstance(codec, WanVAECodec) and codec.latent_channels == 48
    key = "encoder.downsamples.1.downsamples.2.time_conv.weight"
    assert torch.equal(codec.vae.state_dict()[wan_vae_key(key)], official[key])


def test_other_sizes_are_read_from_the_checkpoint(tmp_path):
    path = tmp_path / "small.pth"
    write_tiny_checkpoint(path, dim=4, dec_dim=8, z_dim=8, num_res_blocks=1)
    codec = WanVAECodec(path)
    assert codec.arch == WanVAEArch(dim=4, dec_dim=8, z_dim=8, num_res_blocks=1)
    z = codec.encode(clip(5, 32))
    assert z.shape == (1, 8, 2, 2, 2)
    # no published statistics for 8 channels: identity standardisation
    torch.testing.assert_close(z, codec.vae.encode(clip(5, 32)).latent_dist.mean)


def test_tiled_coding_is_close_to_untiled(tiny):
    whole = WanVAECodec(tiny[0])
    x = clip(5, 128)
    z = whole.encode(x)
    y = whole.decode(z)
    # decode tiles: 96 px (6 latents) every 64 px; encode tiles cover 128 px every 96 px
    tiled = WanVAECodec(tiny[0], tiled=True, tile_size=96, tile_stride=64)
    y_tiled = tiled.decode(z)
    assert y_tiled.shape == y.shape and not torch.equal(y_tiled, y)
    assert (y_tiled - y).norm() < 0.2 * y.norm()
    tiled = WanVAECodec(tiny[0], tiled=True, tile_size=64, tile_stride=48)
    z_tiled = tiled.encode(x)
    assert z_tiled.shape == z.shape and not torch.equal(z_tiled, z)
    assert (z_tiled - z).norm() < 0.05 * z.norm()


def test_tile_sizes_are_validated(tiny):
    with pytest.raises(ConfigError, match="multiples of 16"):
        WanVAECodec(tiny[0], tiled=True, tile_size=100)
