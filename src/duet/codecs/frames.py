"""`FrameCodec`: a small learned per-frame autoencoder, the demo model's video VAE.

Why learned rather than fixed: a diffusion model never produces latents exactly on the data
manifold. Through a fixed codec (`PixelCodec`) every leftover error is painted straight onto
the screen as speckle; a trained decoder maps nearby latents to plausible frames, as Wan's
VAE does for Ovi. It also compresses: 16x16 pixels -> one 16-channel latent (48x fewer
numbers than RGB), so the video tower takes 2x2 patches of 64 numbers instead of 192-number
pixel patches it could not denoise (docs/default-model.md).

Time is not compressed (stride 1): each latent frame is one picture frame, encoded on its
own, so an impact stays on the frame where it happens (a temporal stride smears it over the
stride; benchmarks/codec_roundtrip.py). This trivially meets the causal contract of
`duet.codecs.base` (T frames <-> T latent frames).

Latents are standardised per channel with statistics measured on training frames (stored
with the weights, like Wan's `latents_mean/std`), so the flow-matching noise has the scale
of the data. The file is one safetensors: the module's weights, `latent_mean`,
`latent_std`, and the architecture as JSON in the metadata; `duet.train.codec` writes it.

Chroma channels (`FrameAEConfig.chroma_channels=2`): the learned encoder then sees only the
luma plane, and the latent gets two more channels that are not learned: the frame's two
opponent-colour planes averaged over each stride x stride cell (JPEG's chroma subsampling,
16x). Why: in a latent learned from RGB, a ball's colour is entangled with where it sits in
its cell (colour means 0.3-1.5 apart against a within-colour spread of 3.6), so a video
tower learns the caption's colour word only after thousands of steps. A cell-averaged
chroma plane names the colour by its direction whatever the position, and the luma-only
encoder cannot hide colour elsewhere, so the decoder must take the hue from those two
channels: a tower that gets them right draws the right colour (docs/default-model.md).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from torch import Tensor

from duet.codecs.base import check_frame_size, check_video_tensor
from duet.errors import ConfigError, InputError

# the default model's codec, which its bundle carries (duet/assets/demo): trained by recipes/demo.sh
SHIPPED = ("demo", "video_codec", "frames.safetensors")


@dataclass(frozen=True)
class FrameAEConfig:
    """Architecture: `len(widths) - 1` stride-2 stages, so the spatial stride is
    2 ** (len(widths) - 1); `widths[0]` is the full-resolution width."""

    latent_channels: int = 16  # learned channels
    widths: tuple[int, ...] = (16, 32, 64, 96, 128)
    chroma_channels: int = 0  # 0, or 2: cell-averaged opponent colour, luma-only encoder

    def __post_init__(self) -> None:
        if self.latent_channels < 1 or len(self.widths) < 2 or min(self.widths) < 1:
            raise ConfigError(f"frame autoencoder needs latent_channels >= 1 and >= 2 positive "
                              f"widths, got {self.latent_channels}, {self.widths}")
        if self.chroma_channels not in (0, 2):
            raise ConfigError(f"chroma_channels must be 0 (colour learned from RGB) or 2 (cell-"
                              f"averaged opponent colour), got {self.chroma_channels}")

    @property
    def spatial_stride(self) -> int:
        return 2 ** (len(self.widths) - 1)

    @property
    def channels(self) -> int:
        """Channels of the latent the codec hands the video tower: learned + chroma."""
        return self.latent_channels + self.chroma_channels


#: RGB -> (luma, red-green, yellow-blue): an orthonormal basis, so the three planes carry
#: the frame's energy unchanged.
_OPPONENT = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 0.0], [1.0, 1.0, -2.0]])
_OPPONENT = _OPPONENT / _OPPONENT.norm(dim=1, keepdim=True)


def opponent(x: Tensor) -> Tensor:
    """`[N, 3, H, W]` RGB -> `[N, 3, H, W]` (luma, red-green, yellow-blue)."""
    return torch.einsum("oc,nchw->nohw", _OPPONENT.to(x), x)


def upsample_nearest2x(x: Tensor) -> Tensor:
    """Nearest-neighbour 2x upsampling of `[N, C, H, W]` as a broadcast view and one copy:
    the same values as `F.interpolate(x, scale_factor=2, mode="nearest")`, about 4x faster
    on a CPU, where that kernel dominated decoding (and the RL rewards, which decode every
    rollout)."""
    n, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


class _Res(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class FrameAutoencoder(nn.Module):
    """Frames `[N, 3, H, W]` <-> latents `[N, C, H/s, W/s]`: strided convolutions down,
    nearest-neighbour upsampling + convolutions back up, a residual block per scale below
    full resolution. No normalisation layers, so a frame's latent never depends on the
    other frames in the batch."""

    def __init__(self, config: FrameAEConfig = FrameAEConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.enc_in = nn.Conv2d(1 if config.chroma_channels else 3, w[0], 3, padding=1)
        self.down = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(w, w[1:]))
        self.enc_res = nn.ModuleList(_Res(b) for b in w[1:])
        self.enc_out = nn.Conv2d(w[-1], config.latent_channels, 1)
        self.dec_in = nn.Conv2d(config.channels, w[-1], 3, padding=1)
        self.dec_res = nn.ModuleList(_Res(b) for b in reversed(w[1:]))
        self.up = nn.ModuleList(nn.Conv2d(b, a, 3, padding=1) for a, b in reversed(list(zip(w, w[1:]))))
        self.dec_out = nn.Conv2d(w[0], 3, 3, padding=1)

    def encode(self, x: Tensor) -> Tensor:
        if self.config.chroma_channels:
            planes = opponent(x)
            x, chroma = planes[:, :1], F.avg_pool2d(planes[:, 1:], self.config.spatial_stride)
        h = self.enc_in(x)
        for down, res in zip(self.down, self.enc_res):
            h = res(down(F.silu(h)))
        z = self.enc_out(F.silu(h))
        return torch.cat([z, chroma], dim=1) if self.config.chroma_channels else z

    def decode(self, z: Tensor) -> Tensor:
        h = self.dec_in(z)
        for res, up in zip(self.dec_res, self.up):
            h = up(upsample_nearest2x(F.silu(res(h))))
        return self.dec_out(F.silu(h))


def save_frame_codec(model: FrameAutoencoder, mean: Tensor, std: Tensor, path: str | Path) -> None:
    """Write weights + latent statistics + architecture to one safetensors file, atomically."""
    from duet.weights import save_weights

    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    tensors["latent_mean"] = mean.detach().float().reshape(-1).contiguous()
    tensors["latent_std"] = std.detach().float().reshape(-1).contiguous()
    save_weights(tensors, path, metadata={"duet_frame_codec": json.dumps(dataclasses.asdict(model.config))})


def shipped_weights() -> Path | None:
    """The frame codec inside the package, or None in a checkout where it is not trained yet."""
    path = Path(str(resources.files("duet").joinpath("assets", *SHIPPED)))
    return path if path.is_file() else None


class FrameCodec:
    """VideoCodec over a trained `FrameAutoencoder`; see the module docstring.

    `weights`: a file written by `save_frame_codec` (`duet codec train`); None = the codec
    shipped in the package."""

    def __init__(self, weights: str | None = None) -> None:
        path = Path(weights) if weights is not None else shipped_weights()
        if path is None:
            raise ConfigError(
                "the frame codec has no shipped weights in this installation; train one with "
                "`duet codec train -o frames.safetensors` and pass codecs.video.weights")
        self.weights = str(path)
        config, tensors = _read(path)
        self.mean = tensors.pop("latent_mean")
        self.std = tensors.pop("latent_std")
        self.net = FrameAutoencoder(config).eval().requires_grad_(False)
        try:
            self.net.load_state_dict(tensors)
        except RuntimeError as e:
            raise ConfigError(f"frame codec weights {path} do not match their own architecture "
                              f"{config}: {str(e).splitlines()[0]}") from None
        s = config.spatial_stride
        self.latent_channels: int = config.channels
        self.stride: tuple[int, int, int] = (1, s, s)

    def __repr__(self) -> str:
        return f"FrameCodec(weights={self.weights!r}, stride={self.stride})"

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        s = self.stride[1]
        if frames < 1:
            raise InputError(f"video has {frames} frames; it needs at least 1")
        check_frame_size(height, width, s, s)
        return (self.latent_channels, frames, height // s, width // s)

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> FrameCodec:
        """Moves the network to `device`; it always computes in float32 (a few MFLOP per
        frame), so `dtype` only sets what `encode` returns."""
        self.net.to(device=device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    @torch.no_grad()
    def encode(self, video: Tensor, batch_frames: int = 256) -> Tensor:
        """`[B, 3, T, H, W]` in [-1, 1] -> standardised `[B, C, T, H/s, W/s]`."""
        check_video_tensor(video, "video", 3)
        b, _, t, h, w = video.shape
        self.latent_shape(t, h, w)
        frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, 3, h, w)
        z = torch.cat([self.net.encode(f.float()) for f in frames.split(batch_frames)])
        z = (z - self.mean[:, None, None]) / self.std[:, None, None]
        return z.reshape(b, t, *z.shape[1:]).permute(0, 2, 1, 3, 4).to(video.dtype)

    @torch.no_grad()
    def decode(self, latents: Tensor, batch_frames: int = 256) -> Tensor:
        """Standardised `[B, C, F, h, w]` -> `[B, 3, F, h*s, w*s]` in [-1, 1]."""
        check_video_tensor(latents, "latents", self.latent_channels)
        b, c, t, h, w = latents.shape
        z = latents.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w).float()
        z = z * self.std[:, None, None] + self.mean[:, None, None]
        x = torch.cat([self.net.decode(part) for part in z.split(batch_frames)])
        x = x.clamp(-1.0, 1.0)
        return x.reshape(b, t, *x.shape[1:]).permute(0, 2, 1, 3, 4).to(latents.dtype)


def _read(path: Path) -> tuple[FrameAEConfig, dict[str, Tensor]]:
    if not path.is_file():
        raise ConfigError(f"frame codec weights {path} do not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ConfigError(f"frame codec weights {path} are not a readable safetensors file "
                          f"({e}); re-train or re-copy it") from None
    if "duet_frame_codec" not in meta or "latent_std" not in tensors:
        raise ConfigError(f"{path} is not a Duet frame codec (no duet_frame_codec metadata or "
                          "latent statistics); write one with `duet codec train`")
    cfg = json.loads(meta["duet_frame_codec"])
    return FrameAEConfig(latent_channels=int(cfg["latent_channels"]),
                         widths=tuple(int(w) for w in cfg["widths"]),
                         chroma_channels=int(cfg.get("chroma_channels", 0))), tensors
