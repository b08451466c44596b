"""The policies DiffusionNFT compares, without extra model copies.

The model holds the current policy θ. The old policy (which samples the rollouts and
anchors v⁺/v⁻) is an EMA of θ's trainable parameters, and the reference (the KL target)
is their starting values; both are plain tensor dicts laid out like the parameters (sharded
under FSDP), swapped into the model in place for a no-grad pass. With LoRA only the
adapters train, so the reference is the adapters at their start (B = 0): the base model.

The old policy follows DiffusionNFT's schedule: after optimizer step k it becomes
decay·old + (1 - decay)·θ with decay = min(rate·k, max) (rate 0.001, max 0.5), i.e. it
starts on-policy and lags θ more as training goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule


def old_decay(step: int, rate: float = 0.001, cap: float = 0.5) -> float:
    """The old policy's EMA decay after optimizer step `step` (counted from 0)."""
    return min(rate * step, cap)


def trainable_copy(model: nn.Module) -> dict[str, Tensor]:
    """A detached copy of the trainable parameters (the reference policy's values)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@contextmanager
def swapped(model: nn.Module, values: dict[str, Tensor]) -> Iterator[None]:
    """Inside the block, the model's parameters named in `values` hold those values (and
    `values` holds the model's); both are exchanged back on exit. Under FSDP2 the gathered
    copies are dropped at each exchange, so no pass sees stale parameters."""
    params = dict(model.named_parameters())

    @torch.no_grad()
    def exchange() -> None:
        for name, value in values.items():
            p = params[name]
            held = p.detach().clone()
            p.detach().copy_(value)
            value.copy_(held)
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.reshard()

    exchange()
    try:
        yield
    finally:
        exchange()
