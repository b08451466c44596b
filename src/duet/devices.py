"""One device and dtype policy for inference and training.

Both the pipeline and the trainer ask `default_device` which device to use when none is
named, so a machine with an accelerator picks it the same way everywhere (through
`torch.accelerator`, never a `'cuda'` literal).
"""

from __future__ import annotations

import torch

from duet.errors import InputError

#: Device types the model can generate on (meta holds no numbers; others are untested).
RUNNABLE = ("cpu", "cuda")


def default_device() -> torch.device:
    """The current accelerator if this machine has one, else cpu."""
    acc = torch.accelerator.current_accelerator()
    return torch.device(acc.type) if acc is not None else torch.device("cpu")


def resolve_device_dtype(device: str | torch.device | None,
                         dtype: torch.dtype | str | None) -> tuple[torch.device, torch.dtype]:
    """Defaults: the accelerator (if the model runs on it) + bf16, else CPU + float32;
    refuse combos that can't work."""
    if device is None:
        device = default_device()
        if device.type not in RUNNABLE:
            device = torch.device("cpu")
    try:
        device = torch.device(device)
    except RuntimeError as e:
        raise InputError(f"unknown device {device!r} ({e}); use 'cpu' or 'cuda[:N]'") from None
    if device.type not in RUNNABLE:  # e.g. meta holds no numbers, so it cannot generate
        raise InputError(f"device {str(device)!r} cannot run the model; use 'cpu' or 'cuda[:N]'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but no CUDA GPU is available; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise InputError(f"device {str(device)!r} does not exist: this machine has {n} GPU(s) "
                         f"(cuda:0 to cuda:{n - 1})")
    if isinstance(dtype, str):
        names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                 "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
        if dtype not in names:
            raise InputError(f"unknown dtype {dtype!r}; use one of {sorted(names)}")
        dtype = names[dtype]
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise InputError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
    if dtype == torch.float16 and device.type == "cpu":
        raise InputError("float16 is not usable on CPU (extremely slow); use float32 or bfloat16")
    return device, dtype
