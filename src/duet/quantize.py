"""Weight storage in fewer bytes: the blocks' linear layers in fp8 (`Float8Linear`, our
own, one float32 scale per output channel) or int8 (torchao's weight-only quantization), and
byte counts that see through quantized tensor subclasses. `duet.memory.apply_memory` chooses
between them; `refuse_quantized` guards what needs full-precision weights (LoRA merges,
saving a bundle).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

from duet.errors import ConfigError

WEIGHTS_DTYPES: tuple[str, ...] = ("fp8", "int8")


# ---- sizes ----------------------------------------------------------------------------
def tensor_leaves(t: Tensor) -> tuple[list[Tensor], Callable[[list[Tensor]], Tensor]]:
    """The plain tensors that hold t's data (t itself, or the inner tensors of a tensor
    subclass such as torchao's Int8Tensor) and a function that rebuilds t from replacements
    for them, in the same order: how moves and byte counts see through subclasses."""
    if not is_traceable_wrapper_subclass(t):
        return [t], lambda xs: xs[0]
    names, ctx = t.__tensor_flatten__()
    parts = [tensor_leaves(getattr(t, n)) for n in names]

    def rebuild(xs: list[Tensor]) -> Tensor:
        inner, i = {}, 0
        for name, (leaves, again) in zip(names, parts):
            inner[name] = again(xs[i:i + len(leaves)])
            i += len(leaves)
        return type(t).__tensor_unflatten__(inner, ctx, t.size(), t.stride())

    return [x for leaves, _ in parts for x in leaves], rebuild


def tensor_bytes(t: Tensor) -> int:
    """Bytes of t's data, including a quantized subclass's scales (works on meta tensors)."""
    return sum(x.numel() * x.element_size() for x in tensor_leaves(t.detach())[0])


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
