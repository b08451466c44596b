"""Weights on disk: safetensors, atomic writes, and model bundles.

A bundle is a directory with `config.json` (the `Preset`: towers, media rates, sampler
defaults, codec names) and `model.safetensors` (the `TwinModel` state dict with the
official `video_model.*` / `audio_model.*` key names). Every write goes to a temporary file
in the same directory and is renamed into place, so a crash never leaves a half file under
the final name.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from duet.atomic import atomic_write
from duet.config import Preset
from duet.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

BUNDLE_CONFIG = "config.json"
BUNDLE_WEIGHTS = "model.safetensors"
FORMAT = "duet-bundle"


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


def key_problems(want: Mapping[str, Tensor], state: Mapping[str, Tensor], shown: int = 4) -> str:
    """What keeps `state` from loading strictly into a module whose state dict is `want`:
    "" when keys and shapes agree, else e.g. "missing (2): a, b; wrong shape (1): c (3,) (expected
    (4,))", a few keys per kind, so that the error beats torch's list of hundreds."""
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(want[k].shape)})"
             for k in sorted(set(state) & set(want)) if state[k].shape != want[k].shape]
    return "; ".join(
        f"{label} ({len(keys)}): {', '.join(keys[:shown])}{', ...' if len(keys) > shown else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
        if keys)


def check_state_dict(model: nn.Module, state: dict[str, Tensor], source: str = "checkpoint") -> None:
    """Raise CheckpointError listing missing, unexpected and wrongly shaped keys."""
    want = model.state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(want[k].shape)}"
              for k in sorted(set(want) & set(state)) if state[k].shape != want[k].shape]
    if not (missing or unexpected or shapes):
        return
    parts = [f"{source} does not fit this model config:"]
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("shape mismatches", shapes)):
        if items:
            shown = ", ".join(items[:8]) + (f", ... ({len(items) - 8} more)" if len(items) > 8 else "")
            parts.append(f"{len(items)} {title}: {shown}")
    parts.append("Check that the checkpoint belongs to this preset (see `duet info`).")
    raise CheckpointError("\n  ".join(parts))


def load_into(model: nn.Module, state: dict[str, Tensor], source: str = "checkpoint",
              dtype: torch.dtype | None = None) -> nn.Module:
    """Strictly load `state` into `model` (which may live on the meta device)."""
    check_state_dict(model, state, source)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model


def write_config(directory: Path, preset: Preset, extra: dict[str, Any]) -> None:
    payload = {"format": FORMAT, **preset.to_dict(), **extra}
    atomic_write(directory / BUNDLE_CONFIG, lambda tmp: tmp.write_text(json.dumps(payload, indent=2)),
                 CheckpointError)


def read_config(directory: str | os.PathLike) -> tuple[Preset, dict[str, Any]]:
    """Read a bundle's config.json: (preset, extra fields such as `random_init`)."""
    path = Path(directory) / BUNDLE_CONFIG
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a Duet model bundle: {BUNDLE_CONFIG} is missing. "
                              "Create one with `duet convert` or DuetPipeline.save_pretrained")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a JSON {type(data).__name__}, not the object "
                              f"({{...}}) of a {FORMAT} config")
    if data.pop("format", None) != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} config")
    extra = {k: data.pop(k) for k in ("random_init", "note") if k in data}
    try:
        return Preset.from_dict(data), extra
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: {e}") from None
