"""Train the demo model's video codec (`duet.codecs.frames`) on synthetic-world frames.

Objective: reconstruction MSE with extra weight on detail (|x - blur(x)|: ball edges, eyes,
mouths; a small ball is ~1 % of the frame and plain MSE would let it fade), decoded from
latents perturbed by Gaussian noise of `latent_noise` times each channel's batch std.
The noise is scale-free (the encoder cannot outgrow it) and trains the decoder to turn
slightly-off latents, which is what a diffusion sampler delivers, into clean frames.
With `interp_weight` > 0, the average of the latents of frames i - g and i + g (g = 1 or 2)
must also decode to frame i: a tower unsure where a moving ball is predicts something
between the latents of its likely places, and this makes that decode as a ball in between
instead of two faint ones (`benchmarks/codec_interpolation.py` measures it).

Held-out frames (world seeds >= HELDOUT_SEED_START) give the PSNR printed at the end.

A run writes its state (weights, AdamW, schedule, both random generators) to OUT.resume.pt
every `checkpoint_every` steps, atomically; started again with the same options it goes on
from there and ends with the weights an uninterrupted run writes. The file is removed once
the codec is saved.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from duet.atomic import atomic_write
from duet.codecs.frames import FrameAEConfig, FrameAutoencoder, opponent, save_frame_codec
from duet.data.world import HELDOUT_SEED_START, WorldConfig, iter_clips
from duet.errors import ConfigError

log = logging.getLogger("duet.train.codec")


@dataclass(frozen=True)
class CodecTrainConfig:
    out: str
    clips: int = 384  # world clips whose frames are the training set (all 97 frames each)
    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 50
    latent_noise: float = 0.1
    detail_weight: float = 8.0
    chroma_weight: float = 1.0  # weight of the colour planes' error against luma's (opponent space)
    interp_weight: float = 0.0  # weight of the latent-interpolation term (0: off)
    heldout_clips: int = 16
    seed: int = 0
    checkpoint_every: int = 100  # steps between resume states (OUT.resume.pt)
    arch: FrameAEConfig = field(default_factory=FrameAEConfig)
    world: WorldConfig = field(default_factory=WorldConfig)

    def __post_init__(self) -> None:
        for name in ("clips", "steps", "batch_size", "heldout_clips", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"codec training {name} must be >= 1, got {getattr(self, name)}")
        if (not self.lr > 0 or self.latent_noise < 0 or self.detail_weight < 0
                or self.chroma_weight < 0 or self.interp_weight < 0):
            raise ConfigError("codec training needs lr > 0, latent_noise >= 0, detail_weight >= 0, "
                              "chroma_weight >= 0, interp_weight >= 0")
        if self.interp_weight and self.world.frames < 5:
            raise ConfigError(f"interp_weight needs clips of >= 5 frames, got {self.world.frames}")
        s = self.arch.spatial_stride
        if self.world.height % s or self.world.width % s:
            raise ConfigError(f"world frames {self.world.height}x{self.world.width} are not a "
                              f"multiple of the codec's spatial stride {s}")


def render_frames(start_seed: int, clips: int, world: WorldConfig) -> Tensor:
    """uint8 `[clips * frames, 3, H, W]` from world clips start_seed ... (both kinds)."""
    return torch.from_numpy(np.concatenate(
        [c.video for c in iter_clips(start_seed, clips, config=world)])).permute(0, 3, 1, 2)


def _to_float(x: Tensor) -> Tensor:
    return x.float() / 127.5 - 1.0


def _detail(x: Tensor) -> Tensor:
    return (x - F.avg_pool2d(x, 9, stride=1, padding=4, count_include_pad=False)).abs().sum(1, keepdim=True)


def reconstruction_loss(net: FrameAutoencoder, x: Tensor, latent_noise: float,
                        detail_weight: float, chroma_weight: float = 1.0) -> Tensor:
    """Squared error in opponent colour space (the same as RGB's at chroma_weight 1, the
    basis being orthonormal), weighted toward detail; chroma_weight > 1 makes a wrong hue
    on a small ball cost what its few pixels would not."""
    z = net.encode(x)
    if latent_noise:
        z = z + latent_noise * z.detach().std(dim=(0, 2, 3), keepdim=True) * torch.randn_like(z)
    return _weighted_error(net.decode(z), x, detail_weight, chroma_weight)


def interpolation_loss(net: FrameAutoencoder, before: Tensor, x: Tensor, after: Tensor,
                       detail_weight: float, chroma_weight: float = 1.0) -> Tensor:
    """The reconstruction error of frame `x` decoded from the mean of the latents of the
    frames `before` and `after` it (weighted as `reconstruction_loss`)."""
    z = 0.5 * (net.encode(before) + net.encode(after))
    return _weighted_error(net.decode(z), x, detail_weight, chroma_weight)


def _weighted_error(pred: Tensor, x: Tensor, detail_weight: float, chroma_weight: float) -> Tensor:
    w = 1.0 + detail_weight * _detail(x)
    planes = torch.tensor([1.0, chroma_weight, chroma_weight], device=x.device)[:, None, None]
    return (opponent(pred - x).square() * planes * w).mean()


def frame_triplets(frames: Tensor, per_clip: int, batch: int, gen: torch.Generator) -> tuple[Tensor, ...]:
    """Frames i - g, i and i + g of random clips (g = 1 or 2 for the whole batch), as floats."""
    gap = int(torch.randint(1, 3, (1,), generator=gen))
    clip = torch.randint(len(frames) // per_clip, (batch,), generator=gen)
    mid = clip * per_clip + torch.randint(gap, per_clip - gap, (batch,), generator=gen)
    return tuple(_to_float(frames[i]) for i in (mid - gap, mid, mid + gap))


@torch.no_grad()
def psnr(net: FrameAutoencoder, frames: Tensor, batch: int = 256) -> float:
    """PSNR (dB, peak-to-peak 2) of encode -> decode on uint8 frames."""
    err = torch.cat([(net.decode(net.encode(_to_float(f))).clamp(-1, 1) - _to_float(f)).square()
                     .flatten(1).mean(1) for f in frames.split(batch)])
    return float(10 * math.log10(4.0 / err.mean().item()))


@torch.no_grad()
def latent_stats(net: FrameAutoencoder, frames: Tensor, batch: int = 256) -> tuple[Tensor, Tensor]:
    z = torch.cat([net.encode(_to_float(f)) for f in frames.split(batch)])
    return z.mean(dim=(0, 2, 3)), z.std(dim=(0, 2, 3)).clamp_min(1e-6)


def train_frame_codec(cfg: CodecTrainConfig, progress: bool = True) -> dict[str, float]:
    """Train, standardise and save the codec to `cfg.out`; returns measured numbers."""
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    frames = render_frames(0, cfg.clips, cfg.world)
    heldout = render_frames(HELDOUT_SEED_START, cfg.heldout_clips, cfg.world)
    render_s = time.perf_counter() - t0
    net = FrameAutoencoder(cfg.arch)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup_steps)
                                              * 0.5 * (1 + math.cos(math.pi * s / cfg.steps)))
    gen = torch.Generator().manual_seed(cfg.seed)
    resume = resume_path(cfg.out)
    start, first, last = _resume(resume, cfg, net, opt, sched, gen)
    bar = tqdm(range(start, cfg.steps), desc="codec", disable=not progress, dynamic_ncols=True,
               initial=start, total=cfg.steps)
    for step in bar:
        idx = torch.randint(len(frames), (cfg.batch_size,), generator=gen)
        loss = reconstruction_loss(net, _to_float(frames[idx]), cfg.latent_noise, cfg.detail_weight,
                                   cfg.chroma_weight)
        if cfg.interp_weight:
            triplet = frame_triplets(frames, cfg.world.frames, cfg.batch_size, gen)
            loss = loss + cfg.interp_weight * interpolation_loss(net, *triplet, cfg.detail_weight,
                                                                 cfg.chroma_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        last = loss.item() if step == 0 or not math.isfinite(last) else 0.95 * last + 0.05 * loss.item()
        first = last if step == 0 else first
        bar.set_postfix(loss=f"{last:.4f}")
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            state = {"config": dataclasses.asdict(cfg), "step": step + 1, "first": first,
                     "last": last, "net": net.state_dict(), "opt": opt.state_dict(),
                     "sched": sched.state_dict(), "gen": gen.get_state(),
                     "torch_rng": torch.get_rng_state()}
            atomic_write(resume, lambda tmp: torch.save(state, tmp))
    net.eval()
    mean, std = latent_stats(net, frames[torch.randperm(len(frames), generator=gen)[:4096]])
    save_frame_codec(net, mean, std, cfg.out)
    resume.unlink(missing_ok=True)
    result = {"loss_first": first, "loss_last": last, "heldout_psnr_db": psnr(net, heldout),
              "render_s": render_s, "wall_s": time.perf_counter() - t0,
              "params": float(sum(p.numel() for p in net.parameters()))}
    log.info("frame codec -> %s: %s", cfg.out, result)
    return result


def resume_path(out: str | Path) -> Path:
    """Where a codec run writing `out` keeps its resume state."""
    return Path(f"{out}.resume.pt")


def _resume(path: Path, cfg: CodecTrainConfig, net: FrameAutoencoder, opt: torch.optim.Optimizer,
            sched: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator,
            ) -> tuple[int, float, float]:
    """Load an interrupted run's state into the fresh objects: (next step, first, last loss).
    A state from other options is refused rather than mixed into this run."""
    if not path.is_file():
        return 0, float("nan"), float("nan")
    state = torch.load(path)
    if state["config"] != dataclasses.asdict(cfg):
        raise ConfigError(f"{path} holds an interrupted codec run with other options; rerun with "
                          "the same options to finish it, or delete the file to start over")
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    gen.set_state(state["gen"])
    torch.set_rng_state(state["torch_rng"])
    log.info("codec training resumes from step %d (%s)", state["step"], path)
    return state["step"], state["first"], state["last"]


def config_from_args(out: str | Path, **overrides: object) -> CodecTrainConfig:
    """A config from CLI-style overrides (None = default); `FrameAEConfig` fields among
    them set the architecture."""
    known = {f.name for f in dataclasses.fields(CodecTrainConfig)}
    arch_keys = {f.name for f in dataclasses.fields(FrameAEConfig)}
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(kwargs) - known - arch_keys)
    if unknown:
        raise ConfigError(f"unknown codec training options {unknown}")
    arch = {k: kwargs.pop(k) for k in list(kwargs) if k in arch_keys}
    if arch:
        kwargs["arch"] = dataclasses.replace(FrameAEConfig(), **arch)
    return CodecTrainConfig(out=str(out), **kwargs)  # type: ignore[arg-type]
