"""Log-mel front end and `MelCodec`, a fixed, weight-free stand-in for an audio VAE + vocoder.

`log_mel(wave, spec)` is the reusable front end: the STFT (torch.stft), a Slaney mel
filterbank built here the way librosa builds it by default (`htk=False, norm="slaney"`),
a floor and a log. `MelSpec` holds its settings; the features of Ovi's MMAudio 16 kHz VAE,
for example, are (up to a tiny epsilon inside the magnitude) `MelSpec(n_fft=1024, hop=256,
n_mels=80, fmax=8000, power=1.0, log_base=10, floor=1e-5)` in aligned framing.

`MelCodec` uses one log-mel frame per latent (hop 512 at 16 kHz: 31.25 latents/s, the rate of
Ovi's audio latents), normalised to roughly unit scale, and decodes with a non-negative
inverse of the filterbank followed by Griffin-Lim, at the latent hop or (`synthesis_hop`) a
finer one on magnitudes interpolated between latents (`upsample_frames`). Decoding is
deterministic: the initial phase comes from a fixed seed, and the iteration count is fixed.

Framing ("aligned", the HiFi-GAN/BigVGAN/MMAudio convention): the waveform is reflect-padded
by (n_fft - hop)/2 on both sides and cut into frames without centring, so N = L*hop samples
give exactly L frames and frame l is centred on the middle of its latent's samples,
[l*hop, (l+1)*hop). "center" framing (torch/librosa `center=True`) gives 1 + N//hop frames.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from duet.codecs.base import WeightFree
from duet.errors import ConfigError, InputError

# -- mel scale and filterbank ---------------------------------------------------------------

_F_SP = 200.0 / 3  # Slaney: linear at 66.67 Hz per mel below 1 kHz ...
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # = 15 mels at 1 kHz
_LOGSTEP = math.log(6.4) / 27.0  # ... and logarithmic above: 27 mels per factor 6.4


def hz_to_mel(hz: Tensor) -> Tensor:
    """Slaney's mel scale (Auditory Toolbox; librosa's default, `htk=False`)."""
    hz = torch.as_tensor(hz, dtype=torch.float64)
    log_part = _MIN_LOG_MEL + torch.log(hz.clamp(min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def mel_to_hz(mel: Tensor) -> Tensor:
    """Inverse of `hz_to_mel`."""
    mel = torch.as_tensor(mel, dtype=torch.float64)
    log_part = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (mel.clamp(min=_MIN_LOG_MEL) - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, log_part, mel * _F_SP)


@functools.lru_cache(maxsize=16)
def _filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> Tensor:
    fft_hz = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    lo, hi = hz_to_mel(torch.tensor(fmin)), hz_to_mel(torch.tensor(fmax))
    edges = mel_to_hz(torch.linspace(float(lo), float(hi), n_mels + 2, dtype=torch.float64))
    width = edges.diff()  # [n_mels + 1] Hz between neighbouring band edges
    ramp = edges[:, None] - fft_hz[None, :]  # [n_mels + 2, n_freqs]
    rising = -ramp[:-2] / width[:-1, None]  # 0 at the band's lower edge, 1 at its centre
    falling = ramp[2:] / width[1:, None]  # 1 at the centre, 0 at the upper edge
    weights = torch.minimum(rising, falling).clamp(min=0.0)  # [n_mels, n_freqs] triangles
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]  # Slaney: equal area per band


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> Tensor:
    """`[n_mels, n_fft//2 + 1]` float64 triangular filters on Slaney's mel scale, each scaled
    to unit area in Hz (librosa's `filters.mel` defaults)."""
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0.0 <= fmin < fmax <= sample_rate / 2:
        raise ConfigError(
            f"mel band limits must satisfy 0 <= fmin < fmax <= sample_rate/2 = {sample_rate / 2}, "
            f"got fmin={fmin}, fmax={fmax}")
    if n_mels < 1 or n_fft < 2:
        raise ConfigError(f"need n_mels >= 1 and n_fft >= 2, got n_mels={n_mels}, n_fft={n_fft}")
    return _filterbank(int(sample_rate), int(n_fft), int(n_mels), float(fmin), float(fmax)).clone()


# -- the log-mel front end ------------------------------------------------------------------


@dataclass(frozen=True)
class MelSpec:
    """Settings of a log-mel front end (defaults: `MelCodec`'s)."""

    sample_rate: int = 16000
    n_fft: int = 1024  # also the Hann window length
    hop: int = 512
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None  # None: sample_rate / 2
    power: float = 2.0  # 2: power spectrogram (librosa's default); 1: magnitude (BigVGAN, MMAudio)
    log_base: float = 10.0
    floor: float = 1e-5  # mel values are clamped to this before the log
    framing: Literal["aligned", "center"] = "aligned"  # see the module docstring
    pad_mode: str = "reflect"

    def __post_init__(self) -> None:
        if self.hop < 1 or self.n_fft < self.hop:
            raise ConfigError(f"need 1 <= hop <= n_fft, got hop={self.hop}, n_fft={self.n_fft}")
        if self.framing == "aligned" and (self.n_fft - self.hop) % 2:
            raise ConfigError(
                f"aligned framing pads (n_fft - hop)/2 on each side, so n_fft - hop must be even; "
                f"got n_fft={self.n_fft}, hop={self.hop}")
        if self.framing not in ("aligned", "center"):
            raise ConfigError(f"framing must be 'aligned' or 'center', got {self.framing!r}")
        if self.power <= 0 or self.floor <= 0 or self.log_base <= 1:
            raise ConfigError("need power > 0, floor > 0 and log_base > 1, got "
                              f"{self.power}, {self.floor}, {self.log_base}")
        mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax)  # checks

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def pad(self) -> int:
        """Samples of padding on each side in aligned framing."""
        return (self.n_fft - self.hop) // 2

    def filterbank(self, like: Tensor) -> Tensor:
        fb = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax)
        return fb.to(device=like.device, dtype=like.dtype)

    def window(self, like: Tensor) -> Tensor:
        return torch.hann_window(self.n_fft, periodic=True, device=like.device, dtype=like.dtype)


def _compute_dtype(x: Tensor) -> torch.dtype:
    """torch.stft needs float32 or float64; half-precision inputs are upcast."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def spectrogram(wave: Tensor, spec: MelSpec) -> Tensor:
    """`[B, N]` -> complex STFT `[B, n_freqs, frames]` with `spec`'s framing."""
    if spec.framing == "aligned":
        if wave.shape[-1] <= spec.pad:
            raise InputError(f"audio of {wave.shape[-1]} samples is too short for aligned "
                             f"framing; give at least {spec.hop} samples")
        wave = F.pad(wave[:, None], (spec.pad, spec.pad), mode=spec.pad_mode)[:, 0]
    return torch.stft(wave, spec.n_fft, spec.hop, window=spec.window(wave),
                      center=spec.framing == "center", pad_mode=spec.pad_mode,
                      return_complex=True)


def mel_spectrogram(wave: Tensor, spec: MelSpec = MelSpec()) -> Tensor:
    """`[..., N]` waveform -> `[..., n_mels, frames]` linear mel energies (|STFT|^power)."""
    if not isinstance(wave, Tensor) or not wave.is_floating_point() or wave.ndim < 1:
        raise InputError(f"wave must be a floating-point tensor [..., N], got "
                         f"{getattr(wave, 'dtype', type(wave).__name__)}")
    lead = wave.shape[:-1]
    x = wave.reshape(-1, wave.shape[-1]).to(_compute_dtype(wave))  # [B, N]
    mag = spectrogram(x, spec).abs()  # [B, n_freqs, frames]
    mel = spec.filterbank(mag) @ (mag if spec.power == 1 else mag**spec.power)
    return mel.reshape(*lead, spec.n_mels, mel.shape[-1])


def log_mel(wave: Tensor, spec: MelSpec = MelSpec()) -> Tensor:
    """`[..., N]` waveform -> `[..., n_mels, frames]` log_base(max(mel, floor))."""
    mel = mel_spectrogram(wave, spec)
    return torch.log(mel.clamp(min=spec.floor)) / math.log(spec.log_base)


# -- inversion ------------------------------------------------------------------------------


def mel_to_power(mel: Tensor, spec: MelSpec, iters: int = 100) -> Tensor:
    """`[B, n_mels, L]` linear mel -> `[B, n_freqs, L]` non-negative |STFT|^power.

    There are n_mels equations for n_freqs unknowns, so many spectra fit. Start from the
    minimum-norm least-squares one clamped at 0, then run non-negative least squares by
    multiplicative updates (Lee & Seung 2001), which stay non-negative and bring back the mel
    values the clamp lost (mel residual ~5% -> ~2% on tones). A pure tone's peak still lands
    within about half a band of its frequency: the bands are wider than STFT bins.
    """
    fb = spec.filterbank(mel)  # [n_mels, n_freqs]
    p = (torch.linalg.pinv(fb) @ mel).clamp(min=0.0)  # [B, n_freqs, L]
    covered = fb.sum(0) > 0  # bins outside [fmin, fmax] stay at zero
    p = torch.where(covered[:, None], p + 1e-3 * mel.mean(dim=1, keepdim=True), p)
    target = fb.T @ mel  # [B, n_freqs, L]
    gram = fb.T @ fb  # [n_freqs, n_freqs]
    tiny = torch.finfo(mel.dtype).tiny
    for _ in range(iters):
        p = p * target / (gram @ p + tiny)
        p = p.masked_fill(p < 1e6 * tiny, 0.0)  # no denormals: they are slow on CPUs
    return p


def upsample_frames(magnitude: Tensor, factor: int) -> Tensor:
    """`[B, n_freqs, L]` -> `[B, n_freqs, L*factor]`: magnitudes on a grid `factor` times finer
    in time, for Griffin-Lim at hop/factor. Aligned framing puts frame l at the middle of its
    hop, so fine frame j sits at coarse position (j + 1/2)/factor - 1/2; values between two
    frames are interpolated linearly in log magnitude (a decay stays a straight line in dB, and
    a sound's onset is not smeared into the frame before it more than the hop already does),
    and the first and last half-frame hold their frame's value. Zeros stay zero."""
    if factor == 1:
        return magnitude
    frames = magnitude.shape[-1]
    pos = ((torch.arange(frames * factor, dtype=torch.float64) + 0.5) / factor - 0.5)
    pos = pos.clamp(0, frames - 1).to(magnitude.device)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=frames - 1)
    w = (pos - lo).to(magnitude.dtype)
    eps = 1e-8
    log_mag = torch.log(magnitude + eps)
    return (torch.exp(torch.lerp(log_mag[..., lo], log_mag[..., hi], w)) - eps).clamp(min=0.0)


def overlap_add(frames: Tensor, spec: MelSpec, length: int) -> Tensor:
    """Inverse STFT of `[B, n_freqs, L]` in aligned framing -> `[B, length]` (uncropped
    padded signal of length (L-1)*hop + n_fft). Written here rather than with torch.istft,
    whose window-overlap check rejects uncentred frames: the padded signal's first sample
    gets zero window weight, although it is cropped away afterwards."""
    win = spec.window(frames.real)
    chunks = torch.fft.irfft(frames, n=spec.n_fft, dim=1) * win[:, None]  # [B, n_fft, L]
    size = (1, length)
    y = F.fold(chunks, size, kernel_size=(1, spec.n_fft), stride=(1, spec.hop))[:, 0, 0]
    env = F.fold((win**2)[None, :, None].expand(1, -1, frames.shape[-1]), size,
                 kernel_size=(1, spec.n_fft), stride=(1, spec.hop))[0, 0, 0]
    return y / torch.where(env > 1e-8, env, torch.ones_like(env))


def griffin_lim(magnitude: Tensor, spec: MelSpec, iters: int = 64, momentum: float = 0.99,
                seed: int = 0) -> Tensor:
    """`[B, n_freqs, L]` STFT magnitudes -> `[B, L*hop]` waveform, aligned framing.

    Fast Griffin-Lim (Perraudin, Balazs & Sondergaard 2013): alternate projections between
    signals and the target magnitudes, with momentum. The initial phase is uniform noise
    from a CPU generator seeded with `seed`, so results do not depend on the device.
    """
    b, _, frames = magnitude.shape
    length = (frames - 1) * spec.hop + spec.n_fft  # the padded signal's length
    gen = torch.Generator().manual_seed(seed)
    phase = torch.rand(magnitude.shape[1:], generator=gen, dtype=torch.float64) * (2 * math.pi)
    angles = torch.polar(torch.ones_like(phase), phase).to(magnitude.device, _complex(magnitude))
    angles = angles.expand(b, -1, -1)
    prev = None
    for _ in range(iters):
        y = overlap_add(magnitude * angles, spec, length)
        proj = torch.stft(y, spec.n_fft, spec.hop, window=spec.window(y), center=False,
                          return_complex=True)  # [B, n_freqs, L], the nearest consistent STFT
        step = proj if prev is None else proj + momentum * (proj - prev)
        angles = step / step.abs().clamp(min=1e-12)
        prev = proj
    y = overlap_add(magnitude * angles, spec, length)
    return y[:, spec.pad: spec.pad + frames * spec.hop]


def _complex(x: Tensor) -> torch.dtype:
    return torch.complex128 if x.dtype == torch.float64 else torch.complex64


# -- the codec -------------------------------------------------------------------------------

# Normalisation of log10 power-mel values (MelSpec defaults: 16 kHz, n_fft 1024, Hann window,
# 80 Slaney bands to 8 kHz), measured on test signals (log10 mel, min/mean/max over bands):
#   silence: -5 (the floor); white noise at -40 dBFS RMS: -3.9/-2.7/-1.9; at -20 dBFS:
#   -2.0/-0.7/0.1; pink noise at -20 dBFS: -2.1/-0.95/1.5; full-scale 440 Hz sine: peak band 3.3.
#   latent = (log10(max(mel, 1e-5)) - LOG_MEL_OFFSET) / LOG_MEL_SCALE
# puts silence at -1.2, -40 dBFS noise near -0.3, -20 dBFS noise near +0.5 and the loudest
# band of a full-scale tone at +2.1: roughly unit scale for a mix of silence and sound.
LOG_MEL_OFFSET = -2.0
LOG_MEL_SCALE = 2.5
LOG_MEL_MAX = 5.0  # decode clamps log10 mel here (17 dB above a full-scale tone): stays finite


class MelCodec(WeightFree):
    """Log-mel audio codec: one normalised log-mel frame per latent, Griffin-Lim to decode.

    Griffin-Lim runs at `synthesis_hop` (default: the latent hop, 50 % window overlap). At
    50 % overlap it cannot find a consistent phase for magnitudes that the mel bands have
    smoothed across frequency, and the phase it settles on flutters from frame to frame; each
    flutter is heard, and found by an onset detector, as a new sound. `synthesis_hop=hop // 2`
    (75 % overlap) removes most of them: on 32 held-out world clips the round trip had
    2.5-2.8x the onsets of the original at hop 512 and 1.4x at hop 256. It is not the default
    because the demo model's own clips then read worse on the sync ruler (66 % of thuds within
    two frames against 74 %, the same clips): `docs/default-model.md` § "Audio decoding at
    half the hop".

    Latent channels = `n_mels` (the audio tower's `in_dim`/`out_dim`). Defaults: 16 kHz,
    hop 512 (31.25 latents/s), n_fft 1024 (64 ms Hann window), 80 Slaney mel bands over
    0-8 kHz (the band layout of Ovi's MMAudio front end), power spectrogram, log10 with floor
    1e-5. Band centres are 37 Hz apart below 1 kHz (an STFT bin is 15.6 Hz) and a decoded
    tone's peak lands within about half a band of its true frequency: within one bin below
    1 kHz, ~65 Hz at 4 kHz. With 64 bands a 440 Hz tone comes back at 458 Hz; with 20 bands
    (Ovi's latent width) centres are 140 Hz apart. `offset`/`scale` normalise log10 mel to
    roughly unit scale (see LOG_MEL_OFFSET); they were set for the default settings.
    """

    def __init__(self, sample_rate: int = 16000, hop: int = 512, n_fft: int = 1024,
                 n_mels: int = 80, fmin: float = 0.0, fmax: float | None = None,
                 log_base: float = 10.0, floor: float = 1e-5,
                 offset: float = LOG_MEL_OFFSET, scale: float = LOG_MEL_SCALE,
                 griffin_lim_iters: int = 64, nnls_iters: int = 100, seed: int = 0,
                 synthesis_hop: int | None = None) -> None:
        self.spec = MelSpec(sample_rate=sample_rate, n_fft=n_fft, hop=hop, n_mels=n_mels,
                            fmin=fmin, fmax=fmax, power=2.0, log_base=log_base, floor=floor)
        if scale <= 0 or griffin_lim_iters < 0 or nnls_iters < 0:
            raise ConfigError(f"need scale > 0 and griffin_lim_iters, nnls_iters >= 0, got "
                              f"{scale}, {griffin_lim_iters}, {nnls_iters}")
        synthesis_hop = hop if synthesis_hop is None else synthesis_hop
        if synthesis_hop < 1 or hop % synthesis_hop:
            raise ConfigError(f"synthesis_hop must divide hop={hop}, got {synthesis_hop}; "
                              f"use hop itself for Griffin-Lim at the latent rate")
        self.synthesis = replace(self.spec, hop=synthesis_hop)  # checks the framing's padding
        self.offset, self.scale = float(offset), float(scale)
        self.log_max = LOG_MEL_MAX * math.log(10) / math.log(log_base)
        self.griffin_lim_iters, self.nnls_iters = int(griffin_lim_iters), int(nnls_iters)
        self.seed = int(seed)

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def hop(self) -> int:
        return self.spec.hop

    @property
    def latent_channels(self) -> int:
        return self.spec.n_mels

    @property
    def latent_rate(self) -> float:
        return self.spec.sample_rate / self.spec.hop

    def __repr__(self) -> str:
        return (f"MelCodec({self.spec}, offset={self.offset}, scale={self.scale}, "
                f"synthesis_hop={self.synthesis.hop})")

    def latent_length(self, num_samples: int) -> int:
        """Whole latents in `num_samples` samples; encode exactly `latent_length(n) * hop`."""
        if num_samples < 0:
            raise InputError(f"num_samples must be >= 0, got {num_samples}")
        return num_samples // self.hop

    def encode(self, wave: Tensor) -> Tensor:
        """`[B, N]` in [-1, 1], N = L*hop -> `[B, L, n_mels]` normalised log-mel."""
        if not isinstance(wave, Tensor) or wave.ndim != 2 or not wave.is_floating_point():
            raise InputError(
                f"wave must be a floating-point tensor [B, N], got "
                f"{list(wave.shape) if isinstance(wave, Tensor) else type(wave).__name__}; "
                "add a batch dimension with wave[None] if it is missing")
        n = wave.shape[1]
        if n < self.hop or n % self.hop:
            near = max(1, round(n / self.hop)) * self.hop
            raise InputError(
                f"audio has {n} samples; MelCodec needs a multiple of hop={self.hop}: "
                f"trim or pad to {near} (latent_length(n) * hop = "
                f"{self.latent_length(n) * self.hop} trims)")
        z = (log_mel(wave, self.spec) - self.offset) / self.scale  # [B, n_mels, L]
        return z.transpose(1, 2).to(wave.dtype)  # [B, L, n_mels]

    def decode(self, latents: Tensor) -> Tensor:
        """`[B, L, n_mels]` -> `[B, L*hop]` in [-1, 1] (mel inversion, then Griffin-Lim at the
        synthesis hop)."""
        if (not isinstance(latents, Tensor) or latents.ndim != 3
                or latents.shape[2] != self.latent_channels or latents.shape[1] < 1):
            raise InputError(
                f"latents must be [B, L, {self.latent_channels}] with L >= 1, got "
                f"{list(latents.shape) if isinstance(latents, Tensor) else type(latents)}")
        z = latents.transpose(1, 2).to(_compute_dtype(latents))  # [B, n_mels, L]
        logmel = (z * self.scale + self.offset).clamp(max=self.log_max)
        mel = (torch.pow(self.spec.log_base, logmel) - self.spec.floor).clamp(min=0.0)  # floor: 0
        magnitude = mel_to_power(mel, self.spec, self.nnls_iters) ** (1 / self.spec.power)
        magnitude = upsample_frames(magnitude, self.spec.hop // self.synthesis.hop)
        # Griffin-Lim is least consistent where fewer windows overlap: the clip's first and
        # last window length (the first latent came back ~2 dB quiet). Extending the edge
        # frames by one window each side gives every kept sample the full overlap.
        edge = -(-self.spec.n_fft // self.synthesis.hop)
        magnitude = F.pad(magnitude, (edge, edge), mode="replicate")
        wave = griffin_lim(magnitude, self.synthesis, self.griffin_lim_iters, seed=self.seed)
        start = edge * self.synthesis.hop
        wave = wave[:, start: start + latents.shape[1] * self.spec.hop]
        return wave.clamp(-1.0, 1.0).to(latents.dtype)
