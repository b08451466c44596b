"""`duet.codecs.mmaudio` (Ovi's audio codec) on tiny checkpoints in the official file formats.

The networks are tiny (VAE base width 8, vocoder width 64) but have the official layout, so
the loading code is the one real checkpoints go through; the real sizes are checked on the
meta device.
"""

import copy
import math

import librosa
import numpy as np
import pytest
import torch
from tiny_mmaudio import (
    vae_shapes,
    vae_state,
    vocoder_shapes,
    vocoder_state,
    write_ext_weights,
    write_vae,
    write_vocoder,
)

from duet.codecs import AudioCodec, get_audio_codec, mel_filterbank
from duet.codecs.mmaudio import (
    MMAudioCodec,
    build_vae,
    build_vocoder,
    load_vae,
    load_vocoder,
    mmaudio_log_mel,
    vocoder_state_from_official,
)
from duet.errors import CheckpointError, ConfigError, InputError

SR = 16000
CLIP = 80640  # 5.04 s: Ovi's 121 video frames at 24 fps


def noise_and_tone(n: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / SR
    wave = 0.05 * torch.randn(n, generator=g, dtype=torch.float64) + 0.5 * torch.sin(
        2 * math.pi * 440 * t)
    return wave.to(dtype)


def librosa_log_mel(wave: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """MMAudio's features from librosa: reflect-pad (n_fft - hop)/2, uncentred STFT,
    magnitude sqrt(|X|^2 + eps), Slaney mel filters (librosa's default, what MMAudio calls),
    log10 of max(mel, 1e-5)."""
    padded = np.pad(wave, 384, mode="reflect")
    mel_args = {"sr": SR, "n_fft": 1024, "n_mels": 80, "fmin": 0.0, "fmax": 8000.0,
                "htk": False, "norm": "slaney", "power": 1.0}
    if eps:
        stft = librosa.stft(padded, n_fft=1024, hop_length=256, win_length=1024, window="hann",
                            center=False)
        mel = librosa.feature.melspectrogram(S=np.sqrt(np.abs(stft) ** 2 + eps), **mel_args)
    else:
        mel = librosa.feature.melspectrogram(y=padded, hop_length=256, win_length=1024,
                                             window="hann", center=False, **mel_args)
    return np.log10(np.maximum(mel, 1e-5))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_ext_weights(tmp_path_factory.mktemp("mmaudio"))


@pytest.fixture(scope="module")
def codec(weights):
    return MMAudioCodec(*weights)


# -- front end -------------------------------------------------------------------------------


def test_filterbank_is_librosas_slaney_default():
    ours = mel_filterbank(SR, 1024, 80, 0.0, 8000.0).numpy()
    slaney = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=80, fmin=0, fmax=8000,
                                 dtype=np.float64)
    htk = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=80, fmin=0, fmax=8000, htk=True,
                              dtype=np.float64)
    np.testing.assert_allclose(ours, slaney, rtol=0, atol=1e-12)
    assert np.abs(htk - slaney).max() > 1e-2  # the choice matters: htk is another front end


def test_log_mel_matches_librosa():
    wave = noise_and_tone(SR)
    ours = mmaudio_log_mel(wave[None])[0].numpy()  # [80, 62]
    assert ours.shape == (80, SR // 256)
    np.testing.assert_allclose(ours, librosa_log_mel(wave.numpy()), rtol=0, atol=1e-6)
    # quiet audio shows MMAudio's 1e-9 under the square root; with it the match is exact
    quiet = 1e-4 * noise_and_tone(SR, seed=1)
    ours = mmaudio_log_mel(quiet[None])[0].numpy()
    assert np.abs(ours - librosa_log_mel(quiet.numpy())).max() > 1e-3
    np.testing.assert_allclose(ours, librosa_log_mel(quiet.numpy(), eps=1e-9), rtol=0, atol=1e-6)
    # float32 in, float32 out, to float32 accuracy
    ours32 = mmaudio_log_mel(wave[None].float())
    assert ours32.dtype == torch.float32
    np.testing.assert_allclose(ours32[0].numpy(), librosa_log_mel(wave.numpy()), atol=1e-4)


def test_log_mel_frames_floor_and_clamp():
    silence = mmaudio_log_mel(torch.zeros(1, CLIP))
    assert silence.shape == (1, 80, 315)  # N // 256 frames
    assert torch.all(silence == -5.0)  # log10 of the 1e-5 floor
    loud = noise_and_tone(SR)[None]
    torch.testing.assert_close(mmaudio_log_mel(4 * loud), mmaudio_log_mel((4 * loud).clamp(-1, 1)))


# -- loading ---------------------------------------------------------------------------------


def test_tiny_checkpoints_load_strictly(weights, codec):
    vae_path, vocoder_path = weights
    official = torch.load(vae_path, weights_only=True)
    vae = codec.vae  # load_vae(vae_path), by the fixture
    assert set(vae.state_dict()) == set(official)  # the same names: no key map for the VAE
    for key, w in vae.state_dict().items():
        if key.endswith(".weight"):  # MMAudio's remove_weight_norm: unit-norm output filters
            torch.testing.assert_close(w.flatten(1).norm(dim=1), torch.ones(w.shape[0]),
                                       atol=1e-3, rtol=0)
    torch.testing.assert_close(vae.data_std, official["data_std"])
    assert not any(t.is_meta for t in [*vae.parameters(), *vae.buffers()])

    generator = torch.load(vocoder_path, weights_only=True)["generator"]
    vocoder = codec.vocoder  # load_vocoder(vocoder_path), by the fixture
    fused = {k.removesuffix("_g") for k in generator if k.endswith(".weight_g")}
    rest = {k for k in generator if not k.endswith((".weight_g", ".weight_v"))}
    assert set(vocoder.state_dict()) == fused | rest
    g, v = generator["conv_pre.weight_g"], generator["conv_pre.weight_v"]
    torch.testing.assert_close(vocoder.conv_pre.weight, g * v / v.norm(dim=(1, 2), keepdim=True))
    g, v = generator["ups.0.0.weight_g"], generator["ups.0.0.weight_v"]  # [in, out, k]
    torch.testing.assert_close(vocoder.ups[0][0].weight, g * v / v.norm(dim=(1, 2), keepdim=True))
    torch.testing.assert_close(vocoder.conv_post.bias, generator["conv_post.bias"])
    assert not any(t.is_meta for t in [*vocoder.parameters(), *vocoder.buffers()])


def test_real_sizes_match_the_official_layout():
    with torch.device("meta"):
        vae, vocoder = build_vae(), build_vocoder()
    assert {k: tuple(v.shape) for k, v in vae.state_dict().items()} == vae_shapes()
    official = {k: torch.empty(s, device="meta") for k, s in vocoder_shapes().items()}
    fused = {k: tuple(v.shape) for k, v in vocoder_state_from_official(official).items()}
    assert {k: tuple(v.shape) for k, v in vocoder.state_dict().items()} == fused
    assert round(sum(p.numel() for p in vae.decoder.parameters()) / 1e6, 1) == 99.1
    assert round(sum(p.numel() for p in vocoder.parameters()) / 1e6, 1) == 112.2


def test_both_weight_norm_namings_fuse_alike():
    old = vocoder_state(channels=64)
    new = {k.replace(".weight_g", ".parametrizations.weight.original0")
           .replace(".weight_v", ".parametrizations.weight.original1"): v for k, v in old.items()}
    a, b = vocoder_state_from_official(old), vocoder_state_from_official(new)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    lone = {"conv_pre.weight_g": old["conv_pre.weight_g"]}
    assert vocoder_state_from_official(lone).keys() == lone.keys()  # left for the strict check


# -- the codec -------------------------------------------------------------------------------


def test_protocol_and_rates(codec):
    assert isinstance(codec, AudioCodec)
    assert (codec.latent_channels, codec.sample_rate, codec.hop) == (20, 16000, 512)
    assert codec.latent_rate == 31.25
    assert codec.latent_length(CLIP) == 157 and codec.latent_length(80384) == 157


def test_shapes_of_a_5_04_s_clip(codec):
    wave = noise_and_tone(CLIP, dtype=torch.float32)[None]
    z = codec.encode(wave)
    assert z.shape == (1, 157, 20) and z.dtype == torch.float32 and torch.isfinite(z).all()
    # the posterior mean: the first 20 of the encoder's 40 output channels, channel-last
    mel = mmaudio_log_mel(wave)  # [1, 80, 315]
    moments = codec.vae.encoder((mel - codec.vae.data_mean) / codec.vae.data_std)
    torch.testing.assert_close(z, moments[:, :20].transpose(1, 2))
    assert codec.encode(wave[:, : 157 * 512]).shape == (1, 157, 20)
    mel_out = codec.decode_mel(z)
    assert mel_out.shape == (1, 80, 314)
    audio = codec.decode(z)
    assert audio.shape == (1, 80384) and audio.dtype == torch.float32
    assert torch.isfinite(audio).all() and audio.abs().max() < 1


def test_batch_is_independent(codec):
    waves = torch.stack([noise_and_tone(4096, seed=s, dtype=torch.float32) for s in (1, 2)])
    z = codec.encode(waves)
    assert z.shape == (2, 8, 20)
    torch.testing.assert_close(z[1:], codec.encode(waves[1:]))


def test_vocoder_alone(codec):
    g = torch.Generator().manual_seed(0)
    mel = -3.0 + 0.5 * torch.randn(1, 80, 314, generator=g)
    audio = codec.vocode(mel)
    assert audio.shape == (1, 80384) and torch.isfinite(audio).all()


def test_vocoder_ends_in_a_biased_tanh(codec):
    """BigVGAN-v1's last layer (v2, as diffusers ships it, has no bias and clamps)."""
    vocoder = copy.deepcopy(codec.vocoder)
    with torch.no_grad():
        vocoder.conv_post.weight.zero_()
        vocoder.conv_post.bias.fill_(1.5)
    out = vocoder(torch.zeros(1, 80, 3), return_dict=False)[0]
    torch.testing.assert_close(out, torch.full((1, 1, 768), math.tanh(1.5)))


def test_bfloat16(codec):
    low = copy.deepcopy(codec).to(dtype=torch.bfloat16)
    assert low.vae.decoder.conv_in.weight.dtype == torch.bfloat16
    wave = noise_and_tone(2048, dtype=torch.float32)[None]
    z = low.encode(wave)
    assert z.shape == (1, 4, 20) and z.dtype == torch.float32  # the input's dtype
    torch.testing.assert_close(z, codec.encode(wave), atol=0.1, rtol=0.1)
    audio = low.decode(z)
    assert audio.shape == (1, 2048) and torch.isfinite(audio).all()


def test_bad_inputs_raise(codec):
    wave = torch.zeros(1, 2048)
    for bad in ((wave * 32767).short(), wave[0], wave[:, :500], wave.numpy()):
        with pytest.raises(InputError):
            codec.encode(bad)
    with pytest.raises(InputError, match=r"\[B, L, 20\]"):
        codec.decode(torch.zeros(1, 157, 16))
    with pytest.raises(InputError, match="channel-last"):
        codec.decode(torch.zeros(1, 20, 157))
    with pytest.raises(InputError):
        codec.decode(torch.zeros(1, 0, 20))
    with pytest.raises(InputError):
        codec.vocode(torch.zeros(1, 64, 10))
    with pytest.raises(InputError):
        codec.latent_length(-1)
    with pytest.raises(ConfigError):
        codec.to(dtype=torch.int32)


# -- bad checkpoints -------------------------------------------------------------------------


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth"):
        load_vae(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="v1-16.pth"):
        get_audio_codec("mmaudio-16k", vae_path=tmp_path / "v1-16.pth",
                        vocoder_path=tmp_path / "best_netG.pt")
    path = write_vae(tmp_path / "v1-16.pth")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="v1-16.pth.*truncated"):
        load_vae(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="v1-16.pth"):
        load_vae(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="state dict of tensors"):
        load_vae(path)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("decoder.up.1.upsample.conv.weight"),
     r"missing \(1\): decoder\.up\.1\.upsample\.conv\.weight"),
    (lambda s: s.update({"encoder.down.0.attn.0.qkv.weight": torch.zeros(24, 8, 1)}),
     r"unexpected \(1\): encoder\.down\.0\.attn\.0\.qkv\.weight"),
    (lambda s: s.update({"data_mean": torch.zeros(80)}),
     r"wrong shape \(1\): data_mean \(80,\) \(expected \(1, 80, 1\)\)"),
    (lambda s: s.pop("encoder.conv_in.weight"), "no usable 'encoder.conv_in.weight'"),
])
def test_vae_layout_errors_name_file_and_keys(tmp_path, edit, message):
    state = vae_state(hidden=8)
    edit(state)
    path = write_vae(tmp_path / "v1-16.pth", state)
    with pytest.raises(CheckpointError, match=message) as info:
        load_vae(path)
    assert str(path) in str(info.value) and "v1-16.pth" in str(info.value)


def test_other_mmaudio_files_are_refused(tmp_path):
    vae44 = write_vae(tmp_path / "v1-44.pth", vae_state(hidden=8, mel_bins=128, latent=40))
    with pytest.raises(CheckpointError, match="128 mel bins and 40 latent channels"):
        load_vae(vae44)
    flat = tmp_path / "generator.pt"
    torch.save(vocoder_state(channels=64), flat)
    with pytest.raises(CheckpointError, match="no 'generator' entry"):
        load_vocoder(flat)
    wide = write_vocoder(tmp_path / "best_netG.pt", vocoder_state(channels=64, mel_bins=128))
    with pytest.raises(CheckpointError, match="128 mel bands"):
        load_vocoder(wide)
