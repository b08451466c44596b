"""The learned frame codec: contract, file format, training, and the shipped weights' quality."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from duet.codecs import VideoCodec, get_video_codec
from duet.codecs.frames import (FrameAEConfig, FrameAutoencoder, FrameCodec, upsample_nearest2x, opponent,
                                save_frame_codec, shipped_weights)
from duet.data.world import HELDOUT_SEED_START, WorldConfig
from duet.errors import ConfigError, InputError
from duet.train import codec as codec_training
from duet.train.codec import (CodecTrainConfig, config_from_args, frame_triplets,
                              interpolation_loss, psnr, reconstruction_loss, render_frames,
                              resume_path, train_frame_codec)

SMALL = FrameAEConfig(latent_channels=4, widths=(4, 8, 8))  # stride 4


def _saved(tmp_path, config=SMALL, seed=0):
    torch.manual_seed(seed)
    net = FrameAutoencoder(config)
    path = tmp_path / "codec.safetensors"
    save_frame_codec(net, torch.arange(config.latent_channels) * 0.1,
                     torch.full((config.latent_channels,), 2.0), path)
    return net, path


def test_contract_shapes_and_per_frame_independence(tmp_path):
    net, path = _saved(tmp_path)
    codec = get_video_codec("frames", weights=str(path))
    assert isinstance(codec, VideoCodec) and codec.stride == (1, 4, 4) and codec.latent_channels == 4
    video = torch.rand(2, 3, 5, 16, 24) * 2 - 1
    z = codec.encode(video)
    assert z.shape == (2, 4, 5, 4, 6) == (2, *codec.latent_shape(5, 16, 24))
    # standardised with the stored statistics: raw = z * std + mean
    raw = net.encode(video[1, :, 3][None])[0]
    torch.testing.assert_close(z[1, :, 3] * 2.0 + (torch.arange(4) * 0.1)[:, None, None], raw,
                               rtol=1e-5, atol=1e-5)
    # a frame's latent does not depend on its neighbours or the batch
    torch.testing.assert_close(codec.encode(video[1:, :, 3:4])[0, :, 0], z[1, :, 3], rtol=1e-5, atol=1e-5)
    y = codec.decode(z)
    assert y.shape == video.shape and y.min() >= -1 and y.max() <= 1


def test_upsampling_is_nearest_neighbour_values_and_gradients():
    """The decoder's 2x upsampling gives what F.interpolate(mode="nearest") gives, forward
    and backward, so the faster kernel changes no decoded pixel and no codec training step."""
    x = torch.randn(3, 5, 4, 6, requires_grad=True)
    ours, ref = upsample_nearest2x(x), torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
    assert ours.shape == (3, 5, 8, 12) and torch.equal(ours, ref)
    g = torch.randn_like(ref)
    (grad_ours,), (grad_ref,) = torch.autograd.grad(ours, x, g), torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=0, atol=1e-6)


def test_bad_sizes_and_files_are_clear(tmp_path):
    _, path = _saved(tmp_path)
    codec = FrameCodec(str(path))
    with pytest.raises(InputError, match="multiple of the codec stride 4: resize or crop to 16"):
        codec.latent_shape(5, 18, 16)
    with pytest.raises(ConfigError, match="do not exist"):
        FrameCodec(str(tmp_path / "missing.safetensors"))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ConfigError, match="not a readable safetensors"):
        FrameCodec(str(broken))
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ConfigError, match="not a Duet frame codec"):
        FrameCodec(str(tmp_path / "other.safetensors"))


def test_training_lowers_the_loss_and_writes_a_loadable_codec(tmp_path):
    world = WorldConfig(frames=37, height=32, width=32)
    cfg = CodecTrainConfig(out=str(tmp_path / "c.safetensors"), clips=4, steps=60, batch_size=16,
                           lr=3e-3, warmup_steps=5, heldout_clips=2, arch=SMALL, world=world)
    r = train_frame_codec(cfg, progress=False)
    assert r["loss_last"] < 0.5 * r["loss_first"]
    codec = FrameCodec(cfg.out)
    z = codec.encode(render_frames(0, 4, world)[None].permute(0, 2, 1, 3, 4).float() / 127.5 - 1)
    # standardised on training frames: per-channel mean ~0, std ~1
    assert z.mean(dim=(0, 2, 3, 4)).abs().max() < 0.2
    assert (z.std(dim=(0, 2, 3, 4)) - 1).abs().max() < 0.2
    with pytest.raises(ConfigError, match="not a multiple of the codec's spatial stride 4"):
        dataclasses.replace(cfg, world=WorldConfig(height=34, width=34))


CHROMA = dataclasses.replace(SMALL, chroma_channels=2)


def test_chroma_channels_are_cell_averaged_opponent_colour(tmp_path):
    torch.manual_seed(0)
    net = FrameAutoencoder(CHROMA)
    x = torch.rand(3, 3, 16, 8) * 2 - 1
    z = net.encode(x)
    assert z.shape == (3, 6, 4, 2) and net.decode(z).shape == x.shape
    planes = opponent(x)
    torch.testing.assert_close(planes.square().sum(1), x.square().sum(1))  # orthonormal
    rg = (x[:, 0] - x[:, 1]) / 2 ** 0.5
    torch.testing.assert_close(z[:, 4], rg.unfold(1, 4, 4).unfold(2, 4, 4).mean((-1, -2)))
    # the learned channels see luma only: a hue change at equal luma leaves them unchanged
    hue = x + torch.tensor([0.2, -0.2, 0.0])[None, :, None, None]
    z2 = net.encode(hue)
    torch.testing.assert_close(z2[:, :4], z[:, :4])
    assert (z2[:, 4] - z[:, 4]).abs().min() > 0.2
    # the file records the option, the codec hands the tower learned + chroma channels
    save_frame_codec(net, torch.zeros(6), torch.ones(6), tmp_path / "c.safetensors")
    codec = FrameCodec(str(tmp_path / "c.safetensors"))
    assert codec.latent_channels == 6 and codec.latent_shape(2, 16, 8) == (6, 2, 4, 2)
    torch.testing.assert_close(codec.encode(x.permute(1, 0, 2, 3)[None])[0].permute(1, 0, 2, 3), z)
    with pytest.raises(ConfigError, match="chroma_channels must be 0"):
        FrameAEConfig(chroma_channels=3)
    cfg = config_from_args("x.safetensors", chroma_channels=2, latent_channels=8, steps=5)
    assert cfg.arch.channels == 10 and cfg.steps == 5 and cfg.arch.widths == FrameAEConfig().widths


def test_chroma_weight_scales_the_colour_error_only():
    class Shift(torch.nn.Module):  # a "codec" whose output is its input plus a fixed error
        def __init__(self, error):
            super().__init__()
            self.error = error

        def encode(self, x):
            return x

        def decode(self, z):
            return z + self.error

    x = torch.rand(2, 3, 8, 8) * 2 - 1
    grey = torch.full((1, 3, 1, 1), 0.1)  # a luma error
    hue = torch.tensor([0.1, -0.1, 0.0]).reshape(1, 3, 1, 1)  # a red-green error
    w = 1.0 + 8.0 * (x - torch.nn.functional.avg_pool2d(x, 9, 1, 4, count_include_pad=False)).abs().sum(1, keepdim=True)
    plain = reconstruction_loss(Shift(hue), x, 0.0, 8.0)
    torch.testing.assert_close(plain, (hue.square() * w).mean())  # RGB MSE
    torch.testing.assert_close(reconstruction_loss(Shift(hue), x, 0.0, 8.0, chroma_weight=4.0), 4 * plain)
    torch.testing.assert_close(reconstruction_loss(Shift(grey), x, 0.0, 8.0, chroma_weight=4.0),
                               reconstruction_loss(Shift(grey), x, 0.0, 8.0))



def test_interpolation_loss_decodes_the_mean_of_the_neighbours_latents():
    """With an identity "codec" the mean of the neighbours' latents is the mean of the
    neighbours: a frame halfway between them costs nothing, the same frame again costs
    what reconstructing it from itself does."""
    class Identity(torch.nn.Module):
        def encode(self, x):
            return x

        def decode(self, z):
            return z

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    assert interpolation_loss(Identity(), a, (a + b) / 2, b, 8.0).item() == 0.0
    shifted = type("Shift", (Identity,), {"decode": lambda self, z: z + 0.1})()
    torch.testing.assert_close(interpolation_loss(shifted, a, a, a, 8.0, chroma_weight=4.0),
                               reconstruction_loss(shifted, a, 0.0, 8.0, chroma_weight=4.0))


def test_triplets_are_frames_g_apart_inside_one_clip():
    per_clip, clips = 7, 5
    index = torch.arange(per_clip * clips, dtype=torch.uint8)  # frame k holds the value k
    frames = index[:, None, None, None].expand(-1, 3, 2, 2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        before, mid, after = (_as_index(t) for t in frame_triplets(frames, per_clip, 16, gen))
        gap = mid - before
        assert torch.equal(after - mid, gap) and gap.unique().numel() == 1 and gap[0] in (1, 2)
        assert torch.equal(before // per_clip, after // per_clip)  # never across two clips


def _as_index(t):
    return ((t[:, 0, 0, 0] + 1.0) * 127.5).round().long()


def test_training_with_the_interpolation_term_lowers_the_loss(tmp_path):
    world = WorldConfig(frames=37, height=32, width=32)
    cfg = CodecTrainConfig(out=str(tmp_path / "c.safetensors"), clips=4, steps=60, batch_size=16,
                           lr=3e-3, warmup_steps=5, heldout_clips=2, arch=SMALL, world=world,
                           interp_weight=1.0)
    r = train_frame_codec(cfg, progress=False)
    assert r["loss_last"] < 0.6 * r["loss_first"]  # reconstruction + interpolation
    with pytest.raises(ConfigError, match="interp_weight >= 0"):
        dataclasses.replace(cfg, interp_weight=-1.0)

@pytest.mark.skipif(shipped_weights() is None, reason="no trained frame codec in this checkout")
def test_shipped_codec_reconstructs_held_out_frames():
    # measured when it was trained: see docs/default-model.md; 30 dB = 8 uint8 levels rms
    codec = FrameCodec()
    assert codec.stride == (1, 16, 16) and codec.latent_channels == 18  # 16 learned + 2 chroma
    frames = render_frames(HELDOUT_SEED_START, 3, WorldConfig())
    assert psnr(codec.net, frames) > 30.0


def test_an_interrupted_codec_run_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch, caplog):
    world = WorldConfig(frames=37, height=32, width=32)
    base = dict(clips=2, steps=6, batch_size=8, lr=3e-3, warmup_steps=2, heldout_clips=1,
                arch=SMALL, world=world, interp_weight=1.0, checkpoint_every=3)
    whole = CodecTrainConfig(out=str(tmp_path / "whole.safetensors"), **base)
    train_frame_codec(whole, progress=False)
    cut = CodecTrainConfig(out=str(tmp_path / "cut.safetensors"), **base)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(codec_training, "save_frame_codec", killed)
        with pytest.raises(KeyboardInterrupt):
            train_frame_codec(cut, progress=False)
    assert resume_path(cut.out).is_file() and not Path(cut.out).exists()
    with pytest.raises(ConfigError, match="other options; rerun with the same options"):
        train_frame_codec(dataclasses.replace(cut, lr=1e-3), progress=False)
    with caplog.at_level("INFO", logger="duet.train.codec"):
        train_frame_codec(cut, progress=False)
    assert "resumes from step 3" in caplog.text  # steps 3-5 only, not a rerun from 0
    assert not resume_path(cut.out).exists()
    a, b = load_file(whole.out), load_file(cut.out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
