"""Training data: batches of precomputed latents and text embeddings.

Turning clips into latents is the codecs' job; the trainer only reads their output. On disk
a dataset is one or more safetensors shards, each holding stacked items under these keys
(first dim = items in the shard; every shard has the same keys and per-item shapes):

    video          [N, C, F, H, W]   video VAE latents          (optional)
    audio          [N, L, C]         audio VAE latents          (optional)
    video_context  [N, Lt, D]        text hidden states for the video tower
    audio_context  [N, Lt, D]        text hidden states for the audio tower
    context        [N, Lt, D]        one embedding for both towers (Ovi), if the above are absent

The order of items is a seeded permutation per epoch, and batch k of the run is a pure
function of (seed, k): the position to resume from is just the number of batches consumed.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from duet.errors import ConfigError, InputError

FIELDS = ("video", "audio", "video_context", "audio_context")


@dataclass(frozen=True)
class LatentBatch:
    """One batch of training items (shapes in the module docstring, B items each)."""

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
        self._shards: list[tuple[Path, int]] = []  # (file, items in it)
        self._handles: dict[Path, Any] = {}  # open safetensors files
        if tensors is not None:
            self._tensors = _with_contexts(dict(tensors), "tensors")
            self._shapes = {k: tuple(v.shape[1:]) for k, v in self._tensors.items()}
            self._len = _common_length({k: v.shape[0] for k, v in self._tensors.items()}, "tensors")
            return
        for path in _expand(shards or ()):
            shapes, n = _read_header(path)
            if self._shards and shapes != self._shapes:
                raise ConfigError(f"data: shard {path} has fields/shapes {shapes}, but "
                                  f"{self._shards[0][0]} has {self._shapes}")
            self._shapes = shapes
            self._shards.append((path, n))
        self._len = sum(n for _, n in self._shards)

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
        items = [self._read(i) for i in indices]
        return LatentBatch(**{k: torch.stack([it[k] for it in items]) for k in self._shapes})

    def _read(self, index: int) -> dict[str, Tensor]:
        for path, n in self._shards:
            if index < n:
                f = self._handles.get(path)
                if f is None:
                    f = self._handles[path] = safe_open(str(path), framework="pt")
                keys = set(f.keys())
                return {k: f.get_slice(k if k in keys else "context")[index] for k in self._shapes}
            index -= n
        raise IndexError(index)


def _with_contexts(tensors: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """Map a shared `context` onto video_context/audio_context; refuse unknown keys."""
    unknown = sorted(set(tensors) - set(FIELDS) - {"context"})
    if unknown:
        raise ConfigError(f"data: {source} has unknown keys {unknown}; "
                          f"allowed: {[*FIELDS, 'context']}")
    shared = tensors.pop("context", None)
    for m in ("video", "audio"):
        if m in tensors and f"{m}_context" not in tensors:
            if shared is None:
                raise ConfigError(f"data: {source} has {m} latents but no {m}_context (or context)")
            tensors[f"{m}_context"] = shared
    if "video" not in tensors and "audio" not in tensors:
        raise ConfigError(f"data: {source} has neither video nor audio latents")
    return tensors


def _common_length(lengths: dict[str, int], source: str) -> int:
    if len(set(lengths.values())) != 1:
        raise ConfigError(f"data: {source} fields have different item counts {lengths}")
    return next(iter(lengths.values()))


def _expand(paths: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.glob("*.safetensors"))
        elif p.is_file():
            files.append(p)
        else:
            raise ConfigError(f"data: {p} does not exist")
    if not files:
        raise ConfigError(f"data: no .safetensors shards found in {[str(p) for p in paths]}")
    return files


def _read_header(path: Path) -> tuple[dict[str, tuple[int, ...]], int]:
    """Per-item shapes and item count of a shard, from its header alone."""
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise ConfigError(f"data: {path} is not a readable safetensors shard ({e})") from None
    counts = {k: s[0] for k, s in shapes.items()}
    n = _common_length(counts, str(path))
    keys = _with_contexts({k: torch.empty(0) for k in shapes}, str(path))  # validates the keys
    per_item = {k: shapes[k if k in shapes else "context"][1:] for k in keys}
    return per_item, n


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
