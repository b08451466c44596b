"""Frozen configs: towers, bridge, media rates, sampler defaults, and the `Preset` that
bundles them (the named presets are in `duet.presets`)."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from duet.errors import ConfigError

Modality = Literal["video", "audio"]


@dataclass(frozen=True)
class TowerConfig:
    """One Wan-structured DiT tower. Field names follow the official `dit/*.json` files."""

    modality: Modality
    dim: int = 3072
    ffn_dim: int = 14336
    freq_dim: int = 256  # size of the sinusoidal timestep embedding
    num_heads: int = 24
    num_layers: int = 30
    in_dim: int = 48  # latent channels in
    out_dim: int = 48  # latent channels out
    text_len: int = 512  # text context is zero-padded to this many rows
    # Mask the padding rows (all-zero context rows) out of the text cross-attention. Off in
    # the official model, whose padded rows take part; with a short caption most rows are
    # padding, and a word that names one object has to outbid all of them for attention.
    text_mask: bool = False
    text_dim: int = 4096  # width of the frozen text encoder's hidden states
    patch_size: tuple[int, ...] = (1, 2, 2)  # video: (t, h, w) Conv3d patch; audio: (1,)
    eps: float = 1e-6
    qk_norm: bool = True
    cross_attn_norm: bool = True  # affine LayerNorm `norm3` before cross-attention
    cross_modal: bool = True  # build the fusion layers (k_fusion, v_fusion, ...)
    # Audio only: multiplies the temporal RoPE frequencies so that audio latent l sits at
    # video latent frame rope_time_scale * l (Ovi: 31 / 157.55 = 0.19676).
    rope_time_scale: float = 1.0
    audio_stem_kernel: int = 7  # audio input embedding: Conv1d kernel of the stem and MLP
    # What the head predicts. "velocity" (Ovi, Wan): eps - x0 directly. "sample": the clean
    # latent x0, returned as the velocity (x_t - x0) / max(t, 0.05), so the sampler, the
    # guidance and the loss are unchanged (JiT's x-prediction with a v-loss).
    prediction: str = "velocity"

    def __post_init__(self) -> None:
        if self.modality not in ("video", "audio"):
            raise ConfigError(f"modality must be 'video' or 'audio', got {self.modality!r}")
        for name in ("dim", "ffn_dim", "freq_dim", "num_heads", "num_layers", "in_dim",
                     "out_dim", "text_len", "text_dim"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"TowerConfig.{name} must be positive, got {getattr(self, name)}")
        if self.dim % self.num_heads:
            raise ConfigError(
                f"dim {self.dim} is not divisible by num_heads {self.num_heads}; "
                "choose num_heads so that dim / num_heads is an integer")
        if self.head_dim % 2 or self.head_dim < 8:
            raise ConfigError(f"head dim {self.head_dim} must be even and >= 8 for RoPE")
        if self.freq_dim % 2:
            raise ConfigError(f"freq_dim must be even, got {self.freq_dim}")
        want = 3 if self.modality == "video" else 1
        if len(self.patch_size) != want:
            raise ConfigError(f"{self.modality} patch_size needs {want} entries, got {self.patch_size}")
        if self.prediction not in ("velocity", "sample"):
            raise ConfigError(f"prediction must be 'velocity' or 'sample', got {self.prediction!r}")
        if self.modality == "audio" and tuple(self.patch_size) != (1,):
            raise ConfigError("the audio tower does not patchify: patch_size must be (1,)")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def audio_stem_hidden(self) -> int:
        """Hidden width of the audio stem's SwiGLU conv MLP: 256 * ceil(floor(8 dim / 3) / 256)."""
        return 256 * math.ceil((8 * self.dim // 3) / 256)


@dataclass(frozen=True)
class BridgeConfig:
    """MOVA's Bridge: towers of different width and depth exchange hidden states at a few
    interaction layers through two cross-attention blocks (audio -> video, video -> audio).

    layers: video block indices; before video block i runs, the bridge reads the video
        state and the audio state after audio block `i * La // Lv` - 1 (the audio tower has
        run the same fraction of its depth) and adds one residual update to each.
    dim, num_heads: the bridge attention's width (projections map each tower's width to it
        and back; 0 = the audio tower's width) and heads.
    rope: the time axis both modalities share inside the bridge (time-only RoPE):
        "aligned" (MOVA): audio latent l at position l, video latent frame f at
            f * audio_rate / video_rate (the audio grid);
        "seconds" (LTX-2): both at their time in seconds, f / video_rate and l / audio_rate.
    video_rate, audio_rate: latents per second of each modality (from the preset's media).
    video_gain, audio_gain: fixed multipliers of the update each tower receives (audio ->
        video and video -> audio); the output projections start at zero, so a new bridge
        leaves both towers' outputs unchanged.
    """

    layers: tuple[int, ...]
    video_rate: float
    audio_rate: float
    dim: int = 0
    num_heads: int = 4
    rope: Literal["aligned", "seconds"] = "aligned"
    video_gain: float = 1.0
    audio_gain: float = 1.0
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if not self.layers or len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"bridge layers must be a non-empty list of distinct video block "
                              f"indices, got {list(self.layers)}")
        if self.rope not in ("aligned", "seconds"):
            raise ConfigError(f"bridge rope must be 'aligned' or 'seconds', got {self.rope!r}")
        if not (self.video_rate > 0 and self.audio_rate > 0):
            raise ConfigError("bridge video_rate and audio_rate (latents per second) must be positive")
        if self.dim < 0 or self.num_heads < 1:
            raise ConfigError(f"bridge dim must be >= 0 (0 = audio width) and num_heads >= 1, "
                              f"got dim {self.dim}, num_heads {self.num_heads}")


@dataclass(frozen=True)
class TwinConfig:
    """Two towers. Without a bridge they are fused block by block (Ovi) and must have the
    same depth, width and heads; with one (MOVA) they may differ and exchange states only
    at the bridge's interaction layers (then neither tower builds Ovi's fusion layers)."""

    video: TowerConfig
    audio: TowerConfig
    bridge: BridgeConfig | None = None

    def __post_init__(self) -> None:
        if self.video.modality != "video" or self.audio.modality != "audio":
            raise ConfigError("TwinConfig needs a video tower and an audio tower, in that order")
        if self.bridge is not None:
            self._check_bridge(self.bridge)
            return
        for name in ("dim", "num_heads", "num_layers"):
            a, b = getattr(self.video, name), getattr(self.audio, name)
            if a != b:
                raise ConfigError(
                    f"symmetric Ovi fusion needs equal {name} in both towers (video {a}, audio {b}); "
                    "towers of different shape need a bridge (model.bridge)")

    def _check_bridge(self, b: BridgeConfig) -> None:
        lv = self.video.num_layers
        bad = [i for i in b.layers if not 0 <= i < lv]
        if bad:
            raise ConfigError(f"bridge layers {bad} out of range: the video tower has blocks "
                              f"0..{lv - 1}")
        if self.video.cross_modal or self.audio.cross_modal:
            raise ConfigError("with a bridge the towers must not build Ovi fusion layers: set "
                              "cross_modal = false in both towers")
        if self.bridge_dim % b.num_heads or (self.bridge_dim // b.num_heads) % 2:
            raise ConfigError(f"bridge dim {self.bridge_dim} must split into {b.num_heads} heads "
                              "of an even size")

    @property
    def bridge_dim(self) -> int:
        return (self.bridge.dim or self.audio.dim) if self.bridge is not None else 0

    @property
    def num_layers(self) -> int:
        """Block indices valid in both towers (skip-layer guidance skips block i in each)."""
        return min(self.video.num_layers, self.audio.num_layers)


@dataclass(frozen=True)
class MediaConfig:
    """How pixels and samples map to latents. Codecs own the transforms; these are their rates."""

    fps: float = 24.0
    sample_rate: int = 16000
    frames: int = 121  # default clip length in frames (4k + 1 for a causal 4x temporal VAE)
    area: int = 720 * 720  # target pixel area; height/width are snapped to it
    size_multiple: int = 32  # height and width are multiples of this
    video_stride: tuple[int, int, int] = (4, 16, 16)  # (t, h, w) pixels per latent
    audio_hop: int = 512  # waveform samples per audio latent (16 kHz / 512 = 31.25 Hz)
    audio_latents: int | None = 157  # audio latents for `frames`; None derives it

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    @property
    def audio_rate(self) -> float:
        return self.sample_rate / self.audio_hop

    @property
    def video_frames_per_audio_latent(self) -> float:
        """Video latent frames per audio latent over the clip (Ovi's 5 s clip: 31 / 157.55)."""
        return self.latent_frames(self.frames) / (self.duration * self.audio_rate)

    def latent_frames(self, frames: int) -> int:
        return (frames - 1) // self.video_stride[0] + 1

    def audio_length(self, frames: int) -> int:
        """Audio latents that cover `frames` video frames (the preset's own count if it has one)."""
        if frames == self.frames and self.audio_latents is not None:
            return self.audio_latents
        return int(frames / self.fps * self.audio_rate)


@dataclass(frozen=True)
class SamplerConfig:
    """Inference defaults (Ovi's official config)."""

    steps: int = 50
    shift: float = 5.0
    solver: Literal["unipc", "euler"] = "unipc"
    video_guidance: float = 4.0
    audio_guidance: float = 3.0
    slg_block: int | None = 11  # block skipped in the negative pass (skip-layer guidance)
    video_negative: str = "jitter, bad hands, blur, distortion"
    audio_negative: str = "robotic, muffled, echo, distorted"


@dataclass(frozen=True)
class Preset:
    """Everything that defines a model bundle except its weights."""

    name: str
    model: TwinConfig
    media: MediaConfig = field(default_factory=MediaConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    prompt_format: Literal["audcap", "audio_colon"] = "audcap"
    # {"video"|"audio"|"text": {"name": registry name, **constructor options}}
    codecs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preset:
        """The preset a config dict (a bundle's config.json) describes; ConfigError names the
        field of a missing key, an unknown one or a value of the wrong type."""
        _check_object(d, "the config")
        try:
            model = d["model"]
            _check_object(model, "model")
            bridge = model.get("bridge")
            if bridge is not None:
                bridge = _build(BridgeConfig, bridge, "model.bridge")
            twin = TwinConfig(video=_tower(model["video"], "video"),
                              audio=_tower(model["audio"], "audio"), bridge=bridge)
            media = _build(MediaConfig, d.get("media", {}), "media")
            sampler = _build(SamplerConfig, d.get("sampler", {}), "sampler")
            rest = {k: v for k, v in d.items() if k not in ("model", "media", "sampler")}
            return _build(cls, {**rest, "model": twin, "media": media, "sampler": sampler}, "")
        except KeyError as e:
            raise ConfigError(f"model config is missing the key {e}") from None


def _build(cls: type, d: dict[str, Any], where: str) -> Any:
    """`cls(**d)` after checking the keys and each value's type against `cls`'s fields, so
    that a wrong value is named (e.g. media.fps) instead of failing deep inside the model."""
    _check_object(d, where or "the config")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {unknown}; allowed: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    for key, value in d.items():
        if not _has_type(value, hints[key]):
            raise ConfigError(f"config field {where + '.' if where else ''}{key} is {value!r} "
                              f"({type(value).__name__}); expected {_describe(hints[key])}")
    d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return cls(**d)


def _check_object(d: Any, where: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a JSON object ({{...}}), got a {type(d).__name__}")


def _has_type(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's annotation (a list counts as a tuple, an int as
    a float; a bool is not a number)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is typing.Literal:
        return value in args
    if origin in (types.UnionType, typing.Union):
        return any(_has_type(value, a) for a in args)
    if origin is tuple:
        items = args[:1] if len(args) == 2 and args[1] is Ellipsis else args
        return isinstance(value, (list, tuple)) and all(
            _has_type(v, items[min(i, len(items) - 1)]) for i, v in enumerate(value))
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or hint)


def _describe(hint: Any) -> str:
    """A field's annotation in words, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (types.UnionType, typing.Union):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin is tuple:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
             dict: "an object"}
    return names.get(origin or hint, getattr(hint, "__name__", str(hint)))


# The official `dit/*.json` files are WanModel constructor arguments. Three of their keys
# have no TowerConfig field of that name: `model_type` names the tower (the slot already
# does), `window_size` is always global attention in Ovi, and the audio RoPE factor is
# `rope_time_scale` here. Duet builds the text-conditioned towers; `i2v` and `tt2a` add a
# CLIP image projection (`img_emb`) that it does not have.
OFFICIAL_MODEL_TYPES: dict[str, Modality] = {"t2v": "video", "ti2v": "video", "t2a": "audio"}


def _tower(d: dict[str, Any], modality: Modality) -> TowerConfig:
    """The `modality` tower from a bundle's table or an official `dit/*.json` dict as it is."""
    _check_object(d, f"model.{modality}")
    d = dict(d)
    if "model_type" in d:
        kind = d.pop("model_type")
        if not isinstance(kind, str) or OFFICIAL_MODEL_TYPES.get(kind) != modality:
            ok = sorted(k for k, m in OFFICIAL_MODEL_TYPES.items() if m == modality)
            raise ConfigError(f"{modality} tower: model_type {kind!r} is not supported; Duet "
                              f"builds {ok} for the {modality} tower (i2v and tt2a need a CLIP image "
                              "projection Duet does not have)")
    if "window_size" in d:
        window = d.pop("window_size")
        if not isinstance(window, (list, tuple)) or list(window) != [-1, -1]:
            raise ConfigError(f"{modality} tower: window_size {window} asks for local-window "
                              "attention, which Duet does not have; only [-1, -1] (global) loads")
    if "temporal_rope_scaling_factor" in d:
        factor = d.pop("temporal_rope_scaling_factor")
        if d.setdefault("rope_time_scale", factor) != factor:
            raise ConfigError(f"{modality} tower: temporal_rope_scaling_factor {factor} and "
                              f"rope_time_scale {d['rope_time_scale']} disagree; give one")
    if d.setdefault("modality", modality) != modality:
        raise ConfigError(f"{modality} tower: its table says modality {d['modality']!r}")
    return _build(TowerConfig, d, f"model.{modality}")


def audio_rope_time_scale(frames_per_audio_latent: float, temporal_patch: int = 1) -> float:
    """The audio tower's RoPE time factor (`TowerConfig.rope_time_scale`), the one place
    that says how audio and video share a time axis: audio latent l sits at video token
    position factor * l, where a video token spans `temporal_patch` latent frames. Rounded
    to 5 places, as Ovi's 0.19676 (31 latent frames over 157.55 audio latents) is."""
    return round(frames_per_audio_latent / temporal_patch, 5)
