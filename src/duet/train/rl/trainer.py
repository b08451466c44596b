"""The RL loop: OmniNFT (DiffusionNFT with modality-wise advantage routing, layer-wise
gradient surgery and region-wise reweighting) for any Duet model, one process or many.

    duet rl CONFIG.json                                        # one process
    python -m duet.train.rl CONFIG.json                        # the same
    torchrun --nproc_per_node 8 -m duet rl CONFIG.json         # FSDP2 over 8 ranks

Each optimizer step:
1. rollouts: `prompts_per_step` prompts, `group_size` samples each, drawn by the old policy
   with the project's sampler and guidance (the global batch is split over the ranks);
2. rewards: each sample decoded and scored by every configured reward;
3. advantages: per reward, normalised within its prompt group, routed to the towers;
4. loss: for the noisiest `timestep_fraction` of the sampling grid, each x0 re-noised with
   fresh noise, DiffusionNFT's loss per tower (+ KL to the reference), one AdamW step;
5. the old policy moves toward θ (EMA, decay min(0.001·step, 0.5)).

Reproducibility as in `duet.train`: the prompts of step k, and the noise of every sample
and training time, are pure functions of (seed, k, position in the global batch), so a
resumed run repeats the uninterrupted one bit for bit. Checkpoints, resume and the final
bundle are the trainer's (`duet.train.trainer`); the checkpoint's EMA part is the old
policy; the bundle (`out_dir/final`) holds the current policy θ.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from duet.data.dataset import encode_texts, world_config_for
from duet.errors import ConfigError, DuetError
from duet.model import ModalityInput
from duet.components import build_codecs
from duet.inputs import snap_size
from duet.lora import adapters_merged
from duet.sampling.guidance import Conditioning, Guidance
from duet.sampling.schedule import flow_sigmas, sigmas_to_timesteps
from duet.train.data import BatchPlan
from duet.train.objectives import noisy_latent
from duet.train.config import TrainConfig, check_codec_files
from duet.train.parallel import Runtime, autocast, full_tensor, init_runtime
from duet.train.plot import loss_curve_png
from duet.train.rl.advantages import tower_advantages
from duet.train.rl.config import RLConfig
from duet.train.rl.loss import kl_penalty, nft_loss
from duet.train.rl.policy import old_decay, swapped, trainable_copy
from duet.train.rl.prompts import PromptPool
from duet.train.rl.reweight import latent_weights, token_weights, w_max_at
from duet.train.rl.generated import GeneratedClip
from duet.train.rl.rewards import Reward, get_reward
from duet.train.rl.rollout import RolloutConfig, Rollouts, collect
from duet.train.rl.surgery import GradientSurgery
from duet.train.saving import export_bundle, resume, save_checkpoint
from duet.train.setup import Ema, build_model, build_optimizer, initial_state
from duet.train.trainer import item_generators, lr_at

log = logging.getLogger(__name__)

Callback = Callable[[dict[str, Any]], None]


@dataclass
class Run:
    """What one RL run builds before its first step."""

    cfg: RLConfig
    tc: TrainConfig  # the trainer's view of the run (cfg.train_config())
    rt: Runtime
    model: nn.Module
    opt: torch.optim.Optimizer
    old: Ema  # the old policy: an EMA of θ whose decay is set each step
    reference: dict[str, Tensor] | None  # θ's trainable parameters at the start (KL target)
    codecs: tuple[Any, Any, Any]  # video codec, audio codec, text encoder
    pool: PromptPool
    rewards: dict[str, Reward]
    rollout: RolloutConfig
    negative: Conditioning
    video_shape: tuple[int, ...]  # one sample's latent shapes
    audio_shape: tuple[int, ...]
    grid: tuple[int, int, int]  # the video tower's token grid
    frames: int  # clip length in video frames
    fps: float
    sample_rate: int
    timesteps: Tensor  # the integer timesteps trained on: the noisiest of the sampling grid


# ---- setup -------------------------------------------------------------------------------
def build_run(cfg: RLConfig, rt: Runtime) -> Run:
    """Model, optimizer, policies, codecs, prompts, rewards and shapes; ConfigError for any
    mismatch before compute."""
    if cfg.batch_size % rt.world:
        raise ConfigError(f"prompts_per_step x group_size = {cfg.batch_size} samples per step do "
                          f"not split over {rt.world} ranks; pick a multiple of {rt.world}")
    tc = cfg.train_config()
    check_codec_files(tc)
    preset = tc.bundle_preset()
    twin, media, sc = preset.model, preset.media, preset.sampler
    video_codec, audio_codec, text = build_codecs(preset)
    channels = (video_codec.latent_channels, audio_codec.latent_channels)
    if channels != (twin.video.in_dim, twin.audio.in_dim):
        raise ConfigError(f"the preset's codecs give {video_codec.latent_channels} video and "
                          f"{audio_codec.latent_channels} audio latent channels; the model takes "
                          f"{twin.video.in_dim} and {twin.audio.in_dim} (model.*.in_dim)")
    frames = cfg.frames or media.frames
    h, w = snap_size(None, None, media.area, media.size_multiple)
    c, f, lh, lw = video_codec.latent_shape(frames, h, w)
    pt, ph, pw = twin.video.patch_size
    text_len = twin.video.text_len
    neg = encode_texts(text, [sc.video_negative, sc.audio_negative], text_len).to(rt.device)
    slg = sc.slg_block if sc.slg_block is not None and sc.slg_block < twin.num_layers else None
    guidance = Guidance(
        video_scale=sc.video_guidance if cfg.video_guidance is None else cfg.video_guidance,
        audio_scale=sc.audio_guidance if cfg.audio_guidance is None else cfg.audio_guidance,
        negative_skip_blocks=() if slg is None else (slg,))
    sigmas = flow_sigmas(cfg.sampling_steps, sc.shift if cfg.shift is None else cfg.shift,
                         dtype=torch.float64)
    train_steps = max(1, round(cfg.timestep_fraction * cfg.sampling_steps))
    rollout = RolloutConfig(sigmas=sigmas.to(rt.device), solver=cfg.solver or sc.solver,
                            guidance=guidance, batch=cfg.micro_batch,
                            window=cfg.attention_window if cfg.region_reweighting else None)
    model, trainable = build_model(tc, rt, initial_state(tc, rt))
    if rt.is_main:
        log.info("RL: %.3fM trainable parameters on %d rank(s), %d samples per step, %d "
                 "sampling steps, training on t = %s", trainable / 1e6, rt.world, cfg.batch_size,
                 cfg.sampling_steps, (sigmas_to_timesteps(sigmas)[:train_steps] / 1000).tolist())
    return Run(cfg=cfg, tc=tc, rt=rt, model=model, opt=build_optimizer(model, tc),
               old=Ema(model, 0.0),
               reference=trainable_copy(model) if cfg.kl_weight > 0 else None,
               codecs=(video_codec, audio_codec, text),
               pool=PromptPool(cfg.prompts, cfg.world_seed, cfg.world_prompts,
                               world_config_for(preset, kinds=cfg.world_kinds)),
               rewards={name: get_reward(name) for name in cfg.rewards}, rollout=rollout,
               negative=Conditioning(neg[0:1], neg[1:2]), video_shape=(c, f, lh, lw),
               audio_shape=(media.audio_length(frames), audio_codec.latent_channels),
               grid=(-(-f // pt), lh // ph, lw // pw), frames=frames, fps=media.fps,
               sample_rate=audio_codec.sample_rate,
               timesteps=sigmas_to_timesteps(sigmas)[:train_steps])


# ---- one step ------------------------------------------------------------------------------
def rl_step(run: Run, step: int) -> dict[str, Any]:
    """Rollouts, rewards, advantages, one optimizer step and the old policy's update.
    Returns the step's record (means over the global batch)."""
    cfg, rt = run.cfg, run.rt
    per_rank = cfg.batch_size // rt.world
    positions = range(rt.rank * per_rank, (rt.rank + 1) * per_rank)
    groups = BatchPlan(len(run.pool), cfg.prompts_per_step, seed=cfg.seed).indices(step, 0, 0)
    prompts = [run.pool[int(groups[p // cfg.group_size])] for p in positions]
    gens = item_generators(cfg.seed, step, positions, torch.device("cpu"))
    context = encode_texts(run.codecs[2], prompts, run.model.cfg.video.text_len).to(rt.device)

    # 1. rollouts by the old policy, from per-sample noise
    video = torch.cat([torch.randn(1, *run.video_shape, generator=g) for g in gens])
    audio = torch.cat([torch.randn(1, *run.audio_shape, generator=g) for g in gens])
    with swapped(run.model, run.old.shadow), adapters_merged(run.model), \
            autocast(rt.device, cfg.bf16):
        rolled = collect(run.model, context, run.negative, video.to(rt.device),
                         audio.to(rt.device), run.rollout)

    # 2-3. rewards (every rank's), then each tower's advantage for this rank's samples
    local = score(run, rolled, prompts)
    every = torch.tensor([row for part in rt.gather(local.tolist()) for row in part],
                         dtype=torch.float64)  # (N, rewards)
    names = list(run.rewards)
    rewards = {n: every[:, k] for k, n in enumerate(names)}
    adv = tower_advantages(rewards, {n: run.rewards[n].tag for n in names}, cfg.rewards,
                           torch.arange(cfg.batch_size) // cfg.group_size,
                           cfg.advantage_routing, cfg.global_std)
    adv = {m: a[positions.start:positions.stop].to(rt.device) for m, a in adv.items()}

    # 4. the loss over the noisiest times, one optimizer step
    lr = lr_at(step, run.tc)
    for group in run.opt.param_groups:
        group["lr"] = lr
    w_max = w_max_at(step, cfg.steps, cfg.region_weight_max) if cfg.region_reweighting else 1.0
    losses = optimize(run, rolled, adv, gens, w_max)
    run.old.decay = old_decay(step + 1, cfg.old_decay_rate, cfg.old_decay_max)
    run.old.update(run.model)
    record = {"step": step + 1, "lr": lr, **losses, "w_max": w_max,
              "reward": float(sum(cfg.rewards[n] * rewards[n].mean() for n in names))}
    record.update({f"reward_{n}": float(rewards[n].mean()) for n in names})
    return record


@torch.no_grad()
def reward_frames(video_codec: Any, latents: Tensor, frames: int, bf16: bool) -> np.ndarray:
    """Rollout latents [N, C, F, h, w] -> the uint8 frames [N, frames, H, W, 3] the rewards
    read, decoded on the CPU (under bf16 autocast with `reward_bf16`)."""
    with autocast(torch.device("cpu"), bf16):
        pixels = video_codec.decode(latents.cpu())[:, :, :frames]
    frames_u8 = ((pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return frames_u8.permute(0, 2, 3, 4, 1).numpy()


@torch.no_grad()
def score(run: Run, rolled: Rollouts, prompts: list[str]) -> Tensor:
    """Rewards [n, len(run.rewards)] of this rank's rollouts, decoded `micro_batch` at a time."""
    video_codec, audio_codec, _ = run.codecs
    fps, sr = run.fps, run.sample_rate
    n_samples = round(run.frames / fps * sr)
    rows, mb = [], run.cfg.micro_batch
    for s in range(0, len(prompts), mb):
        frames = reward_frames(video_codec, rolled.video[s:s + mb], run.frames,
                               run.cfg.reward_bf16)
        waves = audio_codec.decode(rolled.audio[s:s + mb].cpu()).float()
        waves = torch.nn.functional.pad(waves, (0, max(0, n_samples - waves.shape[1])))
        for f, a, p in zip(frames, waves[:, :n_samples].numpy(), prompts[s:s + mb]):
            clip = GeneratedClip(f, a, fps, sr, p)
            rows.append([reward(clip) for reward in run.rewards.values()])
    return torch.tensor(rows, dtype=torch.float64)


@torch.enable_grad()  # the CLI may have turned autograd off globally
def optimize(run: Run, rolled: Rollouts, adv: dict[str, Tensor], gens: list[torch.Generator],
             w_max: float) -> dict[str, float]:
    """DiffusionNFT's loss on this rank's rollouts at each training time, backward, one AdamW
    step; the step's mean losses (global) and pre-clip grad norm."""
    cfg, rt, model = run.cfg, run.rt, run.model
    n, mb = rolled.video.shape[0], cfg.micro_batch
    noisy = []  # per training time: (x_t video, x_t audio, t [n], integer timesteps [n])
    for tj in run.timesteps.tolist():  # fresh noise, drawn after each sample's rollout noise
        eps_v = torch.cat([torch.randn(1, *run.video_shape, generator=g) for g in gens])
        eps_a = torch.cat([torch.randn(1, *run.audio_shape, generator=g) for g in gens])
        t = torch.full((n,), tj / 1000.0, device=rt.device)
        noisy.append((noisy_latent(rolled.video, eps_v.to(rt.device), t),
                      noisy_latent(rolled.audio, eps_a.to(rt.device), t), t,
                      torch.full((n,), tj, dtype=torch.int64, device=rt.device)))
    chunks = [(j, s) for j in range(len(noisy)) for s in range(0, n, mb)]

    def velocity(j: int, s: int) -> tuple[Tensor, Tensor]:
        xv, xa, _, steps = noisy[j]
        sl, ctx = slice(s, s + mb), rolled.context[s:s + mb]
        with autocast(rt.device, cfg.bf16):
            v, a = model(ModalityInput(xv[sl], steps[sl], ctx),
                         ModalityInput(xa[sl], steps[sl], ctx))
        return v.float(), a.float()

    with torch.no_grad(), swapped(model, run.old.shadow), adapters_merged(model):
        old = {c: velocity(*c) for c in chunks}
    ref = None
    if run.reference is not None:
        with torch.no_grad(), swapped(model, run.reference), adapters_merged(model):
            ref = {c: velocity(*c) for c in chunks}
    weights = None
    if rolled.attention is not None:
        tokens = token_weights(rolled.attention, run.grid, w_max)
        weights = latent_weights(tokens, run.grid, model.cfg.video.patch_size, run.video_shape[1])
    sums = torch.zeros(4, dtype=torch.float64, device=rt.device)  # total, video, audio, kl
    count = n * len(noisy)
    surgery = GradientSurgery(model, cfg.surgery_scales) if cfg.gradient_surgery else nullcontext()
    with surgery:
        for k, (j, s) in enumerate(chunks):
            if rt.distributed:  # reduce-scatter once, after the last backward
                model.set_requires_gradient_sync(k == len(chunks) - 1)
            xv, xa, t, _ = noisy[j]
            sl, tt = slice(s, s + mb), t[s:s + mb]
            v, a = velocity(j, s)
            lv = nft_loss(v, old[j, s][0], xv[sl], rolled.video[sl], tt, adv["video"][sl],
                          cfg.beta, cfg.adv_clip_max, None if weights is None else weights[sl])
            la = nft_loss(a, old[j, s][1], xa[sl], rolled.audio[sl], tt, adv["audio"][sl],
                          cfg.beta, cfg.adv_clip_max)
            kl = torch.zeros_like(lv) if ref is None else (
                kl_penalty(v, ref[j, s][0]) + kl_penalty(a, ref[j, s][1]))
            total = lv + la + cfg.kl_weight * kl
            (total.sum() / count).backward()
            parts = torch.stack([total.sum(), lv.sum(), la.sum(), kl.sum()]).detach()
            sums += parts.double() / count
    params = [p for p in model.parameters() if p.requires_grad]
    max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
    grad_norm = full_tensor(torch.nn.utils.clip_grad_norm_(params, max_norm)).item()
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    total, video, audio, kl = rt.mean(sums).tolist()
    return {"loss": total, "video": video, "audio": audio, "kl": kl, "grad_norm": grad_norm}


# ---- the loop ----------------------------------------------------------------------------
def train_rl(cfg: RLConfig, callback: Callback | None = None) -> Path:
    """Run (or resume) RL fine-tuning; return the exported bundle directory (every rank).

    callback: called on every rank after each step with that step's record ({"step",
        "loss", "video", "audio", "kl", "grad_norm", "lr", "w_max", "reward",
        "reward_<name>" ..., "seconds"}).
    """
    rt = init_runtime(cfg.device)
    try:
        return _train(cfg, rt, callback)
    finally:
        rt.close()


def _train(cfg: RLConfig, rt: Runtime, callback: Callback | None) -> Path:
    run = build_run(cfg, rt)
    tc = run.tc
    out = Path(cfg.out_dir)
    root = out / "checkpoints"
    step, history = resume(root, tc, rt, run.model, run.opt, run.old) if cfg.resume else (0, [])
    if rt.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "rl.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    bar = tqdm(total=cfg.steps, initial=step, unit="step", dynamic_ncols=True,
               disable=not (rt.is_main and cfg.progress))
    while step < cfg.steps:
        t0 = time.perf_counter()
        record = rl_step(run, step)
        step += 1
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        bar.update(1)
        bar.set_postfix({"reward": f"{record['reward']:.4f}", "loss": f"{record['loss']:.4f}"},
                        refresh=False)
        if rt.is_main and (step % cfg.log_every == 0 or step == cfg.steps):
            rewards = " ".join(f"{k[7:]} {v:.4f}" for k, v in record.items()
                               if k.startswith("reward_"))
            log.info("step %d/%d: reward %.4f (%s) loss %.4f (video %.4f audio %.4f kl %.3g) "
                     "grad norm %.3g, %.1f s", step, cfg.steps, record["reward"], rewards,
                     record["loss"], record["video"], record["audio"], record["kl"],
                     record["grad_norm"], record["seconds"])
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(root, tc, rt, run.model, run.opt, run.old, step, history)
        if callback is not None:
            callback(record)
    bar.close()
    bundle = export_bundle(out / "final", tc, rt, run.model, Ema(run.model, 0.0), step)
    if rt.is_main and history:
        write_log(out, history)
    rt.barrier()
    return bundle


def write_log(out: Path, history: list[dict[str, Any]]) -> None:
    """rl_log.csv (every key of every step), loss.png and rewards.png."""
    keys = list(dict.fromkeys(k for r in history for k in r))
    with (out / "rl_log.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        w.writerows([[r.get(k) for k in keys] for r in history])
    steps = [r["step"] for r in history]
    loss_curve_png(out / "loss.png", steps, {k: [r[k] for r in history]
                                             for k in ("loss", "video", "audio")})
    rewards = {k[7:] if k != "reward" else "total": [r[k] for r in history]
               for k in keys if k.startswith("reward")}
    loss_curve_png(out / "rewards.png", steps, rewards, log_y=False, label="reward")


def main(argv: list[str] | None = None) -> int:
    """`python -m duet.train.rl CONFIG` (also under torchrun). Returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m duet.train.rl",
                                     description="RL fine-tuning (OmniNFT) of a Duet model.")
    parser.add_argument("config", help="RL config (.json or .toml); see docs/rl.md")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (dotted for tables, VALUE in JSON), e.g. "
                             "model.audio.rope_time_scale=1.0; repeatable")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = RLConfig.from_file(args.config, args.set)
        if args.quiet:
            cfg = dataclasses.replace(cfg, progress=False)
        bundle = train_rl(cfg)
    except DuetError as e:
        log.error("%s", e)
        return 2
    log.info("model bundle: %s", bundle)
    return 0
