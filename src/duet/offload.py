"""Sequential offload: the blocks live in (pinned) storage memory and each is copied to the
device just before it runs, with the next one prefetched on a side stream, so a model larger
than the device's memory can still run inference (`SequentialOffload`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from duet.errors import InputError
from duet.quantize import tensor_leaves

_ALIGN = 64  # byte alignment of each tensor inside an offloaded unit's flat buffer
_CHUNK = 4 * 2**30  # offload storage is allocated in chunks of about this many bytes


def refuse_sharded(model: nn.Module, option: str) -> None:
    """FSDP/tensor-parallel parameters are DTensors spread over processes: moving or
    quantizing them one by one would gather or break them."""
    dtensor = sys.modules.get("torch.distributed.tensor")
    if dtensor is None:  # never imported, so nothing in this process is sharded
        return
    if any(isinstance(p, dtensor.DTensor) for p in model.parameters()):
        raise InputError(f"{option} needs a model whose weights are whole in this process, but "
                         "its parameters are sharded (FSDP/DTensor); apply memory options to "
                         "the unsharded model, or shard it instead of offloading")


@dataclass
class _Slot:
    """One parameter or buffer of an offloaded unit."""

    module: nn.Module
    name: str
    is_param: bool

    def set(self, t: Tensor) -> None:
        value = nn.Parameter(t, requires_grad=False) if self.is_param else t
        setattr(self.module, self.name, value)


def _own_tensors(m: nn.Module) -> list[tuple[_Slot, Tensor]]:
    """The parameters and buffers that `m` itself holds (not its children's), detached."""
    return [(_Slot(m, name, True), t.detach()) for name, t in m.named_parameters(recurse=False)] + [
        (_Slot(m, name, False), t.detach()) for name, t in m.named_buffers(recurse=False)]


class _Unit:
    """A block's tensors packed into one flat byte buffer in storage memory, so that moving
    the block is one copy (and one allocation) instead of one per tensor."""

    def __init__(self, module: nn.Module) -> None:
        owned = [st for m in module.modules() for st in _own_tensors(m)]
        self.slots = [slot for slot, _ in owned]
        parts = [tensor_leaves(t) for _, t in owned]
        self._pending = [x for p, _ in parts for x in p]  # copied into storage by `store`
        offsets, total = [], 0
        for x in self._pending:
            offsets.append(total)
            total += -(-x.numel() * x.element_size() // _ALIGN) * _ALIGN
        self.layout = [(off, x.dtype, x.shape) for off, x in zip(offsets, self._pending)]
        self.rebuilders = [(len(p), again) for p, again in parts]
        self.nbytes = total
        self.flat = torch.empty(0, dtype=torch.uint8)

    def store(self, flat: Tensor) -> None:
        """Copy the unit's tensors into `flat` (its place in storage) and point them there."""
        for view, x in zip(self._views(flat), self._pending):
            view.copy_(x)
        self._pending, self.flat = [], flat
        self.attach(flat)

    def _views(self, flat: Tensor) -> list[Tensor]:
        return [flat[off:off + shape.numel() * dtype.itemsize].view(dtype).view(shape)
                for off, dtype, shape in self.layout]

    def attach(self, flat: Tensor) -> None:
        """Point every parameter and buffer of the unit at its place inside `flat`."""
        views, i = self._views(flat), 0
        for slot, (n, again) in zip(self.slots, self.rebuilders):
            slot.set(again(views[i:i + n]))
            i += n


def _storage_buffers(sizes: list[int], device: torch.device, pin: bool) -> list[Tensor]:
    """One flat buffer per unit, sliced from a few large allocations (each a power of two
    of about `_CHUNK` bytes). CUDA's pinned-memory allocator rounds every allocation up to
    a power of two: a block-sized buffer each would cost up to 2x the weights (Ovi's bf16
    blocks are 364 MB, so 512 MB each); chunks waste little."""
    out: list[Tensor] = []
    chunk, used = torch.empty(0, dtype=torch.uint8), 0
    for k, n in enumerate(sizes):
        if used + n > chunk.numel():
            want = max(n, min(_CHUNK, sum(sizes[k:])))
            chunk = torch.empty(1 << (want - 1).bit_length(), dtype=torch.uint8, device=device,
                                pin_memory=pin)
            used = 0
        out.append(chunk[used:used + n])
        used += n
    return out


class SequentialOffload:
    """Keeps the given units (blocks) of `model` in storage memory and copies each to
    `device` just before it runs: forward pre-hooks on every submodule that owns tensors
    load the unit, the `keep` most recently used units stay (a fused video+audio block pair
    interleaves its two blocks), and the model's forward post-hook returns them all, so
    outside a forward every unit is in storage. Everything outside the units (embeddings,
    head) is moved to `device` once and stays.

    With `prefetch` (default on CUDA), loading a unit also starts copying the unit that ran
    after it in the previous forward pass, on a side CUDA stream, so the copy overlaps the
    compute (Ovi runs the same block order every step). Storage is pinned for CUDA, which
    makes the copies asynchronous. Inference only: the copies carry no gradients.
    """

    def __init__(self, model: nn.Module, units: Sequence[nn.Module], device: torch.device | str,
                 *, storage: torch.device | str = "cpu", keep: int = 2,
                 prefetch: bool | None = None) -> None:
        self.device, self.storage = torch.device(device), torch.device(storage)
        if keep < 1:
            raise InputError(f"keep must be at least 1 unit, got {keep}")
        if any(p.requires_grad for p in model.parameters()):
            raise InputError("offload is for inference: call model.requires_grad_(False) first "
                             "(offloaded weights are copies and cannot receive gradients)")
        refuse_sharded(model, "offload")
        self.keep = keep
        self.prefetch = self.device.type == "cuda" if prefetch is None else prefetch
        cuda = self.device.type == "cuda"
        self._stream = torch.cuda.Stream(self.device) if cuda and self.prefetch else None
        inside = {id(m) for u in units for m in u.modules()}
        for m in model.modules():  # the resident part (embeddings, head): moved once
            if id(m) not in inside:
                for slot, t in _own_tensors(m):
                    leaves, again = tensor_leaves(t)
                    slot.set(again([x.to(self.device) for x in leaves]))
        self.units = [_Unit(u) for u in units]
        sizes = [u.nbytes for u in self.units]
        for unit, flat in zip(self.units, _storage_buffers(sizes, self.storage, pin=cuda)):
            unit.store(flat)
        self._used: list[int] = []  # units on the device, least recently used first
        self._loaded: dict[int, Tensor] = {}  # unit -> its flat buffer on the device
        self._ready: dict[int, torch.cuda.Event] = {}  # unit -> end of its prefetch copy
        self._prefetched: int | None = None  # loaded ahead, not used yet
        self._next: dict[int, int] = {}  # unit -> the unit that ran after it last time
        for i, unit in enumerate(units):
            for m in unit.modules():  # whichever of them runs first loads the unit
                if m is unit or _own_tensors(m):
                    m.register_forward_pre_hook(self._hook(i))
        model.register_forward_hook(lambda *_: self.release(), always_call=True)

    def _hook(self, i: int) -> Callable[..., None]:
        return lambda *_: self.use(i)

    @property
    def on_device(self) -> list[int]:
        """Indices of the units whose weights are on the device now (used or prefetched)."""
        return sorted(self._loaded)

    def use(self, i: int) -> None:
        """Make unit i's weights the device copies (loading them if needed)."""
        if self._used and self._used[-1] == i:
            return  # the unit that is running already
        if self._used:
            self._next[self._used[-1]] = i
        if i in self._used:
            self._used.remove(i)
        elif i == self._prefetched:
            self._prefetched = None
        else:
            self._load(i, ahead=False)
        self._wait(i)
        self._used.append(i)
        while len(self._used) > self.keep:
            self._evict(self._used.pop(0))
        nxt = self._next.get(i)
        if self.prefetch and nxt is not None and nxt not in self._loaded:
            if self._prefetched is not None:  # a wrong guess: drop it
                self._evict(self._prefetched)
            self._load(nxt, ahead=True)
            self._prefetched = nxt

    def release(self) -> None:
        """Every unit back to storage (the device copies are freed)."""
        for i in list(self._loaded):
            self._evict(i)
        self._used, self._prefetched = [], None

    def _load(self, i: int, ahead: bool) -> None:
        unit = self.units[i]
        side = self._stream if ahead else None
        with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
            flat = unit.flat.to(self.device, non_blocking=True, copy=True)
            if side is not None:
                self._ready[i] = side.record_event()
        self._loaded[i] = flat
        unit.attach(flat)

    def _wait(self, i: int) -> None:
        """A prefetched unit: the compute stream waits for its copy, and the allocator is
        told that the compute stream uses the buffer (it was allocated on the side stream)."""
        event = self._ready.pop(i, None)
        if event is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(event)
            self._loaded[i].record_stream(current)

    def _evict(self, i: int) -> None:
        if i in self._used:
            self._used.remove(i)
        if i == self._prefetched:
            self._prefetched = None
        self._ready.pop(i, None)
        self._loaded.pop(i, None)
        self.units[i].attach(self.units[i].flat)
