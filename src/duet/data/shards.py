"""The shard format: what `duet data build` and `duet data curate` write and `duet train`
reads, kept in one place so that writer and reader cannot drift apart.

A dataset folder holds `shard-00000.safetensors`, `shard-00001.safetensors`, ... and
`captions.json` (one entry per clip, in shard order). Each shard holds stacked items under
these keys (first dim = items in the shard; every shard has the same keys and per-item
shapes):

    video          [N, C, F, H, W]   video VAE latents          (optional)
    audio          [N, L, C]         audio VAE latents          (optional)
    video_context  [N, Lt, D]        text hidden states for the video tower
    audio_context  [N, Lt, D]        text hidden states for the audio tower
    context        [N, Lt, D]        one embedding for both towers (Ovi), if the above are absent

Every file is written atomically (a reader never sees half a shard), and a reader checks
the keys and shapes from the headers alone before any tensor is read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from duet.atomic import atomic_write
from duet.weights import save_weights
from duet.errors import ConfigError

FIELDS = ("video", "audio", "video_context", "audio_context")
SHARED_CONTEXT = "context"  # one text embedding for both towers
CAPTIONS = "captions.json"
_PATTERN = "shard-*.safetensors"


def shard_path(out_dir: Path, index: int) -> Path:
    """Where shard `index` of a dataset folder lives (names sort in shard order)."""
    return out_dir / f"shard-{index:05d}.safetensors"


def existing_shards(out_dir: Path) -> list[Path]:
    """The shards already in `out_dir`, in order (a re-run removes the ones it no longer
    writes)."""
    return sorted(out_dir.glob(_PATTERN))


def drop_shards_after(out_dir: Path, count: int) -> None:
    """Remove the shards past the first `count`: an earlier run that wrote more left them."""
    for stale in existing_shards(out_dir)[count:]:
        stale.unlink()


def write_shard(tensors: Mapping[str, Tensor], path: Path,
                metadata: dict[str, str] | None = None) -> Path:
    """One shard, atomically; `tensors` are stacked items under the module's keys, and
    `metadata` strings go in its header (what wrote it, for a resumed build)."""
    return save_weights(dict(tensors), path, metadata=metadata)


def read_metadata(path: Path) -> dict[str, str]:
    """A shard's header metadata ({} for a missing or unreadable file: it is rebuilt)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError):
        return {}


def write_captions(out_dir: Path, captions: list[dict[str, Any]]) -> Path:
    """`captions.json` beside the shards, atomically."""
    return atomic_write(out_dir / CAPTIONS, lambda tmp: tmp.write_text(json.dumps(captions)))


def with_contexts(tensors: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """Map a shared `context` onto video_context/audio_context; refuse unknown keys."""
    unknown = sorted(set(tensors) - set(FIELDS) - {SHARED_CONTEXT})
    if unknown:
        raise ConfigError(f"data: {source} has unknown keys {unknown}; "
                          f"allowed: {[*FIELDS, SHARED_CONTEXT]}")
    shared = tensors.pop(SHARED_CONTEXT, None)
    for m in ("video", "audio"):
        if m in tensors and f"{m}_context" not in tensors:
            if shared is None:
                raise ConfigError(f"data: {source} has {m} latents but no {m}_context (or context)")
            tensors[f"{m}_context"] = shared
    if "video" not in tensors and "audio" not in tensors:
        raise ConfigError(f"data: {source} has neither video nor audio latents")
    return tensors


def common_length(lengths: dict[str, int], source: str) -> int:
    """The item count that every field agrees on (ConfigError if they differ)."""
    if len(set(lengths.values())) != 1:
        raise ConfigError(f"data: {source} fields have different item counts {lengths}")
    return next(iter(lengths.values()))


def expand(paths: Sequence[str | Path]) -> list[Path]:
    """Shard files from files and folders (a folder's *.safetensors files, sorted)."""
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


def read_header(path: Path) -> tuple[dict[str, tuple[int, ...]], int]:
    """Per-item shapes and item count of a shard, from its header alone."""
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise ConfigError(f"data: {path} is not a readable safetensors shard ({e})") from None
    counts = {k: s[0] for k, s in shapes.items()}
    n = common_length(counts, str(path))
    keys = with_contexts({k: torch.empty(0) for k in shapes}, str(path))  # validates the keys
    per_item = {k: shapes[k if k in shapes else SHARED_CONTEXT][1:] for k in keys}
    return per_item, n


class ShardReader:
    """Items read lazily from shards: headers are checked up front (same keys and per-item
    shapes in every shard), files are opened on first use and items sliced on demand."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.shards: list[tuple[Path, int]] = []  # (file, items in it)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._handles: dict[Path, Any] = {}  # open safetensors files
        for path in expand(paths):
            shapes, n = read_header(path)
            if self.shards and shapes != self.shapes:
                raise ConfigError(f"data: shard {path} has fields/shapes {shapes}, but "
                                  f"{self.shards[0][0]} has {self.shapes}")
            self.shapes = shapes
            self.shards.append((path, n))

    def __len__(self) -> int:
        return sum(n for _, n in self.shards)

    def read(self, index: int) -> dict[str, Tensor]:
        """Item `index` (counted across shards in order), one tensor per field."""
        for path, n in self.shards:
            if index < n:
                f = self._handles.get(path)
                if f is None:
                    f = self._handles[path] = safe_open(str(path), framework="pt")
                keys = set(f.keys())
                return {k: f.get_slice(k if k in keys else SHARED_CONTEXT)[index]
                        for k in self.shapes}
            index -= n
        raise IndexError(index)
