"""Memory options: what lets the 11.7B twin DiT run on a GPU smaller than its 23 GB of bf16
weights plus activations.

Four independent levers, chosen with one `MemoryConfig`:

- `weights_dtype="fp8"`: the blocks' linear layers store float8 (e4m3) weights with one
  float32 scale per output channel and compute in the activations' dtype (bf16 on GPU):
  `Float8Linear`, about half the bytes. Norms, embeddings, the head and the modulation
  tables keep the model dtype: they are small and the most sensitive to rounding.
- `weights_dtype="int8"`: the same layers through torchao's int8 weight-only quantization.
- `offload=True`: the blocks live in (pinned) CPU memory and each block is copied to the
  GPU just before it runs (`SequentialOffload`); the embeddings and head stay resident.
- `free_text_encoder`: the text encoder's weights are dropped once the prompts are encoded
  (their embeddings stay cached); `vae_tiling`: the video codec decodes in tiles.

`apply_memory` does the model's part; the pipeline reads the rest of the config.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

from duet.codecs import VideoCodec, get_video_codec
from duet.errors import ConfigError, InputError

if TYPE_CHECKING:
    from duet.model import TwinModel

log = logging.getLogger(__name__)

WEIGHTS_DTYPES: tuple[str, ...] = ("fp8", "int8")
_ALIGN = 64  # byte alignment of each tensor inside an offloaded unit's flat buffer
_CHUNK = 4 * 2**30  # offload storage is allocated in chunks of about this many bytes


@dataclass(frozen=True)
class MemoryConfig:
    """How to fit the model on the device. The defaults change nothing (except that the
    text encoder is freed after encoding on a GPU, where its memory is scarce)."""

    offload: bool = False  # blocks in CPU memory, each moved to the device only to run
    weights_dtype: str | None = None  # "fp8"/"int8" storage of the blocks' linears; None = as is
    free_text_encoder: bool | None = None  # drop its weights after encoding; None = on for CUDA
    vae_tiling: bool = False  # decode video in tiles (codecs with a `tiled` option only)

    def __post_init__(self) -> None:
        if self.weights_dtype is not None and self.weights_dtype not in WEIGHTS_DTYPES:
            raise ConfigError(f"weights_dtype {self.weights_dtype!r} is not supported; use one of "
                              f"{list(WEIGHTS_DTYPES)} or None (keep the model's dtype)")

    def frees_text_encoder(self, device: torch.device) -> bool:
        """`free_text_encoder`, with its default resolved for `device`."""
        if self.free_text_encoder is None:
            return device.type == "cuda"
        return self.free_text_encoder


def apply_memory(model: TwinModel, cfg: MemoryConfig, device: torch.device | str) -> TwinModel:
    """Quantize the blocks' linears where the model is (usually the CPU, so the GPU never
    holds the full-precision copy), then place it on `device`, whole or block by block.

    The units quantized and offloaded are `model.shard_units()`: its blocks and bridge
    layers. Returns the same model, changed in place.
    """
    device = torch.device(device)
    if cfg.weights_dtype is None and not cfg.offload:
        return model.to(device)
    _refuse_sharded(model, "offload" if cfg.offload else f"weights_dtype={cfg.weights_dtype!r}")
    model.eval().requires_grad_(False)  # both are for inference: frozen weights
    units = list(model.shard_units())
    if cfg.weights_dtype == "fp8":
        n = sum(quantize_fp8(u) for u in units)
        log.info("stored %d linear layers in float8 (e4m3) with per-channel scales", n)
    elif cfg.weights_dtype == "int8":
        n = sum(quantize_int8(u) for u in units)
        log.info("stored %d linear layers in int8 (torchao weight-only)", n)
    if not cfg.offload:
        return model.to(device)
    if device.type == "cpu":
        log.warning("offload on device cpu keeps the weights where they already are: it saves "
                    "no memory (it is meant for --device cuda)")
    SequentialOffload(model, units, device)
    return model


# ---- sizes ----------------------------------------------------------------------------
def _leaves(t: Tensor) -> tuple[list[Tensor], Callable[[list[Tensor]], Tensor]]:
    """The plain tensors that hold t's data (t itself, or the inner tensors of a tensor
    subclass such as torchao's Int8Tensor) and a function that rebuilds t from replacements
    for them, in the same order: how moves and byte counts see through subclasses."""
    if not is_traceable_wrapper_subclass(t):
        return [t], lambda xs: xs[0]
    names, ctx = t.__tensor_flatten__()
    parts = [_leaves(getattr(t, n)) for n in names]

    def rebuild(xs: list[Tensor]) -> Tensor:
        inner, i = {}, 0
        for name, (leaves, again) in zip(names, parts):
            inner[name] = again(xs[i:i + len(leaves)])
            i += len(leaves)
        return type(t).__tensor_unflatten__(inner, ctx, t.size(), t.stride())

    return [x for leaves, _ in parts for x in leaves], rebuild


def tensor_bytes(t: Tensor) -> int:
    """Bytes of t's data, including a quantized subclass's scales (works on meta tensors)."""
    return sum(x.numel() * x.element_size() for x in _leaves(t.detach())[0])


def weight_bytes(module: nn.Module) -> int:
    """Bytes of all parameters and buffers of `module`, as stored."""
    return sum(tensor_bytes(t) for t in _tensors(module))


def _tensors(module: nn.Module) -> Iterator[Tensor]:
    yield from module.parameters()
    yield from module.buffers()


# ---- fp8 ------------------------------------------------------------------------------
def _float8() -> torch.dtype:
    fp8 = getattr(torch, "float8_e4m3fn", None)
    if fp8 is None:
        raise ConfigError(f"weights_dtype='fp8' needs torch.float8_e4m3fn (torch >= 2.1); this "
                          f"torch {torch.__version__} has none: upgrade torch or use "
                          "weights_dtype='int8'")
    return fp8


class Float8Linear(nn.Module):
    """A frozen `nn.Linear` whose weight is stored as float8_e4m3fn times one float32 scale
    per output channel, dequantised to the input's dtype in forward.

    Per-channel scales: a row's largest weight maps to fp8's largest value, so rows of very
    different magnitude (common in attention projections) all keep e4m3's 3-bit mantissa.
    The matmul itself runs in the input's dtype (bf16 on GPU), so this saves memory, not
    time. Note that `module.to(dtype)` would cast the fp8 weight too (it is a float tensor).
    """

    def __init__(self, weight: Tensor, weight_scale: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight)  # (out, in) float8_e4m3fn
        self.register_buffer("weight_scale", weight_scale)  # (out, 1) float32
        self.register_buffer("bias", bias)  # (out,) model dtype, or None

    @classmethod
    @torch.no_grad()
    def from_linear(cls, linear: nn.Linear) -> Float8Linear:
        fp8 = _float8()
        w = linear.weight.detach().float()
        top = torch.finfo(fp8).max
        amax = w.abs().amax(dim=1, keepdim=True)  # (out, 1)
        scale = amax.clamp(min=torch.finfo(torch.float32).tiny) / top
        q = (w / scale).clamp(-top, top).to(fp8)
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        return cls(q, scale, bias)

    def forward(self, x: Tensor) -> Tensor:
        w = (self.weight.float() * self.weight_scale).to(x.dtype)  # (out, in), rounded once
        return F.linear(x, w, None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, float8_e4m3fn"


def quantize_fp8(module: nn.Module) -> int:
    """Replace every `nn.Linear` inside `module` by a `Float8Linear`; returns how many."""
    _float8()
    targets = [(parent, name, child) for parent in module.modules()
               for name, child in parent.named_children() if isinstance(child, nn.Linear)]
    for parent, name, child in targets:
        setattr(parent, name, Float8Linear.from_linear(child))
    return len(targets)


# ---- int8 (torchao) -------------------------------------------------------------------
def quantize_int8(module: nn.Module) -> int:
    """Int8 weight-only quantization (per output channel) of every `nn.Linear` inside
    `module` through torchao; returns how many layers it converted."""
    try:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_
    except ImportError as e:
        raise ConfigError(f"weights_dtype='int8' needs torchao ({e}); install it with "
                          "`pip install torchao` or use weights_dtype='fp8'") from None
    n = sum(isinstance(m, nn.Linear) for m in module.modules())
    # set_inductor_config=False: torchao would otherwise change torch.compile's global settings
    quantize_(module, Int8WeightOnlyConfig(set_inductor_config=False),
              filter_fn=lambda m, _: isinstance(m, nn.Linear))
    return n


def is_quantized(module: nn.Module) -> bool:
    """Whether any weight of `module` is stored in fp8 (`Float8Linear`) or as a tensor
    subclass (torchao), i.e. is no longer a plain float tensor one can add to."""
    return any(isinstance(m, Float8Linear) for m in module.modules()) or any(
        is_traceable_wrapper_subclass(p.detach()) for p in module.parameters())


def refuse_quantized(module: nn.Module, action: str) -> None:
    """ConfigError if `module` has quantized weights: `action` needs full-precision ones."""
    if is_quantized(module):
        raise ConfigError(f"cannot {action}: this model's linear layers are stored in fp8/int8 "
                          "(weights_dtype); load it without weights_dtype to do this, or merge "
                          "LoRA adapters into a full-precision bundle first and quantize that")


def _refuse_sharded(model: nn.Module, option: str) -> None:
    """FSDP/tensor-parallel parameters are DTensors spread over processes: moving or
    quantizing them one by one would gather or break them."""
    dtensor = sys.modules.get("torch.distributed.tensor")
    if dtensor is None:  # never imported, so nothing in this process is sharded
        return
    if any(isinstance(p, dtensor.DTensor) for p in model.parameters()):
        raise InputError(f"{option} needs a model whose weights are whole in this process, but "
                         "its parameters are sharded (FSDP/DTensor); apply memory options to "
                         "the unsharded model, or shard it instead of offloading")


# ---- sequential offload ---------------------------------------------------------------
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
        parts = [_leaves(t) for _, t in owned]
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
        _refuse_sharded(model, "offload")
        self.keep = keep
        self.prefetch = self.device.type == "cuda" if prefetch is None else prefetch
        cuda = self.device.type == "cuda"
        self._stream = torch.cuda.Stream(self.device) if cuda and self.prefetch else None
        inside = {id(m) for u in units for m in u.modules()}
        for m in model.modules():  # the resident part (embeddings, head): moved once
            if id(m) not in inside:
                for slot, t in _own_tensors(m):
                    leaves, again = _leaves(t)
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


# ---- text encoder and codecs -----------------------------------------------------------
def release_text_encoder(encoder: Any) -> bool:
    """Drop a text encoder's weights through its `unload()` (a `CachedEncoder` keeps its
    cached embeddings and passes the call on). Returns whether it could: an encoder without
    `unload()` keeps its weights."""
    unload = getattr(encoder, "unload", None)
    if callable(unload):
        unload()
        return True
    log.debug("text encoder %s has no unload(): its weights stay in memory", type(encoder).__name__)
    return False


def build_video_codec(name: str, options: dict[str, Any], tiled: bool = False) -> VideoCodec:
    """The registered video codec `name`; with `tiled`, asked to encode/decode in tiles,
    which only codecs with a `tiled` option (the Wan2.2 VAE) can do."""
    if not tiled:
        return get_video_codec(name, **options)
    try:
        return get_video_codec(name, **options, tiled=True)
    except ConfigError as e:
        raise ConfigError(f"vae_tiling (--vae-tiling) was requested but video codec {name!r} "
                          f"cannot be built with tiled=True: {e}. Only codecs with a `tiled` "
                          "option (wan2.2-vae) decode in tiles; drop --vae-tiling for this "
                          "model") from None
