"""Training stages as data: which modalities a stage feeds, which parameters it trains, and
its defaults (loss weights, learning rate, AdamW betas).

Ovi's recipe (paper §4.2–4.3):
- "audio" (stage 1): the audio tower alone, trained from scratch; lr 1e-4, betas (0.9, 0.999).
- "fusion" (stage 2): both towers and the new fusion layers; self-attention, text
  cross-attention and fusion layers train, every FFN is frozen (5.67B of 11.66B parameters
  trainable in the official model); loss 0.85·L_video + 0.15·L_audio; lr 5e-5,
  betas (0.9, 0.95).
With a bridge (MOVA) the fusion stage trains the bridge layers in place of Ovi's fusion
layers. Duet adds "video" (the video tower alone, to pretrain a small model's video tower) and
"full" (everything trains, joint loss).

In the tower-alone stages the fusion layers (`k_fusion`, `v_fusion`, `pre_attn_norm_fusion`,
`norm_k_fusion`) stay frozen: a tower running alone never calls them, so they would get no
gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

from torch import nn

from duet.errors import ConfigError

FUSION_LAYERS = ("k_fusion", "v_fusion", "pre_attn_norm_fusion", "norm_k_fusion")


@dataclass(frozen=True)
class Stage:
    """One training stage. Patterns are fnmatch patterns over `TwinModel` parameter names."""

    name: str
    description: str
    modalities: tuple[str, ...]  # which latents the stage feeds the model
    trainable: tuple[str, ...]  # a parameter trains if it matches one of these ...
    frozen: tuple[str, ...] = ()  # ... and none of these
    video_weight: float = 0.85
    audio_weight: float = 0.15
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)

    def trains(self, name: str) -> bool:
        return (any(fnmatchcase(name, p) for p in self.trainable)
                and not any(fnmatchcase(name, p) for p in self.frozen))


def _fusion_layers(tower: str) -> tuple[str, ...]:
    return tuple(f"{tower}.blocks.*.cross_attn.{layer}.*" for layer in FUSION_LAYERS)


STAGES: dict[str, Stage] = {
    "audio": Stage(
        "audio", "Ovi stage 1: the audio tower alone (video tower unused)",
        modalities=("audio",), trainable=("audio_model.*",), frozen=_fusion_layers("audio_model"),
        video_weight=0.0, audio_weight=1.0, lr=1e-4, betas=(0.9, 0.999)),
    "video": Stage(
        "video", "the video tower alone (audio tower unused)",
        modalities=("video",), trainable=("video_model.*",), frozen=_fusion_layers("video_model"),
        video_weight=1.0, audio_weight=0.0, lr=1e-4, betas=(0.9, 0.999)),
    "fusion": Stage(
        "fusion", "Ovi stage 2: self-attention, text cross-attention and fusion layers; FFNs frozen",
        modalities=("video", "audio"),
        trainable=("*.blocks.*.self_attn.*", "*.blocks.*.cross_attn.*", "bridge.*"),
        video_weight=0.85, audio_weight=0.15, lr=5e-5, betas=(0.9, 0.95)),
    "full": Stage(
        "full", "both towers, every parameter trains",
        modalities=("video", "audio"), trainable=("*",),
        video_weight=0.85, audio_weight=0.15, lr=5e-5, betas=(0.9, 0.95)),
}


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise ConfigError(f"stage {name!r} is unknown; choose one of {sorted(STAGES)}") from None


def check_towers(towers: tuple[str, ...]) -> None:
    """`keep_towers` names towers only."""
    bad = sorted(set(towers) - {"video", "audio"})
    if bad:
        raise ConfigError(f"keep_towers names 'video' and/or 'audio', got {bad}")


def is_own_layer(name: str, towers: tuple[str, ...]) -> bool:
    """Whether parameter `name` belongs to one of `towers` ("video", "audio") and is not one of
    its fusion layers. Keeping a tower's own layers frozen lets a joint stage teach the
    cross-modal layers without moving a pretrained tower, which then draws alone exactly what
    it drew before (docs/default-model.md: a video tower lost half its bounces in a fusion
    stage that trained its self-attention)."""
    return any(fnmatchcase(name, f"{t}_model.*")
               and not any(fnmatchcase(name, p) for p in _fusion_layers(f"{t}_model"))
               for t in towers)


def apply_stage(model: nn.Module, stage: Stage | str, freeze: tuple[str, ...] = (),
                keep_towers: tuple[str, ...] = ()) -> int:
    """Set `requires_grad` on every parameter for `stage`, with the parameters matching a
    `freeze` pattern and the own layers of each tower in `keep_towers` frozen as well; return
    the trainable count."""
    stage = get_stage(stage) if isinstance(stage, str) else stage
    names = [name for name, _ in model.named_parameters()]
    idle = [p for p in freeze if not any(fnmatchcase(n, p) for n in names)]
    if idle:
        raise ConfigError(f"freeze pattern(s) {idle} match no parameter of this model; names look "
                          f"like {names[0]!r} (fnmatch patterns, e.g. '*.cross_attn.q.*')")
    check_towers(keep_towers)
    stage = replace(stage, frozen=stage.frozen + tuple(freeze))
    count = 0
    for name, p in model.named_parameters():
        p.requires_grad_(stage.trains(name) and not is_own_layer(name, keep_towers))
        count += p.numel() if p.requires_grad else 0
    if count == 0:
        raise ConfigError(f"stage {stage.name!r} trains no parameter of this model")
    return count
