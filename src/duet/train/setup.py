"""Building a training run: the starting weights (a bundle, one per tower, or a seeded
random init), the model with its stage's trainable parameters (sharded when distributed),
AdamW and the EMA of the trainable weights."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from duet.components import build_text_encoder
from duet.config import Preset, TwinConfig
from duet.data.dataset import encode_texts
from duet.errors import CheckpointError, ConfigError, DuetError
from duet.lora import add_lora
from duet.model import TwinModel
from duet.model.alignment import with_alignment_prior
from duet.model.locality import with_locality_prior
from duet.train.config import TrainConfig
from duet.train.model_setup import twin_with
from duet.train.parallel import Runtime, full_tensor, load_model_state, parallelize, shard_like
from duet.train.stages import apply_stage
from duet.weights import BUNDLE_WEIGHTS, check_state_dict, load_into, load_weights, read_config
from duet.weights.inflate import inflate_temporal_patch

log = logging.getLogger(__name__)


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


def _same_but_temporal_patch(saved: Preset, run: TwinConfig) -> bool:
    """True when the bundle's towers, given this run's temporal patch, are this run's:
    `inflate_temporal_patch` converts the patch (and reports it), and `twin_with` derives
    the audio RoPE factor that follows from it, as it does for the run."""
    return twin_with(saved, {"video": {"patch_size": run.video.patch_size}}) == run


def initial_state(cfg: TrainConfig, rt: Runtime) -> dict[str, Tensor]:
    """Starting weights on rank 0 (other ranks get {}): the `init_from` bundle, or each
    tower from its own bundle, or a seeded random init (for towers no bundle gives). The
    bundles' presence and configs are checked on every rank. A video tower trained with a
    shorter temporal patch is inflated to this run's (`duet.weights.inflate`)."""
    twin = cfg.twin()
    sources = cfg.init_from if isinstance(cfg.init_from, dict) else (
        {"": cfg.init_from} if cfg.init_from is not None else {})
    for bundle in sources.values():
        preset, _ = read_config(bundle)
        if not (Path(bundle) / BUNDLE_WEIGHTS).is_file():
            raise CheckpointError(f"init_from: {Path(bundle) / BUNDLE_WEIGHTS} is missing")
        if not _same_but_temporal_patch(preset, twin) and rt.is_main:
            log.warning("init_from %s was saved with another model config; loading its weights "
                        "strictly into this run's model", bundle)
    if not rt.is_main:
        return {}
    patch_t = twin.video.patch_size[0]
    if "" in sources:
        state = inflate_temporal_patch(load_weights(Path(sources[""]) / BUNDLE_WEIGHTS), patch_t)
        return _with_prior(state, cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        state = TwinModel.from_config(twin).state_dict()
    for tower, bundle in sources.items():
        prefix = f"{tower}_model."
        weights = {k: v for k, v in load_weights(Path(bundle) / BUNDLE_WEIGHTS).items()
                   if k.startswith(prefix)}
        weights = inflate_temporal_patch(weights, patch_t)  # a no-op for the audio tower
        unused = sorted(k for k in weights if k not in state)  # e.g. Ovi fusion layers -> bridge model
        if unused:
            log.info("init_from %s: %d %s tensors this model does not have are not used (%s ...)",
                     bundle, len(unused), tower, unused[0])
        state.update({k: v for k, v in weights.items() if k in state})
    return _with_prior(state, cfg)


def _with_prior(state: dict[str, Tensor], cfg: TrainConfig) -> dict[str, Tensor]:
    """The starting weights with the temporal priors the config asks for (a resumed run
    then overwrites them with its checkpoint)."""
    if cfg.alignment_prior > 0:
        state = with_alignment_prior(state, cfg.twin(), cfg.alignment_prior, cfg.alignment_pairs)
    if cfg.video_locality_prior > 0:
        state = with_locality_prior(state, cfg.twin(), cfg.video_locality_prior,
                                    cfg.video_locality_pairs)
    return state


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
    width = cfg.twin().video.text_dim
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
    model = TwinModel.from_config(cfg.twin(), device="meta")
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
        trainable = apply_stage(model, cfg.stage, cfg.freeze, cfg.keep_towers)
        parallelize(model, rt.mesh, cfg)  # type: ignore[arg-type]
        model.to_empty(device=rt.device)
        load_model_state(model, state, rt)  # rank 0's weights, broadcast and sharded
    else:
        load_into(model, state, source=_source(cfg), dtype=torch.float32)
        trainable = apply_stage(model, cfg.stage, cfg.freeze, cfg.keep_towers)
        spec = cfg.lora_spec()
        if spec is not None:  # base weights frozen; only the injected adapters train
            layers = add_lora(model, spec)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            log.info("LoRA rank %d on %d layers (%s)", spec.rank, layers, ", ".join(spec.targets))
        model.to(rt.device)
        model.gradient_checkpointing = cfg.gradient_checkpointing
    return model, trainable
