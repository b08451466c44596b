"""LoRA adapters for the twin model (Hu et al. 2021), through `peft`.

Training injects low-rank adapters into chosen families of linear layers and trains only
them; the result is an adapter file (a few hundred KB for the demo model), not a model. At
generation an adapter is merged into the base weights, W <- W + scale * (alpha / r) B A, so a
merged model runs at the base model's speed; several adapters can be merged in turn.

Layer families (module names inside each block of either tower):
- "self_attn": self_attn.{q,k,v,o}
- "text_attn": cross_attn.{q,k,v,o} (q and o are shared with the cross-modal branch)
- "fusion":    cross_attn.{k_fusion,v_fusion} (the cross-modal keys and values); in a
               bridged model also the bridge's attention, bridge.layers.N.to_{video,audio}.{q,k,v,o}
               (the direction into each chosen tower)
- "ffn":       ffn.0, ffn.2

Files: `adapter.safetensors` (keys `<module>.lora_A.weight`, `<module>.lora_B.weight`, as
`peft.get_peft_model_state_dict` names them) and `adapter.json` (rank, alpha, targets, and the
shapes of the base layers, so an adapter for another base model is refused by name).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from duet.atomic import atomic_write
from duet.errors import CheckpointError, ConfigError
from duet.weights.files import load_weights, save_weights

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter.json"
FAMILIES: dict[str, str] = {
    "self_attn": r"self_attn\.(q|k|v|o)",
    "text_attn": r"cross_attn\.(q|k|v|o)",
    "fusion": r"cross_attn\.(k_fusion|v_fusion)",
    "ffn": r"ffn\.(0|2)",
}
TOWERS = ("video", "audio")


@dataclass(frozen=True)
class LoraSpec:
    """Which layers get adapters and how big they are."""

    rank: int = 16
    alpha: float = 16.0
    targets: tuple[str, ...] = ("self_attn", "text_attn", "fusion")
    towers: tuple[str, ...] = TOWERS
    dropout: float = 0.0
    blocks: tuple[int, ...] | None = None  # None: every block

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha <= 0 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lora needs rank >= 1, alpha > 0 and 0 <= dropout < 1, got rank "
                              f"{self.rank}, alpha {self.alpha}, dropout {self.dropout}")
        unknown = sorted(set(self.targets) - set(FAMILIES))
        if not self.targets or unknown:
            raise ConfigError(f"lora targets {list(self.targets)}: choose from {sorted(FAMILIES)}")
        if not self.towers or set(self.towers) - set(TOWERS):
            raise ConfigError(f"lora towers {list(self.towers)}: choose from {list(TOWERS)}")

    @classmethod
    def from_dict(cls, d: dict) -> LoraSpec:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown lora keys {unknown}; allowed: {sorted(known)}")
        lists = {k: tuple(v) for k, v in d.items() if isinstance(v, list)}
        return cls(**{**d, **lists})

    def pattern(self) -> str:
        """The full-match regex over module names that `peft` receives."""
        towers = "|".join(self.towers)
        blocks = r"\d+" if self.blocks is None else "|".join(str(b) for b in self.blocks)
        layers = "|".join(FAMILIES[t] for t in self.targets)
        towers_part = rf"({towers})_model\.blocks\.({blocks})\.({layers})"
        if "fusion" not in self.targets:
            return towers_part
        return rf"{towers_part}|bridge\.layers\.\d+\.to_({towers})\.(q|k|v|o)"


def adapter_arg(spec: str) -> tuple[str, float]:
    """`DIR` or `DIR:SCALE` (the `--lora` flag of `duet generate` and `duet convert`) as
    (directory, scale); a path may itself contain ':', so only a numeric tail is a scale."""
    head, sep, tail = spec.rpartition(":")
    try:
        scale = float(tail)
    except ValueError:
        return spec, 1.0
    return (head, scale) if sep and head else (spec, 1.0)


@dataclass(frozen=True)
class Adapter:
    """A loaded adapter file: its spec, base-layer shapes and weights."""

    spec: LoraSpec
    base_shapes: dict[str, list[int]] = field(default_factory=dict)
    weights: dict[str, Tensor] = field(default_factory=dict)


def add_lora(model: nn.Module, spec: LoraSpec) -> int:
    """Inject adapters into `model` (in place) and make them its only trainable parameters.
    Returns the number of adapted layers; ConfigError if the spec matches no layer."""
    from peft import LoraConfig, inject_adapter_in_model

    matched = [n for n, m in model.named_modules()
               if isinstance(m, nn.Linear) and re.fullmatch(spec.pattern(), n)]
    if not matched:
        raise ConfigError(f"lora targets {list(spec.targets)} on towers {list(spec.towers)} "
                          f"(blocks {spec.blocks or 'all'}) match no linear layer of this model")
    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                        target_modules=spec.pattern())
    inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad_(".lora_" in name)
    return len(matched)


@contextmanager
@torch.no_grad()
def adapters_merged(model: nn.Module) -> Iterator[int]:
    """Inside the block, every injected adapter is folded into its base weight, so no-grad
    passes (RL rollouts, the old policy's and the reference's velocities) run at the base
    model's speed instead of paying peft's extra low-rank matmuls per layer (15-22 % of a
    forward for the demo model at rank 32). On exit the base weights are restored by copy,
    not by subtracting the update again, so repeated use leaves them bit for bit as they were
    (a resumed run stays exact). Yields the number of merged layers (0 without adapters)."""
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer) and not m.merged]
    saved = [m.get_base_layer().weight.detach().clone() for m in layers]
    for m in layers:
        m.merge()
    try:
        yield len(layers)
    finally:
        for m, w in zip(layers, saved):
            m.unmerge()
            m.get_base_layer().weight.copy_(w)


def adapter_weights(model: nn.Module, values: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """The adapter tensors of a model with injected LoRA, under file keys
    (`<module>.lora_A.weight`); `values` overrides by parameter name (e.g. EMA copies)."""
    from peft import get_peft_model_state_dict

    state = {n: (values or {}).get(n, p) for n, p in model.named_parameters() if ".lora_" in n}
    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model, state_dict=state).items()}


def base_shapes(model: nn.Module, weights: dict[str, Tensor]) -> dict[str, list[int]]:
    """The (out, in) shape of each adapted base layer, keyed by module name."""
    modules = dict(model.named_modules())
    shapes = {}
    for key in weights:
        name = key.split(".lora_")[0]
        layer = modules[name]
        base = getattr(layer, "base_layer", layer)
        shapes[name] = list(base.weight.shape)
    return shapes


def save_adapter(directory: str | Path, model: nn.Module, spec: LoraSpec,
                 values: dict[str, Tensor] | None = None, dtype: torch.dtype = torch.float32,
                 note: str = "") -> Path:
    """Write adapter.safetensors + adapter.json into `directory` (atomically)."""
    directory = Path(directory)
    weights = adapter_weights(model, values)
    config = {"format": "duet-lora", "spec": asdict(spec), "base_shapes": base_shapes(model, weights),
              "note": note}
    save_weights({k: v.to(dtype) for k, v in weights.items()}, directory / ADAPTER_WEIGHTS)
    text = json.dumps(config, indent=1)
    atomic_write(directory / ADAPTER_CONFIG, lambda tmp: tmp.write_text(text), CheckpointError)
    return directory


def load_adapter(path: str | Path) -> Adapter:
    """Read an adapter directory (or its adapter.safetensors)."""
    path = Path(path)
    directory = path.parent if path.name == ADAPTER_WEIGHTS else path
    cfg_path = directory / ADAPTER_CONFIG
    if not cfg_path.is_file() or not (directory / ADAPTER_WEIGHTS).is_file():
        raise CheckpointError(f"{directory} is not a LoRA adapter: it needs {ADAPTER_CONFIG} and "
                              f"{ADAPTER_WEIGHTS} (written by `duet train` with lora enabled)")
    try:
        cfg = json.loads(cfg_path.read_text())
        spec = LoraSpec.from_dict(cfg["spec"])
        shapes = {k: list(v) for k, v in cfg["base_shapes"].items()}
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{cfg_path} is not a valid adapter config ({e})") from None
    return Adapter(spec, shapes, load_weights(directory / ADAPTER_WEIGHTS))


def _merge_plan(weights: dict[str, Tensor], adapter: Adapter, source: str,
                ) -> list[tuple[str, Tensor, Tensor]]:
    """(weight key, A, B) for every adapted layer, with `weights` the base layers' weights
    under state-dict keys (`<module>.weight`); every layer is checked before any changes."""
    problems, plan = [], []
    for name, shape in adapter.base_shapes.items():
        a, b = adapter.weights.get(f"{name}.lora_A.weight"), adapter.weights.get(f"{name}.lora_B.weight")
        w = weights.get(f"{name}.weight")
        if a is None or b is None:
            problems.append(f"{name}: lora_A/lora_B weights missing from the file")
        elif w is None or w.dim() != 2:
            problems.append(f"{name}: no such linear layer in this model")
        elif list(w.shape) != shape or tuple(b.shape[:1]) + tuple(a.shape[1:]) != tuple(shape):
            problems.append(f"{name}: adapter made for a {shape} layer, this model's is {list(w.shape)}")
        else:
            plan.append((f"{name}.weight", a, b))
    if problems:
        shown = "; ".join(problems[:4]) + (f"; ... ({len(problems)} in all)" if len(problems) > 4 else "")
        raise CheckpointError(f"{source} does not fit this base model: {shown}")
    return plan


def _merged(w: Tensor, a: Tensor, b: Tensor, factor: float, dtype: torch.dtype | None = None) -> Tensor:
    """W + factor * B A, summed in float64 so a small update survives, stored as `dtype`
    (default: as W is)."""
    delta = (b.double() @ a.double()) * factor
    return (w.double() + delta.to(w.device)).to(dtype or w.dtype)


@torch.no_grad()
def merge_adapter(model: nn.Module, adapter: Adapter, scale: float = 1.0, source: str = "adapter") -> int:
    """W <- W + scale * (alpha / r) B A for every adapted layer of a plain model (in place).
    Every layer is checked before any is changed; returns the number of merged layers."""
    weights = {f"{n}.weight": m.weight for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    plan = _merge_plan(weights, adapter, source)
    factor = scale * adapter.spec.alpha / adapter.spec.rank
    for key, a, b in plan:
        weights[key].copy_(_merged(weights[key], a, b, factor))
    return len(plan)


def merge_adapter_state(state: dict[str, Tensor], adapter: Adapter, scale: float = 1.0,
                        source: str = "adapter", dtype: torch.dtype | None = None,
                        ) -> dict[str, Tensor]:
    """`state` (a model's state dict, e.g. a bundle's weights) with the adapter merged in, as
    `merge_adapter` does to a model: how `duet convert --lora` bakes an adapter into a bundle
    without building the model. Merged weights are stored as `dtype` (default: as they were),
    so a bf16 base merged into a float32 bundle keeps the update's low bits. The input dict is
    left as it was."""
    plan = _merge_plan(state, adapter, source)
    factor = scale * adapter.spec.alpha / adapter.spec.rank
    return {**state, **{key: _merged(state[key], a, b, factor, dtype) for key, a, b in plan}}
