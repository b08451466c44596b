"""SyncNet (Chung & Zisserman, "Out of time", ACCV 2016 workshops) for lip-sync offsets.

The network is the one the official `syncnet_v2.model` checkpoint was trained as: an audio
stream over 13 MFCCs x 20 steps (0.2 s) and a lip stream over 5 frames of a 224x224 face
crop (BGR, 0..255, 25 fps), each ending in a 1024-d embedding. Layer names and shapes
follow the checkpoint's state dict (``netcnnaud.*``, ``netfcaud.*``, ``netcnnlip.*``,
``netfclip.*``), so the official file loads as it is; `SyncNetConfig` only narrows the
channel widths (read back from the file), which is how the tests build small weights in
the same format.

The offset search matches the reference evaluation: embeddings for every 5-frame window,
distances to the audio embeddings within +-15 frames, the mean distance per lag; the lag
of the minimum is the offset and (median - minimum) the confidence. Without a face
detector the crop is the centre square of the frame, so talking-head footage should be
cropped to the face beforehand for the confidence to mean what it means in the paper.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from duet.errors import CheckpointError

FPS = 25.0  # the rate SyncNet was trained at: 4 MFCC steps (10 ms) per frame
SAMPLE_RATE = 16000
CROP = 224
_VSHIFT = 15  # lags searched, frames each way


@dataclass(frozen=True)
class SyncNetConfig:
    """Channel widths; the defaults are the official model's."""

    audio_channels: tuple[int, ...] = (64, 192, 384, 256, 256, 512)
    lip_channels: tuple[int, ...] = (96, 256, 256, 256, 256, 512)
    hidden: int = 512
    embed: int = 1024


def _bn_relu(layer: nn.Module, channels: int, dims: int) -> list[nn.Module]:
    norm = nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm3d(channels)
    return [layer, norm, nn.ReLU(inplace=True)]


class SyncNet(nn.Module):
    """The two-stream network; `forward_audio` [B, 1, 13, 20] and `forward_lip`
    [B, 3, 5, 224, 224] each give [B, embed]."""

    def __init__(self, config: SyncNetConfig = SyncNetConfig()) -> None:
        super().__init__()
        a, v = config.audio_channels, config.lip_channels
        self.netcnnaud = nn.Sequential(  # the module indices match the checkpoint's keys
            *_bn_relu(nn.Conv2d(1, a[0], 3, padding=1), a[0], 2),
            nn.MaxPool2d(1, 1),
            *_bn_relu(nn.Conv2d(a[0], a[1], 3, padding=1), a[1], 2),
            nn.MaxPool2d(3, (1, 2)),
            *_bn_relu(nn.Conv2d(a[1], a[2], 3, padding=1), a[2], 2),
            *_bn_relu(nn.Conv2d(a[2], a[3], 3, padding=1), a[3], 2),
            *_bn_relu(nn.Conv2d(a[3], a[4], 3, padding=1), a[4], 2),
            nn.MaxPool2d(3, 2),
            *_bn_relu(nn.Conv2d(a[4], a[5], (5, 4)), a[5], 2),  # (13, 20) -> (1, 1)
        )
        self.netcnnlip = nn.Sequential(
            *_bn_relu(nn.Conv3d(3, v[0], (5, 7, 7), (1, 2, 2)), v[0], 3),  # 5 frames -> 1
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_bn_relu(nn.Conv3d(v[0], v[1], (1, 5, 5), (1, 2, 2), (0, 1, 1)), v[1], 3),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            *_bn_relu(nn.Conv3d(v[1], v[2], (1, 3, 3), padding=(0, 1, 1)), v[2], 3),
            *_bn_relu(nn.Conv3d(v[2], v[3], (1, 3, 3), padding=(0, 1, 1)), v[3], 3),
            *_bn_relu(nn.Conv3d(v[3], v[4], (1, 3, 3), padding=(0, 1, 1)), v[4], 3),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_bn_relu(nn.Conv3d(v[4], v[5], (1, 6, 6)), v[5], 3),  # 224 px -> 1
        )
        self.netfcaud = self._head(a[-1], config)
        self.netfclip = self._head(v[-1], config)

    @staticmethod
    def _head(width: int, config: SyncNetConfig) -> nn.Sequential:
        return nn.Sequential(nn.Linear(width, config.hidden), nn.BatchNorm1d(config.hidden),
                             nn.ReLU(), nn.Linear(config.hidden, config.embed))

    def forward_audio(self, mfcc: Tensor) -> Tensor:
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))  # [B, C, 1, 1] -> [B, embed]

    def forward_lip(self, frames: Tensor) -> Tensor:
        return self.netfclip(self.netcnnlip(frames).flatten(1))  # [B, C, 1, 1, 1] -> [B, embed]


_CONVS = (0, 4, 8, 11, 14, 18)  # Sequential indices of the six convolutions in each stream


def config_of(state: dict[str, Tensor]) -> SyncNetConfig:
    """The widths a state dict was trained with, read from its weight shapes."""
    try:
        return SyncNetConfig(
            audio_channels=tuple(int(state[f"netcnnaud.{i}.weight"].shape[0]) for i in _CONVS),
            lip_channels=tuple(int(state[f"netcnnlip.{i}.weight"].shape[0]) for i in _CONVS),
            hidden=int(state["netfcaud.0.weight"].shape[0]),
            embed=int(state["netfcaud.3.weight"].shape[0]))
    except (KeyError, IndexError, AttributeError) as e:
        raise CheckpointError(f"not a SyncNet state dict: no {e}") from None


def _read_state(path: Path) -> dict[str, Tensor]:
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError,
            SafetensorError) as e:
        raise CheckpointError(f"cannot read SyncNet weights {path}: {e}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a SyncNet state dict")
    return state


def load_syncnet(path: str | Path) -> SyncNet:
    """SyncNet with the weights of `path`: the official ``syncnet_v2.model`` (a pickled
    state dict, read with ``weights_only``) or a safetensors file with the same keys. The
    widths come from the file, so a narrower model in the same format loads the same way."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"SyncNet weights not found: {path}")
    state = _read_state(path)
    try:
        model = SyncNet(config_of(state))
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    own = model.state_dict()
    # Checkpoints from before PyTorch 0.4 have no BatchNorm step counters; they are unused.
    wanted = {k for k in own if not k.endswith("num_batches_tracked")}
    missing, extra = sorted(wanted - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        raise CheckpointError(f"{path} is not a SyncNet state dict: missing {missing[:3]}, "
                              f"unexpected {extra[:3]}")
    for key in sorted(wanted):
        if tuple(state[key].shape) != tuple(own[key].shape):
            raise CheckpointError(f"{path}: {key} has shape {tuple(state[key].shape)}, the "
                                  f"SyncNet architecture expects {tuple(own[key].shape)}")
    model.load_state_dict({k: state[k] for k in wanted}, strict=False)
    return model.eval()


def _mel_filters(n_filters: int, n_fft: int, sample_rate: int) -> np.ndarray:
    """Triangular filters [n_filters, n_fft // 2 + 1] on the HTK mel scale, edges snapped
    to FFT bins (the MFCC front end SyncNet was trained with)."""
    mel = lambda hz: 2595 * np.log10(1 + hz / 700)
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)
    points = hz(np.linspace(0, mel(sample_rate / 2), n_filters + 2))
    bins = np.floor((n_fft + 1) * points / sample_rate).astype(int)
    fb = np.zeros((n_filters, n_fft // 2 + 1))
    for j in range(n_filters):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        fb[j, lo:mid] = (np.arange(lo, mid) - lo) / max(mid - lo, 1)
        fb[j, mid:hi] = (hi - np.arange(mid, hi)) / max(hi - mid, 1)
    return fb


def mfcc(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """13 MFCCs per 10 ms step [steps, 13]: 25 ms rectangular frames, pre-emphasis 0.97,
    26 mel filters, 512-point FFT, lifter 22, c0 replaced by the log frame energy."""
    x = np.asarray(audio, np.float64)
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    win, hop, n_fft = round(0.025 * sample_rate), round(0.01 * sample_rate), 512
    steps = 1 + max(0, math.ceil((len(x) - win) / hop))
    x = np.pad(x, (0, (steps - 1) * hop + win - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop][:steps]  # [steps, win]
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2 / n_fft
    eps = np.finfo(np.float64).eps
    energy = np.maximum(power.sum(axis=1), eps)
    feats = np.log(np.maximum(power @ _mel_filters(26, n_fft, sample_rate).T, eps))
    n = np.arange(26)
    dct = np.cos(np.pi / 26 * (n[None, :] + 0.5) * np.arange(13)[:, None]) * np.sqrt(2 / 26)
    dct[0] /= np.sqrt(2)  # orthonormal DCT-II
    cep = feats @ dct.T * (1 + 11 * np.sin(np.pi * np.arange(13) / 22))
    cep[:, 0] = np.log(energy)
    return cep.astype(np.float32)


def lip_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB [T, H, W, 3] -> float32 BGR centre crops [3, T, 224, 224] (0..255)."""
    _, h, w, _ = frames.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crops = [cv2.resize(f[top:top + s, left:left + s, ::-1], (CROP, CROP)) for f in frames]
    return np.stack(crops).transpose(3, 0, 1, 2).astype(np.float32)


@torch.no_grad()
def offset_confidence(model: SyncNet, frames: np.ndarray, audio: np.ndarray,
                      batch: int = 20) -> tuple[float, float]:
    """(offset in ms, positive = sound late; confidence) of 25 fps frames and 16 kHz audio."""
    lips = torch.from_numpy(lip_frames(frames))[None]  # [1, 3, T, 224, 224]
    cc = torch.from_numpy(mfcc(audio).T.copy())[None, None]  # [1, 1, 13, steps]
    n = min(lips.shape[2], cc.shape[3] // 4) - 5  # windows with both 5 frames and 20 steps
    if n < 1:
        return 0.0, 0.0
    lip = torch.cat([model.forward_lip(torch.cat([lips[:, :, i:i + 5]
                                                  for i in range(j, min(n, j + batch))]))
                     for j in range(0, n, batch)])
    aud = torch.cat([model.forward_audio(torch.cat([cc[..., 4 * i:4 * i + 20]
                                                    for i in range(j, min(n, j + batch))]))
                     for j in range(0, n, batch)])
    padded = F.pad(aud, (0, 0, _VSHIFT, _VSHIFT))
    lags = 2 * _VSHIFT + 1
    dists = torch.stack([F.pairwise_distance(lip[i:i + 1].expand(lags, -1), padded[i:i + lags])
                         for i in range(n)])  # [n, lags]
    mean = dists.mean(0)
    best = int(mean.argmin())
    confidence = float(mean.median() - mean[best])
    return 1000.0 * (best - _VSHIFT) / FPS, confidence
