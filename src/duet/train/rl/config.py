"""`RLConfig`: everything that defines an RL run, loaded from JSON or TOML.

The model, optimisation, parallelism and output keys mean what they mean in `TrainConfig`
(same names), and the run reuses the trainer's pieces through `train_config()`: model
building (full weights or LoRA, FSDP2), AdamW, checkpoints with exact resume and the bundle
export. The rest configures rollouts, rewards and the DiffusionNFT/OmniNFT loss. Every key
is checked before any compute; errors name the key.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from duet.config import Preset
from duet.config_files import apply_overrides, check_keys, read_config_file
from duet.data.world import HELDOUT_SEED_START, KINDS
from duet.errors import ConfigError
from duet.presets import codecs_with
from duet.sampling.solvers import get_solver
from duet.train.config import TrainConfig, _matches
from duet.train.rl.rewards import get_reward
from duet.weights import preset_or_bundle


@dataclass(frozen=True)
class RLConfig:
    """An RL fine-tuning run (OmniNFT on DiffusionNFT). `None` means "the preset's"."""

    # model (as in TrainConfig)
    preset: str = "demo"  # or a bundle directory: the shape and codecs of the bundle fine-tuned
    model: dict[str, Any] = field(default_factory=dict)  # TowerConfig overrides
    codecs: dict[str, Any] = field(default_factory=dict)  # codec spec overrides (as in TrainConfig)
    init_from: str | None = None  # bundle directory to fine-tune (None: seeded random init)
    stage: str = "full"  # which parameters train (duet.train.stages)
    freeze: tuple[str, ...] = ()
    keep_towers: tuple[str, ...] = ()  # towers whose own layers stay frozen (TrainConfig)
    lora: dict[str, Any] | None = None  # LoRA spec (duet.lora.LoraSpec keys); one process
    # prompts: `prompts`, or else captions of world clips world_seed .. + world_prompts - 1
    prompts: tuple[str, ...] = ()
    world_prompts: int = 256
    world_seed: int = 0  # training seeds must stay below the held-out split (1,000,000)
    world_kinds: tuple[str, ...] = KINDS
    prompts_per_step: int = 2  # prompt groups per optimizer step (global)
    group_size: int = 8  # samples per prompt (G)
    # rollouts (the project's sampler and guidance)
    sampling_steps: int = 10
    shift: float | None = None
    solver: str | None = None
    video_guidance: float | None = None
    audio_guidance: float | None = None
    frames: int | None = None  # clip length in video frames
    attention_window: tuple[float, float] = (0.5, 0.9)  # steps whose attention maps count
    # rewards: name -> weight (see duet.train.rl.rewards; "module:function" for your own)
    rewards: dict[str, float] = field(default_factory=lambda: {
        "sync": 1.0, "video_adherence": 1.0, "audio_adherence": 1.0})
    # DiffusionNFT (official defaults)
    beta: float = 1.0  # v+ = (1 - beta) v_old + beta v_theta
    adv_clip_max: float = 5.0  # A_max
    kl_weight: float = 1e-4  # kl_weight * ||v_theta - v_ref||^2
    global_std: bool = True  # advantages: group mean, std over the whole batch
    timestep_fraction: float = 0.5  # train on the noisiest fraction of the sampling grid
    old_decay_rate: float = 0.001  # old policy EMA decay min(rate * step, max)
    old_decay_max: float = 0.5
    # OmniNFT (each switch off is an ablation)
    advantage_routing: bool = True
    gradient_surgery: bool = True
    surgery_scales: tuple[float, ...] | None = None  # per cross-modal layer (None: 0/0.1/1/0.3)
    region_reweighting: bool = True
    region_weight_max: float = 1.5  # w_max at the end of its 1 -> w_max ramp
    # optimisation (as in TrainConfig; constant LR after warmup)
    steps: int = 100
    lr: float = 1e-5  # full weights; LoRA adapters take more (DiffusionNFT: 3e-4)
    warmup_steps: int = 0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    micro_batch: int = 8  # items per model call (sampling and training)
    # numerics, parallelism, output (as in TrainConfig)
    bf16: bool = False
    reward_bf16: bool = False  # decode rollouts for the rewards under bf16 autocast (CPU: ~2x)
    gradient_checkpointing: bool = False
    fsdp_unit: Literal["block", "pair"] = "block"
    device: str | None = None
    seed: int = 0
    out_dir: str = "runs/rl"
    checkpoint_every: int = 10
    keep_checkpoints: int = 3
    log_every: int = 1
    progress: bool = True
    export_dtype: Literal["float32", "bfloat16"] = "float32"
    resume: bool = True

    def __post_init__(self) -> None:
        _check_types(self)
        for key in ("world_prompts", "prompts_per_step", "group_size", "sampling_steps",
                    "micro_batch", "steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.group_size < 2:
            raise ConfigError(f"group_size must be >= 2 (advantages compare samples of one "
                              f"prompt), got {self.group_size}")
        last = self.world_seed + self.world_prompts - 1
        if not self.prompts and not 0 <= self.world_seed <= last < HELDOUT_SEED_START:
            raise ConfigError(f"world prompts use seeds {self.world_seed}.."
                              f"{self.world_seed + self.world_prompts - 1}, which must stay below "
                              f"the held-out split {HELDOUT_SEED_START}")
        if self.prompts_per_step > self.pool_size:
            raise ConfigError(f"prompts_per_step {self.prompts_per_step} is more than the "
                              f"{self.pool_size} prompts available")
        unknown = sorted(set(self.world_kinds) - set(KINDS))
        if unknown or not self.world_kinds:
            raise ConfigError(f"world_kinds must be a non-empty subset of {list(KINDS)}, got "
                              f"{list(self.world_kinds)}")
        if self.solver is not None:
            get_solver(self.solver)
        stride = self.base_preset().media.video_stride[0]
        if self.frames is not None and (self.frames < 2 or (self.frames - 1) % stride):
            raise ConfigError(f"frames must be {stride}·k + 1 >= 2 for preset {self.preset!r} "
                              f"(its video codec keeps every {stride}th frame), got {self.frames}")
        lo, hi = self.attention_window
        if not 0.0 <= lo < hi <= 1.0:
            raise ConfigError(f"attention_window must be fractions 0 <= lo < hi <= 1, got "
                              f"{[lo, hi]}")
        if not self.rewards:
            raise ConfigError("rewards is empty: name at least one reward and its weight")
        for name, weight in self.rewards.items():
            get_reward(name)  # ConfigError for an unknown one
            if not (isinstance(weight, (int, float)) and weight >= 0):
                raise ConfigError(f"rewards.{name} must be a weight >= 0, got {weight!r}")
        for key in ("beta", "adv_clip_max", "region_weight_max"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)}")
        if self.region_weight_max < 1:
            raise ConfigError(f"region_weight_max must be >= 1 (1: no reweighting), got "
                              f"{self.region_weight_max}")
        if self.kl_weight < 0 or not 0 <= self.old_decay_rate or not 0 <= self.old_decay_max < 1:
            raise ConfigError("kl_weight and old_decay_rate must be >= 0 and old_decay_max in "
                              f"[0, 1), got {self.kl_weight}, {self.old_decay_rate}, "
                              f"{self.old_decay_max}")
        if not 0 < self.timestep_fraction <= 1:
            raise ConfigError(f"timestep_fraction must be in (0, 1], got {self.timestep_fraction}")
        self.train_config()  # model shape, optimizer and output keys, checked by TrainConfig

    # ---- loading ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RLConfig:
        check_keys(cls, d, "RL config")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @classmethod
    def from_file(cls, path: str | Path, overrides: Sequence[str] = ()) -> RLConfig:
        """Read a .json or .toml file, then apply `KEY=VALUE` overrides (`apply_overrides`)."""
        return cls.from_dict(apply_overrides(read_config_file(path, "RL config"), overrides))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ---- derived ----------------------------------------------------------------------
    @property
    def pool_size(self) -> int:
        return len(self.prompts) or self.world_prompts

    @property
    def batch_size(self) -> int:
        """Samples per optimizer step (all ranks)."""
        return self.prompts_per_step * self.group_size

    def base_preset(self) -> Preset:
        return codecs_with(preset_or_bundle(self.preset), self.codecs)

    def train_config(self) -> TrainConfig:
        """The trainer's view of this run: model, optimizer, parallelism and output keys.
        Its EMA slot carries the old policy (decay set per step), its LR is constant after
        warmup; `TrainConfig` checks every value and names the key."""
        return TrainConfig(
            preset=self.preset, model=self.model, codecs=self.codecs, init_from=self.init_from,
            stage=self.stage, freeze=self.freeze, keep_towers=self.keep_towers, lora=self.lora,
            batch_size=self.batch_size, steps=self.steps,
            lr=self.lr, min_lr=self.lr, warmup_steps=self.warmup_steps, betas=self.betas,
            eps=self.eps, weight_decay=self.weight_decay, grad_clip=self.grad_clip,
            ema_decay=0.0, bf16=self.bf16, gradient_checkpointing=self.gradient_checkpointing,
            fsdp_unit=self.fsdp_unit, device=self.device, seed=self.seed, out_dir=self.out_dir,
            checkpoint_every=self.checkpoint_every, keep_checkpoints=self.keep_checkpoints,
            log_every=self.log_every, progress=self.progress, export_dtype=self.export_dtype,
            resume=self.resume)


def _check_types(cfg: RLConfig) -> None:
    hints = typing.get_type_hints(RLConfig)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if not _matches(value, hints[f.name]):
            raise ConfigError(f"{f.name} = {value!r} has the wrong type; expected {hints[f.name]}")
