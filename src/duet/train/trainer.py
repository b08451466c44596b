"""The training loop: flow matching on precomputed latents, one process or many (torchrun +
FSDP2), with AdamW, warmup + cosine LR, gradient clipping, EMA, gradient accumulation,
atomic checkpoints with exact resume, and a final model bundle (the run is built by
`duet.train.setup`; checkpoints and exports are `duet.train.saving`'s).

    python -m duet.train CONFIG.json                               # one process
    torchrun --nproc_per_node 8 -m duet.train CONFIG.json          # FSDP2 over 8 ranks

Reproducibility: the items of step k and the noise/timesteps of each item are pure
functions of (seed, k, position in the global batch), so a run resumed from a checkpoint
repeats the uninterrupted run bit for bit (on the same device), and the same global batch
gives the same losses whatever the number of ranks or micro-steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from duet.errors import ConfigError, DuetError
from duet.train.config import TrainConfig, check_batch, check_codec_files, check_data
from duet.train.data import BatchPlan, LatentDataset, mix_seed
from duet.train.objectives import FlowConfig, flow_matching_loss
from duet.train.parallel import Runtime, autocast, full_tensor, init_runtime
from duet.train.saving import export_bundle, resume, save_checkpoint, write_curves
from duet.train.setup import Ema, build_model, build_optimizer, empty_prompt_context, initial_state

log = logging.getLogger(__name__)

Callback = Callable[[dict[str, Any]], None]


# ---- small pieces ------------------------------------------------------------------------
def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to the peak LR, then cosine decay to the final LR at `cfg.steps`."""
    peak, final = cfg.peak_lr, cfg.final_lr
    if step < cfg.warmup_steps:
        return peak * (step + 1) / (cfg.warmup_steps + 1)
    if step >= cfg.steps:
        return final
    ratio = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return final + 0.5 * (1 + math.cos(math.pi * ratio)) * (peak - final)


def item_generators(seed: int, step: int, positions: range,
                    device: torch.device) -> list[torch.Generator]:
    """One generator per item, seeded by (seed, step, position in the global batch)."""
    return [torch.Generator(device).manual_seed(mix_seed(seed, step, pos)) for pos in positions]


# ---- one optimizer step ------------------------------------------------------------------
@torch.enable_grad()  # callers such as the CLI may have turned autograd off globally
def train_step(model: nn.Module, opt: torch.optim.Optimizer, dataset: LatentDataset,
               plan: BatchPlan, step: int, flow: FlowConfig, cfg: TrainConfig,
               rt: Runtime, null_context: Tensor | None = None) -> dict[str, float | None]:
    """Forward/backward over `grad_accum` micro-batches, clip, AdamW step
    (null_context: the empty prompt's, for `text_dropout`).

    Returns the step's losses averaged over the global batch, and the pre-clip grad norm.
    """
    modalities = cfg.get_stage().modalities
    sums = torch.zeros(3, dtype=torch.float64, device=rt.device)  # total, video, audio
    for micro in range(cfg.grad_accum):
        batch = dataset.gather(plan.indices(step, micro, rt.rank)).only(modalities).to(rt.device)
        gens = item_generators(cfg.seed, step, plan.positions(micro, rt.rank), rt.device)
        if rt.distributed:  # reduce-scatter gradients on the last micro-step only
            model.set_requires_gradient_sync(micro == cfg.grad_accum - 1)  # type: ignore[operator]
        with autocast(rt.device, cfg.bf16):
            total, parts = flow_matching_loss(model, batch, gens, flow,  # type: ignore[arg-type]
                                              null_context)
        (total / cfg.grad_accum).backward()
        zero = total.new_zeros(())
        micro_losses = torch.stack([total, parts.get("video", zero), parts.get("audio", zero)])
        sums += micro_losses.detach() / cfg.grad_accum
    params = [p for p in model.parameters() if p.requires_grad]
    max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
    grad_norm = full_tensor(torch.nn.utils.clip_grad_norm_(params, max_norm)).item()
    opt.step()
    opt.zero_grad(set_to_none=True)
    total, video, audio = rt.mean(sums).tolist()
    return {"loss": total, "video": video if "video" in modalities else None,
            "audio": audio if "audio" in modalities else None, "grad_norm": grad_norm}


# ---- the loop ----------------------------------------------------------------------------
def train(cfg: TrainConfig, dataset: LatentDataset | None = None,
          callback: Callback | None = None) -> Path:
    """Run (or resume) training; return the exported bundle directory (on every rank).

    dataset: use these items instead of opening `cfg.data`.
    callback: called on every rank after each step with that step's record
        ({"step", "loss", "video", "audio", "lr", "grad_norm"}).
    """
    rt = init_runtime(cfg.device)
    try:
        return _train(cfg, rt, dataset, callback)
    finally:
        rt.close()


def _train(cfg: TrainConfig, rt: Runtime, dataset: LatentDataset | None,
           callback: Callback | None) -> Path:
    # 1. Everything that can be wrong with the config or the data fails here, before compute.
    check_batch(cfg, rt.world)
    check_codec_files(cfg)
    if dataset is None:
        if not cfg.data:
            raise ConfigError("data is empty: list safetensors shards or directories of them")
        dataset = LatentDataset.from_shards(cfg.data)
    check_data(cfg, dataset)
    plan = BatchPlan(len(dataset), cfg.batch_size, cfg.grad_accum, rt.world, cfg.seed)
    flow = cfg.flow()
    context_shape = dataset.item_shape("video_context") or dataset.item_shape("audio_context")
    null_context = empty_prompt_context(cfg, context_shape[0])  # type: ignore[index]
    if null_context is not None:
        null_context = null_context.to(rt.device)
    out = Path(cfg.out_dir)
    root = out / "checkpoints"

    # 2. Model, optimizer, EMA; then the newest valid checkpoint, if any.
    model, trainable = build_model(cfg, rt, initial_state(cfg, rt))
    opt = build_optimizer(model, cfg)
    ema = Ema(model, cfg.ema_decay, warmup=cfg.ema_warmup)
    step, history = resume(root, cfg, rt, model, opt, ema) if cfg.resume else (0, [])
    if rt.is_main:
        log.info("stage %s: %.3fM trainable parameters; %d ranks on %s; global batch %d "
                 "(%d per rank x %d micro-steps); %d steps/epoch", cfg.stage, trainable / 1e6,
                 rt.world, rt.device, cfg.batch_size, plan.micro_batch, cfg.grad_accum,
                 plan.steps_per_epoch)

    # 3. The loop.
    bar = tqdm(total=cfg.steps, initial=step, unit="step", dynamic_ncols=True,
               disable=not (rt.is_main and cfg.progress))
    rate = None
    while step < cfg.steps:
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        losses = train_step(model, opt, dataset, plan, step, flow, cfg, rt, null_context)
        ema.update(model, step + 1)
        step += 1
        record = {"step": step, "lr": lr, **losses}
        history.append(record)
        now = cfg.batch_size / (time.perf_counter() - t0)
        rate = now if rate is None else 0.9 * rate + 0.1 * now
        shown = {k: f"{v:.4f}" for k, v in losses.items() if v is not None}
        bar.update(1)
        bar.set_postfix(shown | {"samples/s": f"{rate:.2f}"}, refresh=False)  # ETA: tqdm's
        if rt.is_main and (step % cfg.log_every == 0 or step == cfg.steps):
            parts = " ".join(f"{k} {v}" for k, v in shown.items())
            log.info("step %d/%d: %s lr %.3g, %.2f samples/s", step, cfg.steps, parts, lr, rate)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(root, cfg, rt, model, opt, ema, step, history)
        if callback is not None:
            callback(record)
    bar.close()

    # 4. EMA weights as a bundle, and the loss curve.
    bundle = export_bundle(out / "final", cfg, rt, model, ema, step)
    if rt.is_main and history:
        write_curves(out, history)
    rt.barrier()  # every rank returns once all outputs exist
    return bundle


def main(argv: list[str] | None = None) -> int:
    """`python -m duet.train CONFIG` (also under torchrun). Returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m duet.train",
                                     description="Train a Duet model on precomputed latents.")
    parser.add_argument("config", help="training config (.json or .toml)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--lora", action="store_true",
                        help="train LoRA adapters on init_from (default spec unless the config has a lora table)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (dotted for tables, VALUE in JSON), e.g. "
                             "model.audio.rope_time_scale=1.0; repeatable")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = TrainConfig.from_file(args.config, args.set)
        if args.quiet:
            cfg = dataclasses.replace(cfg, progress=False)
        if args.lora and cfg.lora is None:
            cfg = dataclasses.replace(cfg, lora={})
        bundle = train(cfg)
    except DuetError as e:
        log.error("%s", e)
        return 2
    log.info("model bundle: %s", bundle)
    return 0
