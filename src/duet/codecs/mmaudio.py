"""`MMAudioCodec`: Ovi's audio codec, MMAudio's 16 kHz mel VAE + its 16 kHz BigVGAN vocoder.

Why this codec: Ovi's audio tower denoises in this VAE's latent space (Ovi loads MMAudio's
"16k" mode), so real Ovi weights only make sense with exactly these two networks.

The chain (5.04 s = 80,640 samples as the example):

    wave [B, N] at 16 kHz, in [-1, 1]
      -> log10 mel [B, 80, N // 256]          MMAudio's 16k front end (`mmaudio_log_mel`)
      -> VAE encoder (2x down in time)        posterior mean [B, 20, N // 512]
      -> channel-last latents [B, L, 20]      L = N // 512: 157 latents, 31.25 per second
    latents [B, L, 20]
      -> VAE decoder (2x up in time)          log10 mel [B, 80, 2L]   (314 frames)
      -> BigVGAN (256 samples per frame)      wave [B, 512 L] in (-1, 1)   (80,384 samples)

Lengths: one latent is two mel frames of 256 samples, so `hop` is 512 and L latents decode to
exactly L * 512 samples. `encode` takes any N >= 512 and returns N // 512 latents, as MMAudio
does: 80,640 samples make 315 mel frames, and the encoder's stride-2 pooling drops the odd
last frame, giving 157 latents that decode to 80,384 samples (the last 16 ms are not
represented). Trimming the input to `latent_length(N) * 512` samples first gives the same
count; only the last frame or two differ, because their windows then see reflected padding
instead of the trailing samples.

Latents are the posterior mean, unscaled: Ovi's `wrapped_encode` returns `dist.mean`, and its
engine passes the audio tower's output straight to `wrapped_decode`. The VAE standardises
each mel bin internally with fixed statistics (`data_mean`/`data_std`, stored in the file).

Where the code comes from: the VAE is diffusers' `MMAudioAutoencoder`, which holds the same
layers under the same names as the official `mmaudio/ext/autoencoder/vae.py`. The vocoder is
diffusers' `MMAudioVocoder` (written for MMAudio's 44.1 kHz BigVGAN-v2) configured as the 16 kHz
generator of `mmaudio/ext/bigvgan/` (a BigVGAN-v1 network from Make-An-Audio 2), with its one
difference replaced: v1's last convolution has a bias and is followed by tanh, where v2 has no
bias and clamps (`TanhConv1d`). The front end is Duet's `MelSpec`, not diffusers': MMAudio's
16k features use log10 and an 8 kHz band edge, diffusers' the natural log and sample_rate / 2.

The files are read as released (Ovi's `MMAudio/ext_weights/`): `v1-16.pth` is the VAE's state
dict with its training-time convolution weights, which MMAudio normalises once after loading
(`remove_weight_norm`; done here by `vae_state_from_official`); `best_netG.pt` is a training
checkpoint whose "generator" entry holds weight-normalised convolutions (`weight_g`,
`weight_v`), fused here into plain weights (`vocoder_state_from_official`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from duet.codecs.mel import MelSpec, spectrogram
from duet.errors import CheckpointError, ConfigError, InputError
from duet.weights import key_problems, read_torch_file, tensor_dict

if TYPE_CHECKING:  # diffusers takes seconds to import: only a codec that is built pays for it
    from diffusers.models.autoencoders.autoencoder_mmaudio import MMAudioAutoencoder
    from diffusers.models.autoencoders.mmaudio_vocoder import MMAudioVocoder

SAMPLE_RATE = 16_000
MEL_BINS = 80
LATENT_CHANNELS = 20
MEL_HOP = 256  # waveform samples per mel frame = the vocoder's total upsampling
HOP = 2 * MEL_HOP  # waveform samples per latent: the VAE halves the mel frame rate

# MMAudio's `get_mel_converter("16k")`: 1024-point STFT with a periodic Hann window, hop 256,
# reflect padding of (n_fft - hop) / 2 on both sides and no centring (Duet's "aligned"
# framing), magnitude (power 1), 80 Slaney mel bands (librosa's default filters) over 0-8 kHz,
# log10 of max(mel, 1e-5).
MMAUDIO_MEL = MelSpec(sample_rate=SAMPLE_RATE, n_fft=1024, hop=MEL_HOP, n_mels=MEL_BINS,
                      fmin=0.0, fmax=8000.0, power=1.0, log_base=10.0, floor=1e-5)
MAGNITUDE_EPS = 1e-9  # MMAudio takes sqrt(re^2 + im^2 + 1e-9) as the STFT magnitude

# Sizes of the released networks (`VAE_16k` and `bigvgan_vocoder.yml`). The base widths are
# read from the checkpoints, so a tiny file in the same layout loads with the same code.
VAE_HIDDEN = 384
VAE_MULTIPLIERS = (1, 2, 4)  # one 2x time downsample after the first level
VAE_LAYERS = 2  # residual blocks per encoder level; the decoder has one more
VOCODER_CHANNELS = 1536  # halved by each upsampling stage: 24 channels at the end
VOCODER_RATES = (4, 4, 2, 2, 2, 2)  # product 256 = MEL_HOP
VOCODER_KERNELS = (8, 8, 4, 4, 4, 4)
RESBLOCK_KERNELS = (3, 7, 11)
RESBLOCK_DILATIONS = ((1, 3, 5), (1, 3, 5), (1, 3, 5))

_VAE_HINT = "use MMAudio's 16 kHz VAE, ext_weights/v1-16.pth (v1-44.pth is the 44.1 kHz one)"
_VOCODER_HINT = ("use MMAudio's 16 kHz BigVGAN generator, ext_weights/best_netG.pt (a training "
                 "checkpoint whose 'generator' entry is the state dict)")


# -- front end ------------------------------------------------------------------------------


def mmaudio_log_mel(wave: Tensor) -> Tensor:
    """`[B, N]` -> `[B, 80, N // 256]` log10 mel, MMAudio's 16 kHz features.

    `MMAUDIO_MEL` with two details of MMAudio's `MelConverter`: the waveform is clamped to
    [-1, 1] first, and 1e-9 is added under the magnitude's square root (it lifts silent bins
    by 3e-5, which moves quiet bands measurably). Computed in float32 (float64 for float64
    input), whatever the network's dtype.
    """
    x = wave.double() if wave.dtype == torch.float64 else wave.float()
    stft = spectrogram(x.clamp(-1.0, 1.0), MMAUDIO_MEL)  # [B, 513, N // 256] complex
    magnitude = torch.sqrt(stft.real**2 + stft.imag**2 + MAGNITUDE_EPS)
    mel = MMAUDIO_MEL.filterbank(magnitude) @ magnitude  # [B, 80, frames]
    return torch.log10(mel.clamp(min=MMAUDIO_MEL.floor))


# -- networks -------------------------------------------------------------------------------


class TanhConv1d(nn.Conv1d):
    """BigVGAN-v1's output layer: a biased convolution followed by tanh.

    It stands in for diffusers' bias-free `conv_post` of BigVGAN-v2, under the same name, so
    the official `conv_post.{weight,bias}` load as they are; the clamp to [-1, 1] that
    diffusers applies afterwards leaves tanh's output unchanged.
    """

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(super().forward(x))


def build_vae(hidden: int = VAE_HIDDEN) -> MMAudioAutoencoder:
    """MMAudio's 16 kHz VAE (80 mel bins, 20 latent channels) with base width `hidden`, on
    the current default device (build under `torch.device("meta")` to allocate nothing)."""
    from diffusers.models.autoencoders.autoencoder_mmaudio import MMAudioAutoencoder

    return MMAudioAutoencoder(mel_bins=MEL_BINS, latent_channels=LATENT_CHANNELS,
                              hidden_channels=hidden, channel_multipliers=VAE_MULTIPLIERS,
                              layers_per_block=VAE_LAYERS)


def build_vocoder(channels: int = VOCODER_CHANNELS) -> MMAudioVocoder:
    """MMAudio's 16 kHz BigVGAN (80 mels in, 256 samples per frame out) with `channels` after
    the input convolution; `vocoder(mel, return_dict=False)[0]` is `[B, 1, 256 T]`."""
    from diffusers.models.autoencoders.mmaudio_vocoder import MMAudioVocoder

    net = MMAudioVocoder(num_mels=MEL_BINS, upsample_initial_channel=channels,
                         upsample_rates=VOCODER_RATES, upsample_kernel_sizes=VOCODER_KERNELS,
                         resblock_kernel_sizes=RESBLOCK_KERNELS,
                         resblock_dilation_sizes=RESBLOCK_DILATIONS)
    net.conv_post = TanhConv1d(net.conv_post.in_channels, 1, 7, padding=3)
    return net


# -- official checkpoints -> module state dicts ---------------------------------------------


def _unit_filters(w: Tensor) -> Tensor:
    """MMAudio's `MPConv1D.remove_weight_norm` for one `[out, in, k]` weight: EDM2's forced
    weight normalisation (each output filter to unit RMS, with eps 1e-4 on the norm), then the
    1/sqrt(fan_in) of a magnitude-preserving convolution, all in float32."""
    w32 = w.float()
    fan_in = w32[0].numel()
    norm = torch.linalg.vector_norm(w32, dim=(1, 2), keepdim=True)  # [out, 1, 1]
    w32 = w32 / (1e-4 + norm / math.sqrt(fan_in))
    return (w32 / math.sqrt(fan_in)).to(w.dtype)


def vae_state_from_official(official: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """`v1-16.pth` -> `MMAudioAutoencoder` state dict. The names are the same; every
    convolution weight (all `*.weight` keys are MPConv1D) is normalised as MMAudio does
    right after loading. Other shapes are left for the strict check to report."""
    return {k: _unit_filters(v) if k.endswith(".weight") and v.ndim == 3 else v
            for k, v in official.items()}


# torch's weight norm stores `weight` as a magnitude g and a direction v. Old-style modules
# (torch.nn.utils.weight_norm, which BigVGAN was trained with) name them weight_g/weight_v;
# parametrised ones (what MMAudio's copy declares) name them original0/original1.
_WEIGHT_NORM_SUFFIXES = ((".weight_g", ".weight_v"),
                         (".parametrizations.weight.original0",
                          ".parametrizations.weight.original1"))


def vocoder_state_from_official(official: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """`best_netG.pt["generator"]` -> state dict of `build_vocoder()`.

    Each (g, v) pair becomes `weight = g * v / |v|`, the norm taken over all dimensions but
    the first (torch's default dim=0; for a transposed convolution that is the input
    channel), in float32 like MMAudio's `remove_weight_norm`. Other names carry over. A g
    without its v stays under its own name, so the strict check reports it.
    """
    state = dict(official)
    for g_suffix, v_suffix in _WEIGHT_NORM_SUFFIXES:
        for g_key in [k for k in state if k.endswith(g_suffix)]:
            prefix = g_key[: -len(g_suffix)]
            v_key = prefix + v_suffix
            if v_key not in state or state[g_key].ndim != state[v_key].ndim:
                continue
            g, v = state.pop(g_key), state.pop(v_key)
            dims = tuple(range(1, v.ndim))
            w = g.float() * v.float() / torch.linalg.vector_norm(v.float(), dim=dims, keepdim=True)
            state[prefix + ".weight"] = w.to(v.dtype)
    return state


def _dim(state: Mapping[str, Tensor], key: str, axis: int, path: Path, hint: str) -> int:
    """One size of one tensor, read to size the network before the strict check."""
    if key not in state or state[key].ndim <= axis:
        raise CheckpointError(f"{path} has no usable {key!r}, so it is not in the expected "
                              f"layout; {hint}")
    return int(state[key].shape[axis])


def _load_strict(net: nn.Module, state: dict[str, Tensor], path: Path, hint: str) -> None:
    """Strict both ways, with shapes, before anything is assigned; lists a few offending keys
    (in the module's names, which are the official ones apart from fused weight norms)."""
    problems = key_problems(net.state_dict(), state)
    if problems:
        raise CheckpointError(f"{path} does not match the network its shapes imply: "
                              f"{problems}. {hint}")
    net.load_state_dict(state, strict=True, assign=True)


def load_vae(path: str | os.PathLike) -> MMAudioAutoencoder:
    """The official `v1-16.pth` as a diffusers `MMAudioAutoencoder` (CPU, float as stored,
    eval mode, no gradients). The base width is read from the file; the rest is `VAE_16k`."""
    path = Path(path)
    state = tensor_dict(read_torch_file(path, "the MMAudio VAE", _VAE_HINT), path, _VAE_HINT)
    hidden = _dim(state, "encoder.conv_in.weight", 0, path, _VAE_HINT)
    bins = _dim(state, "encoder.conv_in.weight", 1, path, _VAE_HINT)
    latent = _dim(state, "decoder.conv_in.weight", 1, path, _VAE_HINT)
    if (bins, latent) != (MEL_BINS, LATENT_CHANNELS):
        raise CheckpointError(f"{path} is a VAE for {bins} mel bins and {latent} latent "
                              f"channels; mmaudio-16k needs {MEL_BINS} and {LATENT_CHANNELS}: "
                              f"{_VAE_HINT}")
    with torch.device("meta"):
        vae = build_vae(hidden)
    _load_strict(vae, vae_state_from_official(state), path, _VAE_HINT)
    return vae.eval().requires_grad_(False)


def load_vocoder(path: str | os.PathLike) -> MMAudioVocoder:
    """The official `best_netG.pt` as the 16 kHz BigVGAN (CPU, float as stored, eval mode,
    no gradients). The width is read from the file; the rest is `bigvgan_vocoder.yml`."""
    path = Path(path)
    ckpt = read_torch_file(path, "the BigVGAN vocoder", _VOCODER_HINT)
    if not isinstance(ckpt, Mapping) or "generator" not in ckpt:
        found = sorted(map(str, ckpt))[:6] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CheckpointError(f"{path} has no 'generator' entry (found {found}); "
                              f"{_VOCODER_HINT}")
    state = vocoder_state_from_official(tensor_dict(ckpt["generator"], path, _VOCODER_HINT))
    channels = _dim(state, "conv_pre.weight", 0, path, _VOCODER_HINT)
    mels = _dim(state, "conv_pre.weight", 1, path, _VOCODER_HINT)
    if mels != MEL_BINS:
        raise CheckpointError(f"{path} is a vocoder for {mels} mel bands; mmaudio-16k needs "
                              f"{MEL_BINS}: {_VOCODER_HINT}")
    with torch.device("meta"):
        vocoder = build_vocoder(channels)
    _load_strict(vocoder, state, path, _VOCODER_HINT)
    return vocoder.eval().requires_grad_(False)


# -- the codec ------------------------------------------------------------------------------


def _check_tensor(x: Any, name: str, shape: str, ndim: int, fix: str = "") -> None:
    """A floating-point tensor with `ndim` dimensions; `shape` spells them out in messages."""
    if not isinstance(x, Tensor):
        raise InputError(f"{name} must be a torch.Tensor of shape {shape}, got "
                         f"{type(x).__name__}")
    if x.ndim != ndim:
        raise InputError(f"{name} must have shape {shape}, got {list(x.shape)}; add a batch "
                         f"dimension with {name}[None] if it is missing")
    if not x.is_floating_point():
        raise InputError(f"{name} must be floating point, got {x.dtype}{fix}")


class MMAudioCodec:
    """AudioCodec over MMAudio's 16 kHz VAE and BigVGAN vocoder; see the module docstring.

    `vae_path`: `ext_weights/v1-16.pth`; `vocoder_path`: `ext_weights/best_netG.pt` (Ovi keeps
    both under `MMAudio/ext_weights/`). The networks run on `device` in `dtype` (float32 on
    CPU; bfloat16 is fine on GPU, as Ovi runs them under bf16 autocast); the mel front end
    always computes in float32. Results come back on the input's device, in its dtype.
    """

    latent_channels: int = LATENT_CHANNELS
    sample_rate: int = SAMPLE_RATE
    hop: int = HOP
    latent_rate: float = SAMPLE_RATE / HOP  # 31.25

    def __init__(self, vae_path: str | os.PathLike, vocoder_path: str | os.PathLike, *,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.vae_path, self.vocoder_path = Path(vae_path), Path(vocoder_path)
        self.vae = load_vae(self.vae_path)
        self.vocoder = load_vocoder(self.vocoder_path)
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.to(device, dtype)

    def __repr__(self) -> str:
        return (f"MMAudioCodec(vae_path={str(self.vae_path)!r}, "
                f"vocoder_path={str(self.vocoder_path)!r}, device={self.device}, "
                f"dtype={self.dtype})")

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> MMAudioCodec:
        """Move both networks; `dtype` is what they compute in."""
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ConfigError(f"the MMAudio codec computes in a floating-point dtype, got "
                              f"{dtype!r}; use torch.float32 or torch.bfloat16")
        try:
            target = self.device if device is None else torch.device(device)
            for net in (self.vae, self.vocoder):
                # nn.Module.to, not diffusers' ModelMixin.to: that one warns about float32
                # modules on every dtype cast, although these networks declare none
                nn.Module.to(net, device=target, dtype=dtype)
        except (RuntimeError, AssertionError) as e:  # torch asserts when CUDA is not built in
            raise ConfigError(f"cannot move the MMAudio codec to {device!r}: {e}") from None
        self.device, self.dtype = target, dtype or self.dtype
        return self

    def latent_length(self, num_samples: int) -> int:
        """Latents for `num_samples` samples: N // 512 (`encode` drops the remainder)."""
        if num_samples < 0:
            raise InputError(f"num_samples must be >= 0, got {num_samples}")
        return num_samples // self.hop

    @torch.no_grad()
    def encode(self, wave: Tensor) -> Tensor:
        """`[B, N]` at 16 kHz, N >= 512 -> `[B, N // 512, 20]`, the posterior mean. Samples
        are clamped to [-1, 1] (as MMAudio does); those past the last whole latent only reach
        the last mel window."""
        _check_tensor(wave, "wave", "[B, N]", 2,
                      fix="; convert 16-bit PCM with wave.float() / 32768")
        if wave.shape[1] < self.hop:
            raise InputError(f"audio has {wave.shape[1]} samples; the MMAudio codec needs at "
                             f"least {self.hop} (one latent, 32 ms at 16 kHz): pad it")
        mel = mmaudio_log_mel(wave.to(self.device))  # [B, 80, N // 256]
        moments = self.vae.encode(mel.to(self.dtype))  # [B, 40, N // 512]: mean, then log-var
        mean = moments[:, : self.latent_channels]
        return mean.transpose(1, 2).to(wave.device, wave.dtype)  # [B, L, 20]

    @torch.no_grad()
    def decode_mel(self, latents: Tensor) -> Tensor:
        """`[B, L, 20]` -> `[B, 80, 2L]` log10 mel (the VAE decoder alone)."""
        return self._decode_mel(latents).to(latents.device, latents.dtype)

    @torch.no_grad()
    def vocode(self, mel: Tensor) -> Tensor:
        """`[B, 80, T]` log10 mel -> `[B, 256 T]` waveform in (-1, 1) (BigVGAN alone)."""
        _check_tensor(mel, "mel", f"[B, {MEL_BINS}, T]", 3)
        if mel.shape[1] != MEL_BINS or mel.shape[2] < 1:
            raise InputError(f"mel must have shape [B, {MEL_BINS}, T] with T >= 1, got "
                             f"{list(mel.shape)}: MMAudio's 16 kHz vocoder takes {MEL_BINS} "
                             "log10 mel bands")
        return self._vocode(mel.to(self.device, self.dtype)).to(mel.device, mel.dtype)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """`[B, L, 20]` -> `[B, 512 L]` waveform in (-1, 1): VAE decoder, then BigVGAN."""
        return self._vocode(self._decode_mel(latents)).to(latents.device, latents.dtype)

    def _decode_mel(self, latents: Tensor) -> Tensor:
        """Checked latents -> mel on the codec's device, in its dtype."""
        c = self.latent_channels
        _check_tensor(latents, "latents", f"[B, L, {c}]", 3)
        if latents.shape[2] != c or latents.shape[1] < 1:
            fix = (" (Duet's audio latents are channel-last: use latents.transpose(1, 2))"
                   if latents.shape[1] == c else "")
            raise InputError(f"latents must have shape [B, L, {c}] with L >= 1, got "
                             f"{list(latents.shape)}{fix}")
        z = latents.transpose(1, 2).to(self.device, self.dtype)  # [B, 20, L]
        return self.vae.decode(z)  # [B, 80, 2L]

    def _vocode(self, mel: Tensor) -> Tensor:
        return self.vocoder(mel, return_dict=False)[0][:, 0]  # [B, 1, 256 T] -> [B, 256 T]
