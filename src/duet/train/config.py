"""`TrainConfig`: everything that defines a training run, loaded from JSON or TOML.

Every key is checked before any compute: unknown keys, wrong types, impossible values and
model shapes (e.g. dim not divisible by num_heads) raise `ConfigError` naming the key. The
shapes that depend on the data (latent sizes vs patch size, context width) and on the world
size (batch divisibility) are checked by `check_data` and `check_batch`, which the trainer
runs before it builds the model.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from duet.config import Preset, TowerConfig, TwinConfig
from duet.config_files import apply_overrides, check_keys, read_config_file
from duet.errors import ConfigError
from duet.lora import LoraSpec
from duet.model.alignment import check_alignment
from duet.model.locality import check_locality
from duet.presets import codecs_with
from duet.train.model_setup import preset_with, twin_with
from duet.train.objectives import SAMPLERS, FlowConfig
from duet.train.stages import STAGES, Stage, check_towers, get_stage
from duet.weights import codec_files, preset_or_bundle

if typing.TYPE_CHECKING:
    from duet.train.data import LatentDataset

@dataclass(frozen=True)
class TrainConfig:
    """A training run. `None` means "the stage's default" where noted."""

    # model
    preset: str = "tiny"  # base preset, or a bundle directory: its model shape, media rates
    # and codecs go in the bundle
    # TowerConfig overrides: top-level keys apply to both towers, "video"/"audio" sub-dicts to one
    model: dict[str, Any] = field(default_factory=dict)
    # codec spec overrides per kind, written into the bundle (presets.codecs_with), e.g.
    # {"video": {"weights": FILE}} for data built with `duet data build --video-codec-weights`
    codecs: dict[str, Any] = field(default_factory=dict)
    # bundle directory with starting weights (strictly loaded), or {"video": dir, "audio": dir}
    # to take each tower from its own bundle (Ovi: video from Wan, audio from its stage 1)
    init_from: str | dict[str, str] | None = None
    stage: str = "full"  # audio | video | fusion | full (see duet.train.stages)
    freeze: tuple[str, ...] = ()  # fnmatch patterns of parameter names frozen on top of the stage's
    # towers ("video", "audio") whose own layers stay as loaded: only their fusion layers train
    keep_towers: tuple[str, ...] = ()
    # temporal-alignment prior set on the cross-attention at the start (duet.model.alignment):
    # the QK-norm gain on the reserved RoPE pairs; 0 leaves the starting weights as they are
    alignment_prior: float = 0.0
    alignment_pairs: int = 4  # fastest temporal RoPE pairs per head it reserves
    # temporal-locality prior set on the video self-attention at the start, for a tower
    # trained on single frames (duet.model.locality): QK-norm gain on the reserved pairs
    video_locality_prior: float = 0.0
    video_locality_pairs: int = 4
    # LoRA fine-tuning (duet.lora.LoraSpec keys: rank, alpha, targets, towers, dropout,
    # blocks); None trains the stage's parameters themselves. Needs init_from.
    lora: dict[str, Any] | None = None
    # data
    data: tuple[str, ...] = ()  # safetensors shards, or directories of them (see train.data)
    batch_size: int = 8  # global items per optimizer step (all ranks, all micro-steps)
    grad_accum: int = 1  # micro-steps per optimizer step
    # optimisation
    steps: int = 1000
    lr: float | None = None  # peak learning rate (None: the stage's)
    min_lr: float | None = None  # end of the cosine decay (None: lr / 10)
    warmup_steps: int = 100
    betas: tuple[float, float] | None = None  # AdamW betas (None: the stage's)
    eps: float = 1e-8
    weight_decay: float = 0.01  # on >= 2-D parameters only
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    ema_decay: float = 0.999  # EMA of the trainable weights, exported at the end
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) at step n
    # objective
    timestep_sampler: str = "uniform"  # uniform | logit_normal | shifted
    logit_mean: float = 0.0
    logit_std: float = 1.0
    time_shift: float = 1.0  # for "shifted"
    independent_t: bool = False  # one t per modality instead of one shared t per item
    clean_partner: float = 0.0  # fraction of items with one modality held clean (v2a / a2v)
    # fraction of items trained with the empty prompt (both towers), so that CFG has an
    # unconditional prediction; needs the preset's text encoder to encode ""
    text_dropout: float = 0.0
    # cheaper video steps (video-only stages): a random window of this many latent frames per
    # item (1: single pictures, image pretraining; None: whole clips), and one t per latent
    # frame (Diffusion Forcing)
    video_frames: int | None = None
    per_frame_t: bool = False
    # long clips: the fraction of items whose first 1..video_prefix_frames latent frames are
    # held clean, as the next chunk of a long clip holds the previous one's last frames
    video_prefix: float = 0.0
    video_prefix_frames: int = 6
    # velocity | x0, or per modality {"video": "x0"} (see duet.train.objectives.FlowConfig)
    loss_weighting: str | dict[str, str] = "velocity"
    video_channel_weights: tuple[float, ...] | None = None  # loss weight per video latent channel
    video_motion_weight: float = 0.0  # extra loss weight on what moves (FlowConfig; 0: off)
    video_temporal_weight: float = 0.0  # weight of the error's frame-to-frame change (FlowConfig)
    video_weight: float | None = None  # loss weights (None: the stage's)
    audio_weight: float | None = None
    # numerics and parallelism
    bf16: bool = False  # bf16 autocast (+ bf16 FSDP compute params); master weights stay fp32
    gradient_checkpointing: bool = False  # recompute each block pair in the backward pass
    fsdp_unit: Literal["block", "pair"] = "block"  # fully_shard each block, or each block pair
    device: str | None = None  # None: the accelerator if there is one, else cpu
    seed: int = 0
    # output
    out_dir: str = "runs/duet"
    checkpoint_every: int = 500  # steps between checkpoints (also saved at the last step)
    keep_checkpoints: int = 3  # >= 2 leaves a fallback if the newest one is found corrupt
    log_every: int = 10
    progress: bool = True  # tqdm bar on rank 0
    export_dtype: Literal["float32", "bfloat16"] = "float32"
    resume: bool = True  # continue from the newest valid checkpoint in out_dir

    def __post_init__(self) -> None:
        _check_types(self)
        positive = ("batch_size", "grad_accum", "steps", "checkpoint_every", "keep_checkpoints",
                    "log_every")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        for key in ("lr", "min_lr", "eps", "weight_decay", "grad_clip"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ConfigError(f"{key} must be >= 0, got {value}")
        if self.betas is not None and not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas must be in [0, 1), got {self.betas}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"batch_size {self.batch_size} is not divisible by grad_accum "
                              f"{self.grad_accum}")
        if self.stage not in STAGES:
            raise ConfigError(f"stage {self.stage!r} is unknown; choose one of {sorted(STAGES)}")
        check_towers(self.keep_towers)
        if self.timestep_sampler not in SAMPLERS:
            raise ConfigError(f"timestep_sampler {self.timestep_sampler!r} is unknown; "
                              f"choose one of {list(SAMPLERS)}")
        self.flow()  # checks the objective's values
        if (self.video_frames is not None or self.per_frame_t) and (
                self.get_stage().modalities != ("video",)):
            raise ConfigError(f"video_frames and per_frame_t train the video tower alone; stage "
                              f"{self.stage!r} feeds {list(self.get_stage().modalities)} "
                              "(use stage 'video')")
        twin = self.twin()  # checks the model shape
        if isinstance(self.init_from, dict):
            bad = sorted(set(self.init_from) - {"video", "audio"})
            if bad or not self.init_from or not all(isinstance(v, str) for v in self.init_from.values()):
                raise ConfigError(f"init_from as a table maps 'video' and/or 'audio' to bundle "
                                  f"directories, got {self.init_from!r}")
        if self.alignment_prior < 0:
            raise ConfigError(f"alignment_prior must be >= 0 (0: off), got {self.alignment_prior}")
        if self.alignment_prior > 0:
            check_alignment(twin, self.alignment_prior, self.alignment_pairs)
        if self.video_locality_prior < 0:
            raise ConfigError(f"video_locality_prior must be >= 0 (0: off), got "
                              f"{self.video_locality_prior}")
        if self.video_locality_prior > 0:
            check_locality(twin, self.video_locality_prior, self.video_locality_pairs)
        if self.lora is not None:
            self.lora_spec()
            if self.init_from is None:
                raise ConfigError("lora fine-tunes a trained model: set init_from to its bundle")

    # ---- loading ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        check_keys(cls, d, "config")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        if isinstance(d.get("data"), str):
            d["data"] = (d["data"],)
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
        """Read a .json or .toml file (relative `data`/`out_dir`/`init_from` stay as written),
        then apply `KEY=VALUE` overrides (see `apply_overrides`)."""
        return cls.from_dict(apply_overrides(read_config_file(path, "config"), overrides))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ---- derived ----------------------------------------------------------------------
    def get_stage(self) -> Stage:
        return get_stage(self.stage)

    def lora_spec(self) -> LoraSpec | None:
        """The LoRA adapters to train, or None (ConfigError names a bad key)."""
        if self.lora is None:
            return None
        try:
            return LoraSpec.from_dict(self.lora)
        except TypeError as e:
            raise ConfigError(f"lora: {e}") from None
        except ConfigError as e:
            raise ConfigError(f"lora: {e}") from None

    def flow(self) -> FlowConfig:
        st = self.get_stage()
        return FlowConfig(
            video_weight=st.video_weight if self.video_weight is None else self.video_weight,
            audio_weight=st.audio_weight if self.audio_weight is None else self.audio_weight,
            sampler=self.timestep_sampler, logit_mean=self.logit_mean, logit_std=self.logit_std,
            shift=self.time_shift, independent_t=self.independent_t,
            clean_partner=self.clean_partner, text_dropout=self.text_dropout,
            video_frames=self.video_frames, per_frame_t=self.per_frame_t,
            video_prefix=self.video_prefix, video_prefix_frames=self.video_prefix_frames,
            loss_weighting=self.loss_weighting, video_channel_weights=self.video_channel_weights,
            video_motion_weight=self.video_motion_weight,
            video_temporal_weight=self.video_temporal_weight,
            video_patch=self.twin().video.patch_size)

    @property
    def peak_lr(self) -> float:
        return self.get_stage().lr if self.lr is None else self.lr

    @property
    def final_lr(self) -> float:
        return self.peak_lr / 10 if self.min_lr is None else self.min_lr

    @property
    def adam_betas(self) -> tuple[float, float]:
        return self.get_stage().betas if self.betas is None else self.betas

    def base_preset(self) -> Preset:
        return codecs_with(preset_or_bundle(self.preset), self.codecs)

    def twin(self) -> TwinConfig:
        """The model this run trains: the base preset's with the `model` overrides."""
        return twin_with(self.base_preset(), self.model)

    def bundle_preset(self) -> Preset:
        """The preset written into the run's bundle: the base preset with this model."""
        return preset_with(self.base_preset(), self.model)


def check_batch(cfg: TrainConfig, world: int) -> None:
    """The global batch must split evenly over ranks and micro-steps."""
    if cfg.batch_size % (world * cfg.grad_accum):
        raise ConfigError(
            f"batch_size {cfg.batch_size} is not divisible by world size {world} x grad_accum "
            f"{cfg.grad_accum}; pick a multiple of {world * cfg.grad_accum}")


def check_data(cfg: TrainConfig, dataset: LatentDataset) -> None:
    """The data must fit the model: channels, patch divisibility, context width and length."""
    twin, stage = cfg.twin(), cfg.get_stage()
    for m in stage.modalities:
        if dataset.item_shape(m) is None:
            raise ConfigError(f"data: stage {stage.name!r} needs {m} latents but the dataset has "
                              f"only {list(dataset.modalities)}")
    for m in stage.modalities:
        tower: TowerConfig = getattr(twin, m)
        shape = dataset.item_shape(m)
        assert shape is not None
        if m == "video":
            ok = len(shape) == 4 and shape[0] == tower.in_dim
            if ok and cfg.video_frames is not None and cfg.video_frames > shape[1]:
                raise ConfigError(f"data: video_frames {cfg.video_frames} is more than the "
                                  f"clips' {shape[1]} latent frames")
            if ok and any(n % p for n, p in zip(shape[2:], tower.patch_size[1:])):
                raise ConfigError(
                    f"data: video latents (H, W) = {shape[2:]} are not divisible by "
                    f"model.patch_size {tower.patch_size[1:]}")
            weights = cfg.video_channel_weights
            if weights is not None and len(weights) != tower.out_dim:
                raise ConfigError(f"video_channel_weights has {len(weights)} entries; the video "
                                  f"tower predicts {tower.out_dim} channels")
            want = f"[C={tower.in_dim}, F, H, W]"
        else:
            ok = len(shape) == 2 and shape[1] == tower.in_dim
            want = f"[L, C={tower.in_dim}]"
        if not ok:
            raise ConfigError(f"data: {m} items are {list(shape)}, but model.{m}.in_dim "
                              f"{tower.in_dim} needs {want}")
        ctx = dataset.item_shape(f"{m}_context")
        assert ctx is not None
        if len(ctx) != 2 or ctx[1] != tower.text_dim:
            raise ConfigError(f"data: {m}_context items are {list(ctx)}, but model.text_dim is "
                              f"{tower.text_dim}")
        if ctx[0] > tower.text_len:
            raise ConfigError(f"data: {m}_context has {ctx[0]} tokens, more than model.text_len "
                              f"{tower.text_len}")


def check_codec_files(cfg: TrainConfig) -> None:
    """A file the run's `codecs` names is copied into every bundle: it must exist before any
    step is spent, not only at the export (checked at the start of a run, not when a config
    loads, so that a recipe's configs load before its codec is trained)."""
    for kind, key, path in codec_files(cfg.codecs):
        if not path.exists():
            raise ConfigError(f"codecs.{kind}.{key} = {str(path)!r} does not exist; point it at "
                              "the trained file (e.g. from `duet codec train`)")


def _check_types(cfg: TrainConfig) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if not _matches(value, hints[f.name]):
            raise ConfigError(f"{f.name} = {value!r} has the wrong type; expected {hints[f.name]}")


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is Literal:
        return value in args
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
    if origin is dict:
        return isinstance(value, dict)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)
