"""Tensor files on disk: safetensors written atomically and read with checks, the
official releases' `.pth` files read without running pickled code, and safetensors headers
read without the tensors.

Every write goes to a temporary file in the same directory and is renamed into place, so a
crash never leaves a half file under the final name.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from duet.atomic import atomic_write
from duet.errors import CheckpointError

log = logging.getLogger(__name__)


def save_weights(state: dict[str, Tensor], path: str | os.PathLike,
                 metadata: dict[str, str] | None = None) -> Path:
    """Save a state dict as safetensors, atomically (tensors made contiguous, unshared)."""
    tensors = {k: v.detach().contiguous().clone() if _shares(v) else v.detach().contiguous()
               for k, v in state.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata),
                        CheckpointError)


def _shares(t: Tensor) -> bool:
    return t.untyped_storage().nbytes() != t.numel() * t.element_size()


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Load a safetensors file; a missing or truncated file, or one holding NaN or Inf,
    raises CheckpointError naming it. Weights that are not finite make every output NaN, so
    they are caught here, tensor by tensor as each is read (no second copy of the file),
    rather than after a whole generation."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            state = {}
            for k in f.keys():
                state[k] = f.get_tensor(k)
                if not _all_finite(state[k]):
                    raise CheckpointError(
                        f"{path} holds NaN or infinite values (first in tensor {k}); the file "
                        "is damaged or comes from a run that diverged: use another checkpoint")
            return state
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({e}); it may be truncated or "
            "still downloading: download it again") from None


def _all_finite(t: Tensor) -> bool:
    if not t.is_floating_point():
        return True
    if t.element_size() == 1:  # torch has no isfinite for every float8 format
        t = t.to(torch.float16)
    return bool(torch.isfinite(t).all())


def read_torch_file(path: str | os.PathLike, what: str, hint: str) -> Any:
    """What a `.pth` holds (the official releases ship their weights so): torch.load with
    `weights_only` (no pickled code runs) and, for the zip format, memory-mapped so tensors
    are paged in as they are used; a legacy (pre-1.6) file cannot be mapped and is read
    whole. `what` names the file and `hint` says where a good one comes from."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}; {hint}")
    with path.open("rb") as f:  # the magic, not zipfile.is_zipfile: a truncated zip is still one
        mmap = f.read(4) == b"PK\x03\x04"
    if not mmap:
        log.warning("%s is not a zip archive: reading it whole instead of memory-mapping", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # a damaged file surfaces as any of a dozen exception types
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({reason}); it is "
                              f"truncated or damaged: download {what} again ({hint})") from None


def tensor_dict(obj: Any, path: str | os.PathLike, hint: str) -> dict[str, Tensor]:
    """`obj` as a flat {name: tensor} state dict, or a CheckpointError naming the file."""
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a flat state dict of "
                              f"tensors; {hint}")
    return dict(obj)


def safetensors_header(path: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{key: (dtype, shape)} from a safetensors header, checking that the file holds every
    byte the header promises (a download cut short fails here, naming the file)."""
    path = Path(path)
    if not path.is_file():
        extra = " (nor a bundle directory: it has no config.json)" if path.is_dir() else ""
        raise CheckpointError(f"DiT checkpoint not found: {path} is not a file{extra}")
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                raise ValueError(f"header length {n} exceeds the file")
            header = json.loads(f.read(n))
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not a safetensors file ({e}); download it again") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise CheckpointError(f"{path} is truncated: the header promises {8 + n + end:,} bytes, "
                              f"the file has {size:,}; download it again")
    return {k: (v["dtype"], tuple(v["shape"])) for k, v in header.items() if k != "__metadata__"}
