"""Tiny model shape and synthetic latents shared by the training tests (imported by name;
the tests' directory is on sys.path under pytest and in the torchrun worker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file


# dim 32, 2 heads, 2 layers; video latents [4, 2, 4, 4] -> 2x2x2 = 8 tokens, audio [8, 6]
TINY_MODEL: dict[str, Any] = {
    "dim": 32, "ffn_dim": 64, "num_heads": 2, "num_layers": 2, "text_len": 8, "text_dim": 16,
    "freq_dim": 32, "video": {"in_dim": 4, "out_dim": 4}, "audio": {"in_dim": 6, "out_dim": 6},
}


def synthetic_tensors(n: int = 8, seed: int = 0, video: bool = True,
                      audio: bool = True) -> dict[str, torch.Tensor]:
    """n items of random latents and one shared text context per item."""
    g = torch.Generator().manual_seed(seed)
    out = {"context": torch.randn(n, 5, 16, generator=g)}
    if video:
        out["video"] = torch.randn(n, 4, 2, 4, 4, generator=g)
    if audio:
        out["audio"] = torch.randn(n, 8, 6, generator=g)
    return out


def write_shards(directory: Path, n: int = 8, per_shard: int = 4, seed: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tensors = synthetic_tensors(n, seed)
    for i, start in enumerate(range(0, n, per_shard)):
        save_file({k: v[start:start + per_shard].contiguous() for k, v in tensors.items()},
                  str(directory / f"shard_{i:03d}.safetensors"))
    return directory
