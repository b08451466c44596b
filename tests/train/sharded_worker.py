"""Run under torchrun by test_sharded_checkpoint.py: train each config file given on the
command line in one process group; `CONFIG@N` kills every rank with SIGKILL right after
step N (after that step's checkpoint, if any), as a crashed or preempted job would be."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

import torch.distributed as dist

from duet.train import TrainConfig, train


def kill_after(step: int) -> Any:
    def callback(record: dict[str, Any]) -> None:
        if record["step"] == step:
            os.kill(os.getpid(), signal.SIGKILL)
    return callback


def main(args: list[str]) -> None:
    logging.basicConfig(level=logging.WARNING)
    dist.init_process_group("gloo")
    try:
        for arg in args:
            path, _, stop = arg.partition("@")
            train(TrainConfig.from_file(path), callback=kill_after(int(stop)) if stop else None)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
