"""Processes, devices and FSDP2 sharding (torchtitan style).

Under `torchrun` (WORLD_SIZE in the environment) every process joins a process group
(nccl on GPUs, gloo on CPU), gets a one-dimensional `DeviceMesh` over all ranks, and the
model is sharded with FSDP2 by `parallelize`. Without torchrun the run is a plain single
process and the model is not wrapped.

The twin model calls each block in two halves, `block.self_attention(state)` and
`block.cross_attention_ffn(state, other)`, not through `block.forward`, so FSDP's
forward hooks would never fire for them: `parallelize` registers both methods with
`register_fsdp_forward_method`, which makes each call all-gather the block's parameters
first (and reshard after, and reduce-scatter its gradients in the backward pass).

Starting weights (a bundle) and single-process checkpoints are full state dicts, read by
rank 0 then broadcast and re-sharded. Distributed runs save their checkpoints sharded, each
rank its own shards (`duet.train.checkpoint`, torch.distributed.checkpoint), which DCP
reshards on load, so a checkpoint does not depend on the world size that wrote it.
"""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_optimizer_state_dict,
                                                     set_model_state_dict,
                                                     set_optimizer_state_dict)
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method
from torch.distributed.tensor import DTensor, distribute_tensor

from duet.devices import default_device
from duet.errors import ConfigError

log = logging.getLogger(__name__)

BLOCK_METHODS = ("self_attention", "cross_attention_ffn")  # what the fusion calls on a block


@dataclass
class Runtime:
    """Where this process runs: its device, rank, world size and mesh (None when alone)."""

    device: torch.device
    rank: int = 0
    world: int = 1
    mesh: DeviceMesh | None = None
    owns_group: bool = False  # this Runtime started the process group and ends it

    @property
    def distributed(self) -> bool:
        return self.mesh is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean(self, values: Tensor) -> Tensor:
        """Average over ranks (gloo has no AVG reduction, so sum and divide)."""
        if not self.distributed:
            return values
        total = values.to(self.device)  # nccl reduces device tensors only
        dist.all_reduce(total)
        return total.cpu() / self.world

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def resolve_device(name: str | None) -> torch.device:
    """The device to train on: `name`, or the accelerator if there is one, else cpu."""
    if name is None:
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a torch device name") from None
    if device.type != "cpu":
        acc = torch.accelerator.current_accelerator()
        if acc is None or acc.type != device.type:
            raise ConfigError(f"device {name!r} was requested but this machine has "
                              f"{'no accelerator' if acc is None else acc.type}")
    return device


def init_runtime(device: str | None) -> Runtime:
    """Join the process group when launched by torchrun; otherwise run alone."""
    base = resolve_device(device)
    if "WORLD_SIZE" not in os.environ:
        return Runtime(base)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if base.type == "cpu":
        dev = base
    else:
        dev = torch.device(base.type, local)
        torch.accelerator.set_device_index(local)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(dist.get_default_backend_for_device(dev),
                                device_id=dev if dev.type != "cpu" else None)
    mesh = init_device_mesh(dev.type, (world,), mesh_dim_names=("fsdp",))
    return Runtime(dev, rank, world, mesh, owns)


def parallelize(model: nn.Module, mesh: DeviceMesh, cfg: Any) -> nn.Module:
    """Apply, in torchtitan's order, activation checkpointing and then FSDP2 to a TwinModel.

    `cfg` needs `gradient_checkpointing`, `bf16` and `fsdp_unit` ("block": each block is
    its own FSDP unit; "pair": the (video, audio) block pair of each depth is one unit,
    via `fully_shard([video_block, audio_block])`). The root is wrapped last; the last
    unit keeps its parameters gathered after the forward pass, since the backward pass
    starts there.

    "block" is the default because FSDP unshards per registered method call: a fused block
    pair makes four calls (two per block), so a "pair" unit all-gathers both blocks'
    parameters four times per forward (and again in the backward pass), twice the traffic
    of "block" units for the same number of collectives.

    With bf16, parameters are all-gathered in bf16 and gradients reduced in fp32; inputs are
    not cast (`cast_forward_inputs=False`) because the towers' inputs include timesteps and
    RoPE tables that must stay fp32; the trainer's autocast handles activations.
    """
    model.gradient_checkpointing = cfg.gradient_checkpointing
    if cfg.bf16:
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32,
                                  cast_forward_inputs=False)
    else:
        mp = MixedPrecisionPolicy()
    for unit, reshard in _shard_plan(model, cfg.fsdp_unit):
        fully_shard(unit, mesh=mesh, mp_policy=mp, reshard_after_forward=reshard)
    for block in [*model.video_model.blocks, *model.audio_model.blocks]:
        for method in BLOCK_METHODS:
            register_fsdp_forward_method(block, method)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    return model


def _shard_plan(model: nn.Module, fsdp_unit: str) -> list[tuple[Any, bool]]:
    """(FSDP unit, reshard after forward) in forward order; the last depth stays gathered."""
    if model.bridge is not None:  # towers of different depth: every block is its own unit
        if fsdp_unit != "block":
            raise ConfigError("a bridged model's blocks do not pair up: use fsdp_unit = 'block'")
        units = model.shard_units()
        return [(unit, n != len(units) - 1) for n, unit in enumerate(units)]
    if fsdp_unit not in ("block", "pair"):
        raise ConfigError(f"fsdp_unit {fsdp_unit!r} is unknown; choose 'block' or 'pair'")
    pairs = model.block_pairs()
    plan: list[tuple[Any, bool]] = []
    for depth, (video_block, audio_block) in enumerate(pairs):
        reshard = depth != len(pairs) - 1
        units = [video_block, audio_block] if fsdp_unit == "block" else [[video_block, audio_block]]
        plan += [(unit, reshard) for unit in units]
    return plan


def autocast(device: torch.device, bf16: bool) -> Any:
    """bf16 autocast on `device` (any device type), or nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


# ---- full state dicts ---------------------------------------------------------------------
_FULL_LOAD = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)


def model_state(model: nn.Module) -> dict[str, Tensor]:
    """A plain (unsharded) model's state as CPU copies; sharded runs save shards instead."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_model_state(model: nn.Module, state: dict[str, Tensor], rt: Runtime) -> None:
    """Load a full state (needed on rank 0 only when distributed)."""
    if not rt.distributed:
        model.load_state_dict(state, strict=True)
        return
    set_model_state_dict(model, state, options=_FULL_LOAD)


def optimizer_state(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """A plain model's full optimizer state keyed by parameter names."""
    return get_optimizer_state_dict(model, opt)


def load_optimizer_state(model: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any],
                         rt: Runtime) -> None:
    if not rt.distributed:
        set_optimizer_state_dict(model, opt, state)
        return
    set_optimizer_state_dict(model, opt, state, options=_FULL_LOAD)


def full_tensor(t: Tensor) -> Tensor:
    """The whole tensor on CPU (a collective for sharded DTensors: every rank must call)."""
    return (t.full_tensor() if isinstance(t, DTensor) else t).detach().cpu()


def shard_like(full: Tensor | None, like: Tensor) -> Tensor:
    """Rank 0's full tensor laid out like `like` (sharded when `like` is a DTensor)."""
    if isinstance(like, DTensor):
        if full is None:  # not rank 0: only the shape matters, rank 0's data is scattered
            full = torch.empty(like.shape, dtype=like.dtype)
        full = full.to(like.device, like.dtype)
        return distribute_tensor(full, like.device_mesh, like.placements)
    assert full is not None
    return full.to(like.device, like.dtype)
