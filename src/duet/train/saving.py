"""What a training run writes and reads back: atomic checkpoints (sharded by every rank
when distributed), resumption from the newest valid one, the final bundle and the loss
curves."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from duet.lora import save_adapter
from duet.train import checkpoint
from duet.train.config import TrainConfig
from duet.train.parallel import (Runtime, full_tensor, load_model_state, load_optimizer_state,
                                 model_state, optimizer_state)
from duet.train.setup import Ema
from duet.weights import BUNDLE_WEIGHTS, bundle_codec_files, save_weights, write_config

log = logging.getLogger(__name__)

# Keys that may change between a run and its resumption without a warning.
RESUMABLE_CHANGES = {"steps", "out_dir", "progress", "log_every", "checkpoint_every",
                     "keep_checkpoints", "resume", "data", "device", "export_dtype"}


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
        preset = bundle_codec_files(cfg.bundle_preset(), directory, cfg.codecs)
        write_config(directory, preset, {"random_init": False, "note": note})
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
