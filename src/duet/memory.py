"""Memory options: what lets the 11.7B twin DiT run on a GPU smaller than its 23 GB of bf16
weights plus activations.

Four independent levers, chosen with one `MemoryConfig`:

- `weights_dtype="fp8"`: the blocks' linear layers store float8 (e4m3) weights with one
  float32 scale per output channel and compute in the activations' dtype (bf16 on GPU):
  `duet.quantize.Float8Linear`, about half the bytes. Norms, embeddings, the head and the
  modulation tables keep the model dtype: they are small and the most sensitive to rounding.
- `weights_dtype="int8"`: the same layers through torchao's int8 weight-only quantization
  (`duet.quantize.quantize_int8`).
- `offload=True`: the blocks live in (pinned) CPU memory and each block is copied to the
  GPU just before it runs (`duet.offload.SequentialOffload`); the embeddings and head stay
  resident.
- `free_text_encoder`: the text encoder's weights are dropped once the prompts are encoded
  (their embeddings stay cached); `vae_tiling`: the video codec decodes in tiles
  (`duet.codecs.build_video_codec`).

`apply_memory` does the model's part; the pipeline reads the rest of the config.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from duet.errors import ConfigError
from duet.offload import SequentialOffload, refuse_sharded
from duet.quantize import WEIGHTS_DTYPES, quantize_fp8, quantize_int8

if TYPE_CHECKING:
    from duet.model import TwinModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MemoryConfig:
    """How to fit the model on the device. The defaults change nothing (except that the
    text encoder is freed after encoding on a GPU, where its memory is scarce)."""

    offload: bool = False  # blocks in CPU memory, each moved to the device only to run
    weights_dtype: str | None = None  # "fp8"/"int8" storage of the blocks' linears; None = as is
    free_text_encoder: bool | None = None  # drop its weights after encoding; None = on for CUDA
    vae_tiling: bool = False  # decode video in tiles (codecs with a `tiled` option only)

    def __post_init__(self) -> None:
        if self.weights_dtype is not None and self.weights_dtype not in WEIGHTS_DTYPES:
            raise ConfigError(f"weights_dtype {self.weights_dtype!r} is not supported; use one of "
                              f"{list(WEIGHTS_DTYPES)} or None (keep the model's dtype)")

    def frees_text_encoder(self, device: torch.device) -> bool:
        """`free_text_encoder`, with its default resolved for `device`."""
        if self.free_text_encoder is None:
            return device.type == "cuda"
        return self.free_text_encoder


def apply_memory(model: TwinModel, cfg: MemoryConfig, device: torch.device | str) -> TwinModel:
    """Quantize the blocks' linears where the model is (usually the CPU, so the GPU never
    holds the full-precision copy), then place it on `device`, whole or block by block.

    The units quantized and offloaded are `model.shard_units()`: its blocks and bridge
    layers. Returns the same model, changed in place.
    """
    device = torch.device(device)
    if cfg.weights_dtype is None and not cfg.offload:
        return model.to(device)
    refuse_sharded(model, "offload" if cfg.offload else f"weights_dtype={cfg.weights_dtype!r}")
    model.eval().requires_grad_(False)  # both are for inference: frozen weights
    units = list(model.shard_units())
    if cfg.weights_dtype == "fp8":
        n = sum(quantize_fp8(u) for u in units)
        log.info("stored %d linear layers in float8 (e4m3) with per-channel scales", n)
    elif cfg.weights_dtype == "int8":
        n = sum(quantize_int8(u) for u in units)
        log.info("stored %d linear layers in int8 (torchao weight-only)", n)
    if not cfg.offload:
        return model.to(device)
    if device.type == "cpu":
        log.warning("offload on device cpu keeps the weights where they already are: it saves "
                    "no memory (it is meant for --device cuda)")
    SequentialOffload(model, units, device)
    return model


def release_text_encoder(encoder: Any) -> bool:
    """Drop a text encoder's weights through its `unload()` (a `CachedEncoder` keeps its
    cached embeddings and passes the call on). Returns whether it could: an encoder without
    `unload()` keeps its weights."""
    unload = getattr(encoder, "unload", None)
    if callable(unload):
        unload()
        return True
    log.debug("text encoder %s has no unload(): its weights stay in memory", type(encoder).__name__)
    return False
