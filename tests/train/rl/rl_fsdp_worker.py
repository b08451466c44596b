"""Run under torchrun by test_rl_fsdp.py: RL-train each config file given on the command line,
in one process group."""

from __future__ import annotations

import logging
import sys

import torch.distributed as dist

from duet.train.rl import RLConfig, train_rl


def main(paths: list[str]) -> None:
    logging.basicConfig(level=logging.WARNING)
    dist.init_process_group("gloo")
    try:
        for path in paths:
            train_rl(RLConfig.from_file(path))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
