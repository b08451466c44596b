"""Regional `torch.compile`: each transformer block's two halves compiled on their own.

Compiling block by block (as diffusers' `compile_repeated_blocks` does) keeps the graphs
small: blocks of one tower share the code and the shapes, so with dynamo's default of
inlining nn.Modules (parameters as graph inputs) they reuse one compiled graph, and the
whole model compiles in seconds instead of minutes. The fusion loop, guidance and the
sampler stay eager, so nothing about their control flow has to be traceable.

Compiling is an optimisation, never a requirement: inductor needs a C++ compiler on a CPU
and a supported GPU otherwise. A compiled half that fails on its first call logs one
warning and the whole model runs eagerly from then on (a genuine input error then raises
from the eager run, with its own message).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

COMPILED_METHODS: tuple[str, ...] = ("self_attention", "cross_attention_ffn")


class CompileSwitch:
    """Shared by the wrappers of one model: the first compiler failure turns them all to
    eager, with one warning, so a CPU without a C++ compiler does not retry per block."""

    def __init__(self) -> None:
        self.failed = False


class CompiledOrEager:
    """`torch.compile(fn)`, falling back to `fn` for good once any compiled call sharing
    `switch` has failed (compiler failures surface at a graph's first call)."""

    def __init__(self, fn: Callable[..., Any], switch: CompileSwitch, **options: Any) -> None:
        self.eager = fn
        self.compiled = torch.compile(fn, **options)
        self.switch = switch
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.switch.failed:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - a compiler failure of any kind: run eagerly
            self.switch.failed = True
            first = str(e).splitlines()[0] if str(e) else ""
            logger.warning("torch.compile failed for %s (%s: %s); running the model eagerly",
                           getattr(self.eager, "__qualname__", self.eager), type(e).__name__, first)
            return self.eager(*args, **kwargs)


def compile_blocks(blocks: list[nn.Module], **options: Any) -> int:
    """Wrap the halves of every block in `blocks` that has them (`COMPILED_METHODS`);
    `options` go to `torch.compile` (e.g. mode="max-autotune"). Returns the count wrapped."""
    switch = CompileSwitch()
    n = 0
    for block in blocks:
        for name in COMPILED_METHODS:
            method = getattr(block, name, None)
            if method is not None and not isinstance(method, CompiledOrEager):
                setattr(block, name, CompiledOrEager(method, switch, **options))
                n += 1
    return n
