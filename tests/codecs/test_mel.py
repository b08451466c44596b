import math

import numpy as np
import pytest
import torch

from duet.codecs import AudioCodec, MelCodec, MelSpec, get_audio_codec, log_mel, mel_filterbank
from duet.codecs.mel import LOG_MEL_OFFSET, LOG_MEL_SCALE, hz_to_mel, mel_to_hz, upsample_frames
from duet.errors import ConfigError, InputError

SR, HOP = 16000, 512


def tone(freq: float, latents: int, amp: float | torch.Tensor = 0.5) -> torch.Tensor:
    t = torch.arange(latents * HOP, dtype=torch.float64) / SR
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


def frame_db(wave: torch.Tensor) -> torch.Tensor:
    """RMS level of each latent's samples, in dB."""
    return 10 * torch.log10(wave.reshape(-1, HOP).double().pow(2).mean(1) + 1e-12)


def onset(wave: torch.Tensor, below_peak_db: float = 20.0) -> int:
    """First sample where the 1 ms moving-average envelope reaches peak - `below_peak_db`."""
    env = torch.nn.functional.avg_pool1d(wave.abs()[None, None], 17, 1, padding=8)[0, 0]
    return int((env >= env.max() * 10 ** (-below_peak_db / 20)).nonzero()[0])


# -- the front end -------------------------------------------------------------------------


def test_mel_scale_known_values():
    hz = torch.tensor([0.0, 440.0, 1000.0, 4000.0, 8000.0])
    mel = torch.tensor([0.0, 6.6, 15.0, 35.16376031, 45.24564047], dtype=torch.float64)
    torch.testing.assert_close(hz_to_mel(hz), mel)
    torch.testing.assert_close(mel_to_hz(mel), hz.double())


def test_filterbank_known_values():
    """Values of librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80) (librosa 0.11)."""
    fb = mel_filterbank(16000, 1024, 80)
    assert fb.shape == (80, 513) and fb.dtype == torch.float64
    for band, lo, hi, first in [
        (0, 1, 4, [0.011267280375145402, 0.022534560750290804, 0.01990499061911211]),
        (10, 24, 28, [0.0018805702807480323, 0.013147850655893448, 0.024415131031038862]),
        (40, 107, 114, [0.003517074030623338, 0.007159441469199881, 0.010801808907776425]),
        (79, 475, 511, [0.00015543664925796099, 0.0003375961583329307, 0.0005197556674079004]),
    ]:
        nonzero = fb[band].nonzero()[:, 0]
        assert (int(nonzero.min()), int(nonzero.max())) == (lo, hi)
        torch.testing.assert_close(fb[band, lo:lo + 3], torch.tensor(first, dtype=torch.float64))


@pytest.mark.parametrize("sr, n_fft, n_mels, fmin, fmax", [
    (16000, 1024, 80, 0.0, None), (16000, 1024, 20, 0.0, 8000.0), (16000, 512, 64, 50.0, 7000.0),
    (22050, 2048, 128, 30.0, 11025.0), (24000, 1024, 100, 0.0, None),
])
def test_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax):
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                              dtype=np.float64)
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax).numpy()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_log_mel_matches_librosa_melspectrogram():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    t = np.arange(20000) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)  # not hop-aligned

    def ref(y, **kw):
        mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=1024, hop_length=512, n_mels=80,
                                             **kw)
        return np.log10(np.maximum(mel, 1e-5))

    centred = log_mel(torch.tensor(x), MelSpec(framing="center", pad_mode="constant")).numpy()
    np.testing.assert_allclose(centred, ref(x, center=True, pad_mode="constant"), atol=1e-6)
    # aligned framing = librosa on the reflect-padded signal without centring
    aligned = log_mel(torch.tensor(x)[None], MelSpec())[0].numpy()
    padded = np.pad(x, 256, mode="reflect")
    np.testing.assert_allclose(aligned, ref(padded, center=False), atol=1e-6)
    # magnitude spectrogram (power 1), as MMAudio's front end uses, in float32
    spec = MelSpec(hop=256, power=1.0, framing="center", pad_mode="constant")
    ours = log_mel(torch.tensor(x, dtype=torch.float32), spec).numpy()
    mel = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=1024, hop_length=256, n_mels=80,
                                         power=1.0, center=True, pad_mode="constant")
    np.testing.assert_allclose(ours, np.log10(np.maximum(mel, 1e-5)), atol=2e-5)


def test_log_mel_frame_counts_and_batching():
    wave = torch.randn(2, 3, 10 * HOP)
    assert log_mel(wave).shape == (2, 3, 80, 10)  # aligned: one frame per hop
    assert log_mel(wave, MelSpec(framing="center")).shape == (2, 3, 80, 11)
    torch.testing.assert_close(log_mel(wave)[1, 2], log_mel(wave[1, 2]))


# -- the codec -----------------------------------------------------------------------------


def test_is_an_audio_codec_with_the_ovi_latent_rate():
    codec = MelCodec()
    assert isinstance(codec, AudioCodec)
    assert codec.to("cpu", torch.float32) is codec
    assert (codec.sample_rate, codec.hop, codec.latent_channels) == (16000, 512, 80)
    assert codec.latent_rate == 31.25
    assert codec.latent_length(80000) == 156 and codec.latent_length(157 * 512) == 157
    z = codec.encode(torch.zeros(3, 20 * HOP))
    assert z.shape == (3, 20, 80)
    assert codec.decode(z).shape == (3, 20 * HOP)


def test_normalisation_constants():
    codec = MelCodec()
    silence = codec.encode(torch.zeros(1, 8 * HOP))
    floor = (-5 - LOG_MEL_OFFSET) / LOG_MEL_SCALE  # log10(1e-5) = -5
    torch.testing.assert_close(silence, torch.full_like(silence, floor))
    assert torch.count_nonzero(codec.decode(silence)) == 0  # silence decodes to silence
    gen = torch.Generator().manual_seed(0)
    noise = codec.encode(0.1 * torch.randn(1, 64 * HOP, generator=gen))  # -20 dBFS white noise
    assert 0.3 < noise.mean() < 0.7 and noise.std() < 0.3  # measured 0.53 +- 0.10
    loud = codec.encode(tone(440, 16, amp=1.0)[None])
    assert 1.5 < loud.max() < 2.5  # full-scale tone's loudest band: ~+2.1


@pytest.mark.parametrize("synthesis_hop", [HOP, HOP // 2])
def test_tone_roundtrip_keeps_pitch_and_loudness_envelope(synthesis_hop):
    codec = MelCodec(synthesis_hop=synthesis_hop)
    latents = 64  # 2.05 s
    t = torch.arange(latents * HOP, dtype=torch.float64) / SR
    amp = 0.05 + 0.45 * (0.5 - 0.5 * torch.cos(2 * math.pi * 1.5 * t))  # 1.5 Hz swell, 20 dB deep
    x = tone(440, latents, amp)[None]
    y = codec.decode(codec.encode(x))[0]
    spectrum = torch.fft.rfft(y.double() * torch.hann_window(y.numel(), dtype=torch.float64)).abs()
    peak_hz = float(spectrum.argmax()) * SR / y.numel()
    assert abs(peak_hz - 440) <= SR / 1024, peak_hz  # within one STFT bin (15.6 Hz)
    level_err = frame_db(y) - frame_db(x[0])
    assert level_err.abs().max() < 1.5, level_err  # measured max 0.50 / 0.53 dB
    assert torch.corrcoef(torch.stack([frame_db(y), frame_db(x[0])]))[0, 1] > 0.99


def test_onsets_survive_within_one_hop():
    codec = MelCodec()
    n = 40 * HOP
    starts = [5000, 8123, 10001, 12345]
    x = torch.zeros(len(starts) + 1, n)
    gen = torch.Generator().manual_seed(0)
    for i, s in enumerate(starts):  # 100 ms noise bursts after silence, not hop-aligned
        x[i, s:s + 1600] = 0.5 * torch.randn(1600, generator=gen)
    x[-1, 9000], x[-1, 9001] = 0.9, -0.9  # a click
    y = codec.decode(codec.encode(x))
    shifts = [onset(y[i]) - onset(x[i]) for i in range(len(x))]
    assert all(abs(s) <= HOP for s in shifts), shifts  # measured -150 .. -300 samples (pre-echo)


def test_decode_is_deterministic_and_bounded():
    codec = MelCodec(griffin_lim_iters=8)
    z = torch.randn(2, 12, 80, generator=torch.Generator().manual_seed(0))
    a, b = codec.decode(z), codec.decode(z)
    assert torch.equal(a, b)
    assert a.abs().max() <= 1
    # batch items are independent: equal up to the FFT's batched rounding, which 8
    # Griffin-Lim iterations amplify to ~1e-5 of a full-scale sample
    torch.testing.assert_close(codec.decode(z[:1]), a[:1], rtol=0, atol=1e-4)
    assert torch.isfinite(codec.decode(z * 100)).all()  # wild latents stay finite


def test_half_precision_inputs():
    codec = MelCodec(griffin_lim_iters=4)
    z = codec.encode(tone(440, 8)[None].bfloat16())
    assert z.dtype == torch.bfloat16
    assert codec.decode(z).dtype == torch.bfloat16


@pytest.mark.parametrize("make, hint", [
    (lambda: torch.zeros(1, 1000), "trim or pad to 1024"),
    (lambda: torch.zeros(1, 100), "trim or pad to 512"),
    (lambda: torch.zeros(1024), r"\[B, N\]"),
    (lambda: torch.zeros(1, 1024, dtype=torch.int16), "floating-point"),
])
def test_bad_waveforms_raise(make, hint):
    with pytest.raises(InputError, match=hint):
        MelCodec().encode(make())


def test_bad_latents_and_options_raise():
    with pytest.raises(InputError, match=r"\[B, L, 80\]"):
        MelCodec().decode(torch.zeros(1, 10, 20))
    with pytest.raises(InputError, match="too short"):
        log_mel(torch.zeros(100))
    with pytest.raises(ConfigError, match="fmax"):
        MelCodec(fmax=9000.0)
    with pytest.raises(ConfigError, match="even"):
        MelSpec(n_fft=1024, hop=511)


def test_registry():
    codec = get_audio_codec("mel", n_mels=40)
    assert isinstance(codec, MelCodec) and codec.latent_channels == 40
    with pytest.raises(ConfigError, match=r"choose one of \['mel'"):
        get_audio_codec("bigvgan")
    with pytest.raises(ConfigError, match="n_mel"):
        get_audio_codec("mel", n_mel=40)


def test_upsample_frames_interpolates_log_magnitude_between_frame_centres():
    mag = torch.tensor([[[1.0, 100.0, 100.0], [0.0, 0.0, 0.0]]], dtype=torch.float64)
    up = upsample_frames(mag, 2)  # fine frames at coarse positions -0.25, 0.25, 0.75, ...
    assert up.shape == (1, 2, 6)
    torch.testing.assert_close(up[0, 0], torch.tensor(
        [1.0, 10**0.5, 10**1.5, 100.0, 100.0, 100.0], dtype=torch.float64), rtol=1e-6, atol=0)
    assert torch.count_nonzero(up[0, 1]) == 0  # silent bins stay silent
    assert upsample_frames(mag, 1) is mag


def test_synthesis_at_half_the_hop_adds_fewer_onsets_than_the_original_has():
    # Griffin-Lim at the latents' 50 % overlap (the default) lets the phase flutter, and every
    # flutter is an onset; at 75 % a world clip's round trip stays near its own onsets
    from duet.data.world import HELDOUT_SEED_START, make_clip
    from duet.media.onsets import audio_onsets

    fine, coarse = MelCodec(synthesis_hop=HOP // 2), MelCodec()
    assert (fine.synthesis.hop, coarse.synthesis.hop) == (HOP // 2, HOP)
    counts = np.zeros(3, int)  # original, fine, coarse
    for kind in ("talk", "bounce"):
        for i in range(4):
            wave = torch.as_tensor(make_clip(HELDOUT_SEED_START + 100 + i, kind=kind).audio)
            wave = wave[None, : fine.latent_length(len(wave)) * HOP].float()
            z = fine.encode(wave)
            for j, w in enumerate((wave, fine.decode(z), coarse.decode(z))):
                counts[j] += len(audio_onsets(w[0].numpy(), SR))
    original, at_fine, at_coarse = counts
    assert at_fine <= 1.7 * original, counts  # measured 71 against 48
    assert at_coarse >= 2 * original and at_coarse >= 1.4 * at_fine, counts  # measured 117


def test_synthesis_hop_must_divide_the_hop():
    with pytest.raises(ConfigError, match="synthesis_hop must divide"):
        MelCodec(synthesis_hop=300)
