"""The training loop: flow matching on precomputed latents, one process or many (torchrun +
FSDP2), with AdamW, warmup + cosine LR, gradient clipping, EMA, gradient accumulation,
atomic checkpoints with exact resume, and a final model bundle.

    python -m duet.train CONFIG.json                               # one process
    torchrun --nproc_per_node 8 -m duet.train CONFIG.json          # FSDP2 over 8 ranks

Reproducibility: the items of step k and the noise/timesteps of each item are pure
functions of (seed, k, position in the global batch), so a run resumed from a checkpoint
repeats the uninterrupted run bit for bit (on the same device), and the same global batch
gives the same losses whatever the number of ranks or micro-steps.
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
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from duet.components import build_text_encoder
from duet.data.dataset import encode_texts
from duet.errors import CheckpointError, ConfigError, DuetError
from duet.lora import add_lora, save_adapter
from duet.model import TwinModel
from duet.model.alignment import with_alignment_prior
from duet.train import checkpoint
from duet.train.config import TrainConfig, check_batch, check_data
from duet.train.data import BatchPlan, LatentDataset, mix_seed
from duet.train.model_setup import bundle_preset, run_twin
from duet.train.objectives import FlowConfig, flow_matching_loss
from duet.train.parallel import (Runtime, autocast, full_tensor, init_runtime, load_model_state,
                                 load_optimizer_state, model_state, optimizer_state, parallelize,
                                 shard_like)
from duet.train.stages import apply_stage
from duet.weights import (BUNDLE_WEIGHTS, check_state_dict, load_into, load_weights, read_config,
                          save_weights, write_config)

log = logging.getLogger(__name__)

Callback = Callable[[dict[str, Any]], None]
# Keys that may change between a run and its resumption without a warning.
RESUMABLE_CHANGES = {"steps", "out_dir", "progress", "log_every", "checkpoint_every",
                     "keep_checkpoints", "resume", "data", "device", "export_dtype"}


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


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; weight decay only on >= 2-D ones (not norms, biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.peak_lr,
                             betas=cfg.adam_betas, eps=cfg.eps, foreach=True)


class Ema:
    """Exponential moving average of the trainable parameters, laid out (sharded) like them.

    With `warmup`, update n uses min(decay, (1 + n) / (10 + n)): a constant 0.999 would still
    hold 30 % of the starting weights after 1,200 steps, so a short run would export mostly
    its initialisation.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False) -> None:
        self.decay = decay
        self.warmup = warmup
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        """Move toward the weights after optimizer step `step` (1-based; used by warmup)."""
        decay = self.decay
        if self.warmup and step is not None:
            decay = min(decay, (1 + step) / (10 + step))
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach(), 1 - decay)

    def full_state(self) -> dict[str, Tensor]:
        """Unsharded CPU copies (a collective under FSDP: every rank must call)."""
        return {name: full_tensor(t) for name, t in self.shadow.items()}

    def load_full_state(self, state: dict[str, Tensor] | None) -> None:
        """Load rank 0's full state (other ranks pass None when distributed)."""
        if state is not None and set(state) != set(self.shadow):
            raise CheckpointError("the checkpoint's EMA covers other parameters than this stage "
                                  "trains; resume with the stage that wrote it")
        for name, t in self.shadow.items():
            self.shadow[name] = shard_like(None if state is None else state[name], t)


# ---- setup -------------------------------------------------------------------------------
def initial_state(cfg: TrainConfig, rt: Runtime) -> dict[str, Tensor]:
    """Starting weights on rank 0 (other ranks get {}): the `init_from` bundle, or each
    tower from its own bundle, or a seeded random init (for towers no bundle gives). The
    bundles' presence and configs are checked on every rank."""
    twin = run_twin(cfg)
    sources = cfg.init_from if isinstance(cfg.init_from, dict) else (
        {"": cfg.init_from} if cfg.init_from is not None else {})
    for bundle in sources.values():
        preset, _ = read_config(bundle)
        if not (Path(bundle) / BUNDLE_WEIGHTS).is_file():
            raise CheckpointError(f"init_from: {Path(bundle) / BUNDLE_WEIGHTS} is missing")
        if preset.model != twin and rt.is_main:
            log.warning("init_from %s was saved with another model config; loading its weights "
                        "strictly into this run's model", bundle)
    if not rt.is_main:
        return {}
    if "" in sources:
        return _with_prior(load_weights(Path(sources[""]) / BUNDLE_WEIGHTS), cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        state = TwinModel.from_config(twin).state_dict()
    for tower, bundle in sources.items():
        prefix = f"{tower}_model."
        weights = {k: v for k, v in load_weights(Path(bundle) / BUNDLE_WEIGHTS).items()
                   if k.startswith(prefix)}
        unused = sorted(k for k in weights if k not in state)  # e.g. Ovi fusion layers -> bridge model
        if unused:
            log.info("init_from %s: %d %s tensors this model does not have are not used (%s ...)",
                     bundle, len(unused), tower, unused[0])
        state.update({k: v for k, v in weights.items() if k in state})
    return _with_prior(state, cfg)


def _with_prior(state: dict[str, Tensor], cfg: TrainConfig) -> dict[str, Tensor]:
    """The starting weights with the temporal-alignment prior when the config asks for it
    (a resumed run then overwrites them with its checkpoint)."""
    if cfg.alignment_prior == 0:
        return state
    return with_alignment_prior(state, run_twin(cfg), cfg.alignment_prior, cfg.alignment_pairs)


def empty_prompt_context(cfg: TrainConfig, text_len: int) -> Tensor | None:
    """The empty prompt's context [text_len, D], encoded by the preset's own text encoder as
    the shards' contexts were (what `text_dropout` items see); None without text_dropout."""
    if cfg.text_dropout == 0:
        return None
    try:
        null = encode_texts(build_text_encoder(cfg.base_preset()), [""], text_len)[0]
    except DuetError as e:
        raise ConfigError(f"text_dropout encodes the empty prompt with the preset's text encoder "
                          f"(codecs.text of {cfg.preset!r}), which failed: {e}") from None
    width = run_twin(cfg).video.text_dim
    if null.shape[-1] != width:
        raise ConfigError(f"text_dropout: the preset's text encoder gives {null.shape[-1]}-d "
                          f"states, the towers take {width}")
    return null


def _source(cfg: TrainConfig) -> str:
    """Where the starting weights come from, for error messages."""
    if isinstance(cfg.init_from, dict):
        return ", ".join(f"{k}: {v}" for k, v in cfg.init_from.items())
    return cfg.init_from or "random init"


def build_model(cfg: TrainConfig, rt: Runtime, state: dict[str, Tensor]) -> tuple[nn.Module, int]:
    """The model on rt.device with the stage's trainable flags, sharded when distributed."""
    model = TwinModel.from_config(run_twin(cfg), device="meta")
    problem = None
    if rt.is_main:  # every missing, unexpected or mis-shaped key, before anything is loaded
        try:
            check_state_dict(model, state, _source(cfg))
        except CheckpointError as e:
            problem = str(e)
    problem = rt.broadcast(problem)
    if problem is not None:
        raise CheckpointError(problem)
    if rt.distributed:
        if cfg.lora is not None:
            raise ConfigError("lora training runs in one process for now; drop torchrun")
        trainable = apply_stage(model, cfg.stage, cfg.freeze)
        parallelize(model, rt.mesh, cfg)  # type: ignore[arg-type]
        model.to_empty(device=rt.device)
        load_model_state(model, state, rt)  # rank 0's weights, broadcast and sharded
    else:
        load_into(model, state, source=_source(cfg), dtype=torch.float32)
        trainable = apply_stage(model, cfg.stage, cfg.freeze)
        spec = cfg.lora_spec()
        if spec is not None:  # base weights frozen; only the injected adapters train
            layers = add_lora(model, spec)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            log.info("LoRA rank %d on %d layers (%s)", spec.rank, layers, ", ".join(spec.targets))
        model.to(rt.device)
        model.gradient_checkpointing = cfg.gradient_checkpointing
    return model, trainable


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


# ---- checkpoints -----------------------------------------------------------------------
def save_checkpoint(root: Path, cfg: TrainConfig, rt: Runtime, model: nn.Module,
                    opt: torch.optim.Optimizer, ema: Ema, step: int,
                    history: list[dict[str, Any]]) -> None:
    """Write `root/step_N`: sharded by every rank when distributed (no full state anywhere);
    alone, each full state in turn."""
    trainer = {"step": step, "data_position": step, "samples_seen": step * cfg.batch_size,
               "world_size": rt.world, "history": history, "config": cfg.to_dict()}
    if rt.distributed:
        folder = checkpoint.save_sharded(root, step, rt, model, opt, ema.shadow, trainer,
                                         cfg.keep_checkpoints)
        if rt.is_main:
            log.info("saved checkpoint %s", folder)
        return
    writer = checkpoint.Writer(root, step)
    writer.weights("model", model_state(model))
    writer.weights("ema", ema.full_state())
    writer.torch("optimizer", optimizer_state(model, opt))
    writer.torch("rng", rt.gather(checkpoint.rng_state(rt.device)))
    writer.json("trainer", trainer)
    log.info("saved checkpoint %s", writer.commit(cfg.keep_checkpoints))


def resume(root: Path, cfg: TrainConfig, rt: Runtime, model: nn.Module,
           opt: torch.optim.Optimizer, ema: Ema) -> tuple[int, list[dict[str, Any]]]:
    """Load the newest valid checkpoint under `root`; (step, history), or (0, []) if none.

    Each rank reads its shards of a sharded checkpoint; of a full one, rank 0 reads each part
    and broadcasts it. The data position is the step itself (the batches and noise of step k
    depend only on the seed and k)."""
    if rt.is_main:
        checkpoint.clean_temporaries(root)
    folder = checkpoint.latest_valid(root, rt if rt.distributed else None)
    if folder is None:
        return 0, []
    path, main = folder, rt.is_main
    if checkpoint.is_sharded(path):
        checkpoint.load_sharded(path, model, opt, ema.shadow)
    else:
        load_model_state(model, checkpoint.read_model(path, model, rt), rt)
        ema.load_full_state(checkpoint.read_weights(path, "ema") if main else None)
        load_optimizer_state(model, opt, checkpoint.read_torch(path, "optimizer") if main else {}, rt)
    small = (checkpoint.read_json(path, "trainer"), checkpoint.read_torch(path, "rng")) if main else None
    trainer, rngs = rt.broadcast(small)
    if len(rngs) == rt.world:
        checkpoint.set_rng_state(rngs[rt.rank], rt.device)
    elif main:
        log.warning("checkpoint was written by %d ranks, this run has %d: RNG states not restored "
                    "(the data order and noise do not depend on them)", len(rngs), rt.world)
    if main:
        old, new = trainer.get("config", {}), _jsonable(cfg.to_dict())
        changed = sorted(k for k in new if k not in RESUMABLE_CHANGES and k in old and old[k] != new[k])
        if changed:
            log.warning("resuming with changed config keys %s; the run is no longer one run", changed)
        log.info("resumed from %s (step %d)", folder, trainer["step"])
    return int(trainer["step"]), list(trainer["history"])


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v))


# ---- the end of a run --------------------------------------------------------------------
def export_bundle(directory: Path, cfg: TrainConfig, rt: Runtime, model: nn.Module, ema: Ema,
                  step: int) -> Path:
    """EMA weights (frozen parameters as they are) as a model bundle that
    `DuetPipeline.from_pretrained(directory)` loads: config.json + model.safetensors; with
    LoRA, the EMA adapters alone (duet.lora: adapter.safetensors + adapter.json).
    Gathered tensor by tensor and cast on the fly, so rank 0 holds one export-dtype copy."""
    dtype = getattr(torch, cfg.export_dtype)
    spec = cfg.lora_spec()
    if spec is not None:  # an adapter, not a model: the base bundle stays as it is
        if rt.is_main:
            save_adapter(directory, model, spec, values=ema.shadow, dtype=dtype,
                         note=f"LoRA on {cfg.init_from}: stage {cfg.stage}, {step} steps, EMA "
                              f"decay {cfg.ema_decay}")
            log.info("exported adapter %s", directory)
        rt.barrier()
        return directory
    weights = {}
    for name, t in model.state_dict().items():
        full = full_tensor(ema.shadow.get(name, t))  # a collective for sharded tensors
        if rt.is_main:
            weights[name] = full.to(dtype) if full.is_floating_point() else full
    if rt.is_main:
        save_weights(weights, directory / BUNDLE_WEIGHTS)
        note = (f"trained with duet.train: stage {cfg.stage}, {step} steps, EMA decay "
                f"{cfg.ema_decay}, {cfg.export_dtype}")
        write_config(directory, bundle_preset(cfg), {"random_init": False, "note": note})
        log.info("exported %s", directory)
    rt.barrier()
    return directory


def write_curves(out: Path, history: list[dict[str, Any]]) -> None:
    """losses.csv and loss.png (total and per modality) from the run's history."""
    from duet.train.plot import loss_curve_png

    keys = ["step", "loss", "video", "audio", "lr", "grad_norm"]
    with (out / "losses.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        w.writerows([[r.get(k) for k in keys] for r in history])
    steps = [r["step"] for r in history]
    series = {"total": [r["loss"] for r in history]}
    for m in ("video", "audio"):
        if history and history[0].get(m) is not None:
            series[m] = [r[m] for r in history]
    loss_curve_png(out / "loss.png", steps, series)


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
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = TrainConfig.from_file(args.config)
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
