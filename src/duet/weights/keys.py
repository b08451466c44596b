"""The one key/shape check: does a state dict (or a file header, or a table of expected
shapes) fit a module? Bundles, training checkpoints, the official DiT, the Wan and MMAudio
codecs and the umT5 encoder all report a misfit in the same words, a few keys per kind,
because an error naming three keys beats torch's list of hundreds.
"""

from __future__ import annotations

from collections.abc import Mapping
import torch
from torch import Tensor, nn

from duet.errors import CheckpointError

# A tensor, or just its shape (a safetensors header or a table of expected shapes).
Shaped = Tensor | tuple[int, ...] | torch.Size


def _shape(value: Shaped) -> tuple[int, ...]:
    return tuple(value.shape) if isinstance(value, Tensor) else tuple(value)


def key_problems(want: Mapping[str, Shaped], have: Mapping[str, Shaped], shown: int = 4) -> str:
    """What keeps `have` from loading strictly where `want` is expected: "" when keys and
    shapes agree, else e.g. "missing (2): a, b; wrong shape (1): c (3,) (expected (4,))",
    at most `shown` keys per kind."""
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    wrong = [f"{k} {_shape(have[k])} (expected {_shape(want[k])})"
             for k in sorted(set(have) & set(want)) if _shape(have[k]) != _shape(want[k])]
    return "; ".join(
        f"{label} ({len(keys)}): {', '.join(keys[:shown])}{', ...' if len(keys) > shown else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
        if keys)


def check_state_dict(model: nn.Module, state: Mapping[str, Shaped], source: str = "checkpoint") -> None:
    """Raise CheckpointError naming the missing, unexpected and wrongly shaped keys."""
    problems = key_problems(model.state_dict(), state)
    if problems:
        raise CheckpointError(f"{source} does not fit this model config: {problems}. Check that "
                              "the checkpoint belongs to this preset (see `duet info`)")


def load_into(model: nn.Module, state: dict[str, Tensor], source: str = "checkpoint",
              dtype: torch.dtype | None = None) -> nn.Module:
    """Strictly load `state` into `model` (which may live on the meta device)."""
    check_state_dict(model, state, source)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model
