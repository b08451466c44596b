"""Training data: batches of precomputed latents and text embeddings.

Turning clips into latents is the codecs' job; the trainer only reads their output: items
in memory, or safetensors shards in the format that `duet.data.shards` owns (keys and
per-item shapes are listed there).

The order of items is a seeded permutation per epoch, and batch k of the run is a pure
function of (seed, k): the position to resume from is just the number of batches consumed.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from duet.data.shards import FIELDS, ShardReader, common_length, with_contexts
from duet.errors import ConfigError, InputError


@dataclass(frozen=True)
class LatentBatch:
    """One batch of training items (shapes in `duet.data.shards`, B items each)."""

    video: Tensor | None = None  # [B, C, F, H, W]
    audio: Tensor | None = None  # [B, L, C]
    video_context: Tensor | None = None  # [B, Lt, D]
    audio_context: Tensor | None = None  # [B, Lt, D]

    def __post_init__(self) -> None:
        if self.video is None and self.audio is None:
            raise InputError("a LatentBatch needs video or audio latents (or both)")
        for name in ("video", "audio"):
            if getattr(self, name) is not None and getattr(self, f"{name}_context") is None:
                raise InputError(f"the batch has {name} latents but no {name}_context")
        sizes = {name: t.shape[0] for name in FIELDS if (t := getattr(self, name)) is not None}
        if len(set(sizes.values())) != 1:
            raise InputError(f"batch fields disagree on the batch size: {sizes}")

    @property
    def size(self) -> int:
        latent = self.video if self.video is not None else self.audio
        assert latent is not None
        return latent.shape[0]

    def select(self, index: int | slice) -> LatentBatch:
        """Items `index` (an int keeps the batch dim)."""
        sl = slice(index, index + 1) if isinstance(index, int) else index
        return LatentBatch(*(None if (t := getattr(self, f)) is None else t[sl] for f in FIELDS))

    def only(self, modalities: Sequence[str]) -> LatentBatch:
        """Drop the modalities (and their contexts) that a training stage does not use."""
        drop = {m: None for m in ("video", "audio") if m not in modalities}
        drop.update({f"{m}_context": None for m in drop})
        return replace(self, **drop)

    def to(self, device: torch.device) -> LatentBatch:
        return LatentBatch(*(None if (t := getattr(self, f)) is None else t.to(device) for f in FIELDS))


class LatentDataset:
    """Training items: stacked in memory (`tensors`) or read lazily from safetensors `shards`
    (files, or directories whose *.safetensors files, sorted, are the shards)."""

    def __init__(self, tensors: Mapping[str, Tensor] | None = None, *,
                 shards: Sequence[str | Path] | None = None) -> None:
        if (tensors is None) == (shards is None):
            raise InputError("pass either tensors or shards to LatentDataset")
        self._tensors: dict[str, Tensor] = {}
        self._reader: ShardReader | None = None
        if tensors is not None:
            self._tensors = with_contexts(dict(tensors), "tensors")
            self._shapes = {k: tuple(v.shape[1:]) for k, v in self._tensors.items()}
            self._len = common_length({k: v.shape[0] for k, v in self._tensors.items()}, "tensors")
            return
        self._reader = ShardReader(shards or ())
        self._shapes = self._reader.shapes
        self._len = len(self._reader)

    @classmethod
    def from_shards(cls, paths: Sequence[str | Path]) -> LatentDataset:
        return cls(shards=paths)

    def __len__(self) -> int:
        return self._len

    def item_shape(self, field: str) -> tuple[int, ...] | None:
        """Per-item shape of `field` (no batch dim), or None if the dataset lacks it."""
        return self._shapes.get(field)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in ("video", "audio") if m in self._shapes)

    def gather(self, indices: Sequence[int]) -> LatentBatch:
        """The items at `indices`, stacked, in that order."""
        if self._tensors:
            idx = torch.as_tensor(list(indices), dtype=torch.long)
            return LatentBatch(**{k: v[idx] for k, v in self._tensors.items()})
        assert self._reader is not None  # built from shards when not from tensors
        items = [self._reader.read(i) for i in indices]
        return LatentBatch(**{k: torch.stack([it[k] for it in items]) for k in self._shapes})


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across runs, platforms and processes)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


@functools.lru_cache(maxsize=2)
def _permutation(size: int, seed: int, epoch: int) -> Tensor:
    g = torch.Generator().manual_seed(mix_seed(seed, epoch))
    return torch.randperm(size, generator=g)


@dataclass(frozen=True)
class BatchPlan:
    """Which items each rank reads at each optimizer step.

    The global batch of step k is `batch_size` items of the epoch's permutation
    (epoch = k // steps_per_epoch; the remainder of an epoch is dropped). It is cut into
    `grad_accum` micro-batches, and each micro-batch into `world` contiguous parts, one
    per rank, so the same global batch is seen whatever the world size or accumulation.
    """

    size: int  # items in the dataset
    batch_size: int  # global items per optimizer step
    grad_accum: int = 1
    world: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size > self.size:
            raise ConfigError(f"batch_size {self.batch_size} is larger than the dataset "
                              f"({self.size} items)")

    @property
    def micro_batch(self) -> int:
        """Items per rank per micro-step."""
        return self.batch_size // (self.grad_accum * self.world)

    @property
    def steps_per_epoch(self) -> int:
        return self.size // self.batch_size

    def permutation(self, epoch: int) -> Tensor:
        return _permutation(self.size, self.seed, epoch)

    def positions(self, micro: int, rank: int) -> range:
        """Positions within the global batch (0..batch_size-1) of this rank's micro-batch."""
        start = (micro * self.world + rank) * self.micro_batch
        return range(start, start + self.micro_batch)

    def indices(self, step: int, micro: int, rank: int) -> list[int]:
        """Dataset indices of this rank's micro-batch at optimizer step `step`."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        batch = self.permutation(epoch)[offset * self.batch_size:(offset + 1) * self.batch_size]
        return batch[list(self.positions(micro, rank))].tolist()
