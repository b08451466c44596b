"""Ulysses sequence parallelism on 2 CPU ranks (gloo, torchrun) against one plain process:
fused forwards with padded shards and batches, the demo preset's shape, and a guided
sampling loop must match to float32 rounding on every rank."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ulysses_worker import CASES

from duet.errors import ConfigError
from duet.loading import random_model
from duet.parallel import SequenceParallel
from duet.presets import get_preset

WORKER = Path(__file__).with_name("ulysses_worker.py")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """What each of the 2 ranks returned for every case (one torchrun for all of them)."""
    out = tmp_path_factory.mktemp("ulysses")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(WORKER), str(out)]
    path = os.pathsep.join(filter(None, [str(WORKER.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_match_one_process(ranks, case):
    preset, run = CASES[case]
    with torch.no_grad():
        want = run(random_model(get_preset(preset)).eval())
    assert ranks[0]["world"] == 2
    for name, ref in want.items():
        got = ranks[0][case][name]
        assert got.shape == ref.shape, name
        diff = (got - ref).abs().max().item()
        assert diff < 1e-5, f"{case}/{name}: max abs diff {diff:.2e}"
        assert torch.equal(ranks[1][case][name], got), f"{case}/{name}: ranks disagree"


def test_refuses_heads_not_divisible_and_bridge(ranks):
    errors = ranks[0]["errors"]
    assert "3 heads, not divisible by the 2 processes" in errors["heads"]
    assert "one of [1, 3]" in errors["heads"]
    assert "symmetric (Ovi) towers only" in errors["bridge"]


def test_needs_a_process_group():
    with pytest.raises(ConfigError, match="torchrun"):
        SequenceParallel.over()
