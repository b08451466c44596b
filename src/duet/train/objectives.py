"""Flow matching for the joint model, as Ovi trains it (paper §4.2).

For clean latents x0, noise ε and time t in [0, 1] (t = 1 is pure noise):
    x_t = (1 - t)·x0 + t·ε          the model sees x_t and the timestep 1000·t
    v   = ε - x0                    and is trained to predict this velocity
Each modality gets its own noise; by default both share one t per item (Ovi), optionally
each draws its own. With `clean_partner` p, a fraction p of the items hold one modality clean
(t = 0, excluded from its loss) while the other is denoised: the video-to-audio and
audio-to-video tasks, which the joint model can only solve by reading its partner. With
`text_dropout` q, a fraction q of the items see the empty prompt's context in both towers,
so the model learns the unconditional prediction that classifier-free guidance extrapolates
from. Two options make video steps cheaper, for a video-only stage: `video_frames` n trains
on a random window of n latent frames per item (n = 1: single pictures, the image
pretraining video models start with), and `per_frame_t` gives every latent frame its own t
(Diffusion Forcing), so a frame learns to take what it can from its less noisy
neighbours. With `video_prefix` p, a fraction p of the items hold their first 1 to
`video_prefix_frames` latent frames clean (t = 0, excluded from the loss): the task of a
long clip's next chunk, which starts from the previous chunk's last frames (`duet.chunks`).
Combined with `video_frames` windows, which start anywhere in a clip, the held frames
show every phase of the motion, a ball at rest included. The loss is a weighted sum of
per-modality MSEs (Ovi stage 2: 0.85·L_video + 0.15·L_audio). Every function here is pure:
randomness comes only from the generator(s) passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from duet.errors import ConfigError, InputError
from duet.model.state import ModalityInput

if TYPE_CHECKING:
    from duet.model import TwinModel
    from duet.train.data import LatentBatch

SAMPLERS = ("uniform", "logit_normal", "shifted")
WEIGHTINGS = ("velocity", "x0")
TIME_SCALE = 1000.0  # the towers take the integer-scaled time 1000·t

Generators = torch.Generator | Sequence[torch.Generator]


@dataclass(frozen=True)
class FlowConfig:
    """What the objective needs: timestep sampler and per-modality loss weights."""

    video_weight: float = 0.85
    audio_weight: float = 0.15
    sampler: str = "uniform"  # uniform | logit_normal | shifted
    logit_mean: float = 0.0  # logit_normal: t = sigmoid(N(mean, std))
    logit_std: float = 1.0
    shift: float = 1.0  # shifted: t' = s·t / (1 + (s - 1)·t) on uniform t (s > 1: noisier)
    independent_t: bool = False  # draw one t per modality instead of one shared t per item
    clean_partner: float = 0.0  # per item: probability that one modality (50/50) is held clean
    text_dropout: float = 0.0  # per item: probability that both towers get the empty prompt
    video_frames: int | None = None  # train on a random window of this many latent frames
    per_frame_t: bool = False  # one t per latent frame of the video (Diffusion Forcing)
    video_patch: tuple[int, int, int] = (1, 2, 2)  # the video tower's patch: tokens per frame
    # per item: probability that its first 1..video_prefix_frames latent frames are held clean
    video_prefix: float = 0.0
    video_prefix_frames: int = 6  # the demo's long clips hold 6 (duet.chunks, 0.5 s overlap)
    # "velocity": the plain MSE on v, which is the x0 error weighted by 1/t², so nearly clean
    # items dominate; "x0": weight each element by t², the x0 error with the same weight at
    # every t, so the noisy times that decide a picture's layout and its caption count as much;
    # or a table per modality, e.g. {"video": "x0"} (a modality it leaves out: "velocity"), so
    # that an x0-trained video tower keeps its weighting beside an audio tower that never had it
    loss_weighting: str | Mapping[str, str] = "velocity"
    # a weight per video latent channel (None: all 1), e.g. to make the frame codec's two
    # colour channels count more than their 2-in-18 share of the loss
    video_channel_weights: tuple[float, ...] | None = None
    # extra weight on the video latent cells that differ from their clip's temporal median
    # (what moves: a small ball, a mouth), so the static background they sit on does not
    # outweigh them in the loss; 0 disables it (see `motion_weight`)
    video_motion_weight: float = 0.0
    # weight of the video error's frame-to-frame change, on top of the error itself: a tower
    # whose prediction is off by a different amount in every frame draws a ball that wobbles
    # (the ruler reads each wobble as a contact), one that is off by the same amount in
    # neighbouring frames draws it steadily; 0 disables it
    video_temporal_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"timestep_sampler {self.sampler!r} is unknown; "
                              f"choose one of {list(SAMPLERS)}")
        if self.logit_std <= 0:
            raise ConfigError(f"logit_std must be > 0, got {self.logit_std}")
        if self.shift <= 0:
            raise ConfigError(f"time_shift must be > 0, got {self.shift}")
        if not 0.0 <= self.clean_partner <= 1.0:
            raise ConfigError(f"clean_partner is a probability in [0, 1], got {self.clean_partner}")
        if not 0.0 <= self.text_dropout < 1.0:
            raise ConfigError(f"text_dropout is a probability in [0, 1), got {self.text_dropout}")
        if self.video_weight < 0 or self.audio_weight < 0:
            raise ConfigError(f"loss weights must be >= 0, got video {self.video_weight}, "
                              f"audio {self.audio_weight}")
        check_loss_weighting(self.loss_weighting)
        if self.video_frames is not None and self.video_frames < 1:
            raise ConfigError(f"video_frames must be >= 1 (or null for whole clips), got "
                              f"{self.video_frames}")
        if self.video_channel_weights is not None and (
                not self.video_channel_weights or min(self.video_channel_weights) < 0):
            raise ConfigError(f"video_channel_weights must be non-empty and >= 0, got "
                              f"{self.video_channel_weights}")
        if self.video_motion_weight < 0:
            raise ConfigError(f"video_motion_weight must be >= 0 (0: off), got "
                              f"{self.video_motion_weight}")
        if self.video_temporal_weight < 0:
            raise ConfigError(f"video_temporal_weight must be >= 0 (0: off), got "
                              f"{self.video_temporal_weight}")
        if not 0.0 <= self.video_prefix <= 1.0:
            raise ConfigError(f"video_prefix is a probability in [0, 1], got {self.video_prefix}")
        if self.video_prefix_frames < 1:
            raise ConfigError(f"video_prefix_frames must be >= 1, got {self.video_prefix_frames}")
        for name, on in (("per_frame_t", self.per_frame_t), ("video_prefix", self.video_prefix > 0)):
            if on and self.video_patch[0] != 1:
                raise ConfigError(f"{name} needs a temporal patch of 1, the video tower has "
                                  f"{self.video_patch[0]}")

    def weighting(self, modality: str) -> str:
        """The loss weighting of one modality ("video" or "audio")."""
        if isinstance(self.loss_weighting, str):
            return self.loss_weighting
        return self.loss_weighting.get(modality, "velocity")


def check_loss_weighting(value: str | Mapping[str, str]) -> None:
    """A weighting name, or a table {"video"/"audio": name}; anything else is a ConfigError."""
    table = {"video": value} if isinstance(value, str) else value
    if not isinstance(table, Mapping) or not table or set(table) - {"video", "audio"}:
        raise ConfigError(f"loss_weighting is one of {list(WEIGHTINGS)} or a table with keys "
                          f"'video' and/or 'audio', got {value!r}")
    for name in table.values():
        if name not in WEIGHTINGS:
            raise ConfigError(f"loss_weighting {name!r} is unknown; choose one of {list(WEIGHTINGS)}")


# ---- timestep samplers (t in (0, 1), float32) -------------------------------------------
def uniform_t(n: int, generator: torch.Generator) -> Tensor:
    """t ~ U(0, 1)."""
    return torch.rand(n, generator=generator, device=generator.device)


def logit_normal_t(n: int, generator: torch.Generator, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """t = sigmoid(u), u ~ N(mean, std²) (SD3's logit-normal; mass around sigmoid(mean))."""
    u = torch.randn(n, generator=generator, device=generator.device)
    return torch.sigmoid(mean + std * u)


def shift_t(t: Tensor, shift: float) -> Tensor:
    """σ' = s·σ / (1 + (s - 1)·σ): the sampler's shift, applied to training times."""
    return shift * t / (1 + (shift - 1) * t)


def sample_t(n: int, generator: torch.Generator, cfg: FlowConfig) -> Tensor:
    """n training times from the configured sampler."""
    match cfg.sampler:
        case "uniform":
            return uniform_t(n, generator)
        case "logit_normal":
            return logit_normal_t(n, generator, cfg.logit_mean, cfg.logit_std)
        case "shifted":
            return shift_t(uniform_t(n, generator), cfg.shift)
    raise ConfigError(f"timestep_sampler {cfg.sampler!r} is unknown; choose one of {list(SAMPLERS)}")


# ---- the interpolation ------------------------------------------------------------------
def _per_item(t: Tensor, x: Tensor) -> Tensor:
    """t [B] as (B, 1, ..., 1), or a video's per-frame t [B, F] as (B, 1, F, 1, 1)."""
    if t.dim() == 2:
        return t[:, None, :, None, None].to(x.dtype)
    return t.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def noisy_latent(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x_t = (1 - t)·x0 + t·ε, with t [B] (or [B, F] per video frame)."""
    tt = _per_item(t, x0)
    return (1 - tt) * x0 + tt * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """v = ε - x0, the velocity dx_t/dt."""
    return noise - x0


@dataclass(frozen=True)
class FlowDraw:
    """The random part of one loss evaluation: times [B] and noise shaped like each latent."""

    video_t: Tensor | None
    audio_t: Tensor | None
    video_noise: Tensor | None
    audio_noise: Tensor | None
    text_dropped: Tensor | None = None  # [B] bool: items trained with the empty prompt


def draw(batch: LatentBatch, generator: Generators, cfg: FlowConfig) -> FlowDraw:
    """Times and noise for `batch`.

    `generator` is one generator for the whole batch, or one per item (the trainer's choice:
    item i's draws then depend only on its own generator, so a global batch split across
    ranks or micro-batches gets exactly the same noise as when it is processed whole).
    Draw order per generator (after `crop_video`'s window start, with video_frames): t
    (video/shared; one per latent frame with per_frame_t), t (audio, if independent), video
    noise, audio noise, then (with clean_partner) whether the item holds a modality, and which, then
    (with text_dropout) whether it sees the empty prompt, then (with video_prefix) whether it
    holds a video prefix, and how many frames.
    """
    if isinstance(generator, torch.Generator):
        return _draw(batch, generator, cfg, batch.size)
    gens = list(generator)
    if len(gens) != batch.size:
        raise InputError(f"got {len(gens)} generators for a batch of {batch.size} items")
    parts = [_draw(batch.select(i), g, cfg, 1) for i, g in enumerate(gens)]
    return FlowDraw(*(_cat([getattr(p, f) for p in parts])
                      for f in ("video_t", "audio_t", "video_noise", "audio_noise", "text_dropped")))


def crop_video(batch: LatentBatch, frames: int, generator: Generators) -> LatentBatch:
    """Each item's video cut to `frames` consecutive latent frames at a random start (drawn
    from the item's generator before anything else). Refuses batches with audio: a window
    of the video has no matching audio here."""
    if batch.audio is not None:
        raise InputError("video_frames crops video-only batches; the audio would not match")
    assert batch.video is not None
    total = batch.video.shape[2]
    if frames > total:
        raise InputError(f"video_frames {frames} is more than the clips' {total} latent frames")
    gens = [generator] * batch.size if isinstance(generator, torch.Generator) else list(generator)
    starts = [int(torch.randint(total - frames + 1, (1,), generator=g, device=g.device))
              for g in gens]
    video = torch.stack([v[:, s:s + frames] for v, s in zip(batch.video, starts)])
    return replace(batch, video=video)


def _cat(xs: list[Tensor | None]) -> Tensor | None:
    return None if xs[0] is None else torch.cat(xs)  # type: ignore[arg-type]


def _noise_like(x: Tensor | None, g: torch.Generator) -> Tensor | None:
    return None if x is None else torch.randn(x.shape, generator=g, device=g.device)


def _draw(batch: LatentBatch, g: torch.Generator, cfg: FlowConfig, n: int) -> FlowDraw:
    if cfg.per_frame_t and batch.video is not None:  # t [n, F]: one per latent frame
        t = sample_t(n * batch.video.shape[2], g, cfg).view(n, -1)
    else:
        t = sample_t(n, g, cfg)
    t_audio = sample_t(n, g, cfg) if cfg.independent_t else t
    v_noise, a_noise = _noise_like(batch.video, g), _noise_like(batch.audio, g)
    if cfg.clean_partner > 0 and batch.video is not None and batch.audio is not None:
        held = torch.rand(n, generator=g, device=g.device) < cfg.clean_partner
        video_held = held & (torch.rand(n, generator=g, device=g.device) < 0.5)
        t = torch.where(video_held.view(-1, *[1] * (t.dim() - 1)), 0.0, t)  # a shared t splits
        t_audio = torch.where(held & ~video_held, 0.0, t_audio)
    dropped = (torch.rand(n, generator=g, device=g.device) < cfg.text_dropout
               if cfg.text_dropout > 0 else None)
    if cfg.video_prefix > 0 and batch.video is not None:
        t = hold_prefix(t, batch.video.shape[2], g, cfg)
    return FlowDraw(t if batch.video is not None else None,
                    t_audio if batch.audio is not None else None, v_noise, a_noise, dropped)


def hold_prefix(t: Tensor, frames: int, g: torch.Generator, cfg: FlowConfig) -> Tensor:
    """The video's t as one per latent frame [n, frames], with the first 1 to
    `video_prefix_frames` frames (never the whole clip) at t = 0 for a `video_prefix`
    fraction of the items."""
    n = t.shape[0]
    if t.dim() == 1:
        t = t[:, None].expand(n, frames)
    prefixed = torch.rand(n, generator=g, device=g.device) < cfg.video_prefix
    most = max(1, min(cfg.video_prefix_frames, frames - 1))
    k = torch.randint(1, most + 1, (n,), generator=g, device=g.device)
    held = prefixed[:, None] & (torch.arange(frames, device=g.device)[None] < k[:, None])
    return torch.where(held.to(t.device), 0.0, t)


def _drop_text(ctx: Tensor, null_context: Tensor, dropped: Tensor) -> Tensor:
    """The batch's contexts with the dropped items' replaced by the empty prompt's."""
    if null_context.dim() != 2 or null_context.shape[-1] != ctx.shape[-1]:
        raise InputError(f"null_context must be [L, {ctx.shape[-1]}], got {list(null_context.shape)}")
    null = torch.zeros_like(ctx[0])
    n = min(null.shape[0], null_context.shape[0])
    null[:n] = null_context[:n].to(ctx)
    return torch.where(dropped.to(ctx.device).view(-1, 1, 1), null, ctx)


def _mse(pred: Tensor, target: Tensor, t: Tensor | None, weight: Tensor | None = None,
         temporal: float = 0.0, frames: Tensor | None = None) -> Tensor:
    """Mean squared error (each element times `weight`, broadcast), plus `temporal` times the
    mean squared frame-to-frame change of the error (dim 2 of a video [B, C, F, H, W]); with
    `t`, over the items whose t > 0 only; with `frames` [B, F] (bool), over those frames of
    each item only. A held (clean) latent is the partner's condition, or a held frame the
    clip's given start, not a denoising task: its target ε - x0 cannot be predicted from x0,
    so its loss would only teach the tower to output -x0."""
    if t is None and weight is None and temporal == 0 and frames is None:
        return F.mse_loss(pred, target)
    err = pred - target
    sq = err.pow(2)
    if weight is not None:
        sq = sq * weight
    free = None if frames is None else frames[:, None, :, None, None].to(sq.dtype)
    per_item = _item_mean(sq, free)
    if temporal > 0 and err.shape[2] > 1:
        change = (err[:, :, 1:] - err[:, :, :-1]).pow(2)
        if weight is not None:  # each difference weighted by its two frames' mean weight
            w = weight.expand_as(sq)
            change = change * 0.5 * (w[:, :, 1:] + w[:, :, :-1])
        both = None if free is None else free[:, :, 1:] * free[:, :, :-1]  # two free frames
        per_item = per_item + temporal * _item_mean(change, both)
    if t is None:
        return per_item.mean()
    keep = (t.to(per_item.device).reshape(t.shape[0], -1).amax(1) > 0).to(per_item.dtype)
    return (per_item * keep).sum() / keep.sum().clamp(min=1)


def _item_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Per-item mean of `x` [B, ...], over the elements where the broadcast `mask` is 1."""
    if mask is None:
        return x.flatten(1).mean(1)
    return (x * mask).flatten(1).sum(1) / mask.expand_as(x).flatten(1).sum(1).clamp(min=1)


def motion_weight(x0: Tensor, strength: float) -> Tensor:
    """Loss weight per latent cell of clean clips x0 [B, C, F, H, W], as (B, 1, F, H, W):
    1 + strength·m, where m is the cell's distance (over channels) from the clip's temporal
    median, over the clip's largest such distance, then scaled to mean 1 per clip, so the
    loss keeps its size and only its share between static and changing cells moves."""
    dev = (x0 - x0.median(dim=2, keepdim=True).values).norm(dim=1, keepdim=True)
    peak = dev.flatten(1).amax(1).clamp(min=1e-6).view(-1, 1, 1, 1, 1)
    weight = 1 + strength * dev / peak
    return weight / weight.mean(dim=(1, 2, 3, 4), keepdim=True)


def _loss_weight(t: Tensor, pred: Tensor, cfg: FlowConfig, name: str,
                 x0: Tensor) -> Tensor | None:
    """Per-element weight of the velocity error: None (plain), or t² (x0 weighting), times
    the video's per-channel and motion weights."""
    weight = None
    if cfg.weighting(name) == "x0":
        tt = t.to(pred.device)
        tt = tt[:, None, :, None, None] if tt.dim() == 2 else tt.view(-1, *[1] * (pred.dim() - 1))
        weight = tt.float().square()
    if name == "video" and cfg.video_channel_weights is not None:
        channels = torch.tensor(cfg.video_channel_weights, device=pred.device).view(1, -1, 1, 1, 1)
        weight = channels if weight is None else weight * channels
    if name == "video" and cfg.video_motion_weight > 0:
        moving = motion_weight(x0, cfg.video_motion_weight)
        weight = moving if weight is None else weight * moving
    return weight


def _token_t(t: Tensor, x0: Tensor, cfg: FlowConfig) -> Tensor:
    """The tower's timestep: t [B] as is, a per-frame t [B, F] spread over each frame's tokens."""
    if t.dim() == 1:
        return t
    tokens = (x0.shape[3] // cfg.video_patch[1]) * (x0.shape[4] // cfg.video_patch[2])
    return t.repeat_interleave(tokens, dim=1)  # (B, F·H'·W'), tokens in (f, h, w) order


def flow_matching_loss(model: TwinModel, batch: LatentBatch, generator: Generators,
                       cfg: FlowConfig, null_context: Tensor | None = None,
                       ) -> tuple[Tensor, dict[str, Tensor]]:
    """(weighted total, {"video": L_v, "audio": L_a}) for one batch; absent modalities are skipped.

    The model runs fused when both modalities are present and runs a tower alone otherwise.
    Each L is the mean squared error in float32 over all latent elements of the batch.
    null_context [Lt, D]: the empty prompt's context (`duet.data.dataset.encode_texts([""])`),
    which the items drawn for `text_dropout` see instead of their own.
    """
    if cfg.text_dropout > 0 and null_context is None:
        raise InputError("text_dropout needs the empty prompt's context: pass null_context")
    if cfg.video_frames is not None and batch.video is not None:
        batch = crop_video(batch, cfg.video_frames, generator)
    d = draw(batch, generator, cfg)
    inputs, targets, clean = {}, {}, {}
    per_modality = (("video", batch.video, d.video_t, d.video_noise, batch.video_context),
                    ("audio", batch.audio, d.audio_t, d.audio_noise, batch.audio_context))
    for name, x0, t, eps, ctx in per_modality:
        if x0 is None:
            continue
        x0, eps, t = x0.float(), eps.to(x0.device), t.to(x0.device)
        if d.text_dropped is not None:
            ctx = _drop_text(ctx, null_context, d.text_dropped)  # type: ignore[arg-type]
        inputs[name] = ModalityInput(noisy_latent(x0, eps, t), TIME_SCALE * _token_t(t, x0, cfg), ctx)
        targets[name] = velocity_target(x0, eps)
        clean[name] = x0
    v_pred, a_pred = model(inputs.get("video"), inputs.get("audio"))
    times = {"video": d.video_t, "audio": d.audio_t}
    temporal = {"video": cfg.video_temporal_weight, "audio": 0.0}
    free = {"video": d.video_t > 0 if cfg.video_prefix > 0 else None, "audio": None}
    losses = {name: _mse(pred.float(), targets[name], times[name] if cfg.clean_partner > 0 else None,
                         _loss_weight(times[name], pred, cfg, name, clean[name]), temporal[name],
                         free[name])
              for name, pred in (("video", v_pred), ("audio", a_pred)) if pred is not None}
    weights = {"video": cfg.video_weight, "audio": cfg.audio_weight}
    total = sum(weights[name] * loss for name, loss in losses.items())
    return total, losses  # type: ignore[return-value]
