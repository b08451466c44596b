"""Ulysses sequence parallelism for inference (Jacobs et al. 2023, DeepSpeed-Ulysses).

Each of P processes holds 1/P of each modality's tokens. Everything per-token (modulation,
FFN, output head, the text cross-attention, whose queries need only their own rows against
the full text on every rank) runs on that shard as is. Attention over a sequence needs
every token, so around it q/k/v are exchanged with one all-to-all: afterwards each rank
holds the whole sequence for H/P heads, attends, and a second all-to-all returns the output
as its own tokens for all heads. Ovi's fusion attention works the same way with the
queries of one modality and the keys/values of the other, so both sequences are exchanged.

Token counts are padded to a multiple of P (zeros, which stay finite through every layer);
padded keys are masked and padded rows are dropped when the outputs are gathered, so the
result equals the single-process one up to float rounding. RoPE is applied on each rank's
shard with the rows of the global table, i.e. at each token's global position, before the
exchange.

Collectives: `all_to_all_single` for the exchanges and `all_gather` for the outputs, both
supported by nccl and by gloo (the CPU backend the tests use). The exchange carries no
autograd, so this is for inference only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from duet.errors import ConfigError


@dataclass(frozen=True)
class SequenceParallel:
    """A process group over which every sequence is split into `world` contiguous shards;
    this process holds shard `rank`. Build with `SequenceParallel.over(group)`."""

    group: dist.ProcessGroup | None  # None: the default (WORLD) group
    rank: int
    world: int

    @classmethod
    def over(cls, group: dist.ProcessGroup | None = None) -> SequenceParallel:
        """Split sequences over `group` (default: all processes of the default group)."""
        if not dist.is_available() or not dist.is_initialized():
            raise ConfigError(
                "sequence parallelism needs a torch.distributed process group: launch with "
                "`torchrun --nproc-per-node N ...` and call dist.init_process_group() first "
                "(the CLI does both with --sequence-parallel)")
        return cls(group, dist.get_rank(group), dist.get_world_size(group))

    def check_heads(self, heads: int, what: str) -> None:
        """Each rank attends with heads / world heads, so the heads must divide evenly."""
        if heads % self.world:
            fits = [n for n in range(1, heads + 1) if heads % n == 0]
            raise ConfigError(
                f"sequence parallelism splits the attention heads between processes, but the "
                f"{what} has {heads} heads, not divisible by the {self.world} processes; launch "
                f"a process count that divides {heads}: one of {fits}")

    # ---- tokens: pad, shard, gather -----------------------------------------------------
    def padded(self, n: int) -> int:
        """n rounded up to a multiple of the world size (every shard has the same length)."""
        return -(-n // self.world) * self.world

    def shard(self, x: Tensor, dim: int = 1) -> Tensor:
        """This rank's slice of x along `dim` (n tokens), zero-padded to `padded(n)` first."""
        n = x.shape[dim]
        pad = self.padded(n) - n
        if pad:
            x = F.pad(x, (0, 0) * (x.dim() - 1 - dim % x.dim()) + (0, pad))
        return x.chunk(self.world, dim=dim)[self.rank].contiguous()  # frees the full tensor

    def gather(self, x: Tensor, n: int, dim: int = 1) -> Tensor:
        """Every rank's shard of x concatenated along `dim` and cut to the true `n` tokens
        (the same full tensor on every rank)."""
        parts = [torch.empty_like(x) for _ in range(self.world)]
        dist.all_gather(parts, x.contiguous(), group=self.group)
        return torch.cat(parts, dim=dim).narrow(dim, 0, n)

    # ---- heads: the all-to-all exchange around attention --------------------------------
    def to_heads(self, *xs: Tensor) -> tuple[Tensor, ...]:
        """This rank's shards [B, L/P, H, D] -> the whole sequences [B, L, H/P, D] for this
        rank's heads; the tensors (of one shape) travel in one all-to-all."""
        p, h = self.world, xs[0].shape[-2]
        assert h % p == 0, "check_heads runs when sequence parallelism is enabled"
        # chunk j of dim 0 goes to rank j: the tokens of its head group j
        send = torch.stack([x.unflatten(-2, (p, h // p)).movedim(-3, 0) for x in xs], dim=1)
        recv = self._all_to_all(send)  # (P, N, B, L/P, H/P, D): chunk i = rank i's tokens
        out = recv.movedim(0, -4).flatten(-4, -3)  # (N, B, L, H/P, D)
        return tuple(out.unbind(0))

    def to_tokens(self, x: Tensor) -> Tensor:
        """The inverse of `to_heads`: [B, L, H/P, D] -> this rank's tokens [B, L/P, H, D]."""
        p = self.world
        send = x.unflatten(-3, (p, -1)).movedim(-4, 0).contiguous()  # (P, B, L/P, H/P, D)
        recv = self._all_to_all(send)  # chunk i: head group i of this rank's tokens
        return recv.movedim(0, -3).flatten(-3, -2)  # (B, L/P, H, D)

    def _all_to_all(self, send: Tensor) -> Tensor:
        recv = torch.empty_like(send)
        dist.all_to_all_single(recv, send, group=self.group)
        return recv
