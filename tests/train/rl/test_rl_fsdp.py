"""RL under FSDP2 on 2 CPU ranks (gloo, torchrun) against one plain process: the same
rewards and losses, step by step (the old/reference swaps work on sharded parameters)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from duet.train.rl import RLConfig, train_rl

from test_rl_trainer import TINY

WORKER = Path(__file__).with_name("rl_fsdp_worker.py")
KEYS = ("reward", "loss", "video", "audio", "kl")


def _log(out: Path) -> list[list[float]]:
    with (out / "rl_log.csv").open() as f:
        return [[float(r[k]) for k in KEYS] for r in csv.DictReader(f)]


def test_two_rank_fsdp_matches_one_process(tmp_path):
    base = {**TINY, "group_size": 4, "micro_batch": 2, "steps": 2, "lr": 1e-2,
            "checkpoint_every": 2}
    train_rl(RLConfig.from_dict({**base, "out_dir": str(tmp_path / "one")}))
    config = tmp_path / "two.json"
    config.write_text(json.dumps({**base, "out_dir": str(tmp_path / "two")}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(WORKER), str(config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(WORKER.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    one, two = _log(tmp_path / "one"), _log(tmp_path / "two")
    assert len(one) == len(two) == 2
    for a, b in zip(one, two):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
