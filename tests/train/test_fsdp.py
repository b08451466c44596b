"""FSDP2 on 2 CPU ranks (gloo, torchrun) against one plain process on the same global batch."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from duet.train import TrainConfig, checkpoint, train
from duet.weights import load_weights

from train_helpers import TINY_MODEL, write_shards

WORKER = Path(__file__).with_name("fsdp_worker.py")


def _losses(out: Path) -> list[list[float]]:
    with (out / "losses.csv").open() as f:
        rows = list(csv.DictReader(f))
    return [[float(r[k]) for k in ("loss", "video", "audio")] for r in rows]


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_two_rank_fsdp_matches_one_process(tmp_path):
    data = write_shards(tmp_path / "data", n=8, per_shard=4)
    base = dict(model=TINY_MODEL, data=[str(data)], steps=4, batch_size=4, lr=1e-3, warmup_steps=1,
                ema_decay=0.9, checkpoint_every=2, keep_checkpoints=5, progress=False)
    # FSDP runs checkpoint only at the end, to keep the run short on gloo
    runs = {"one": {}, "two": {"checkpoint_every": 4},
            "resumed": {"checkpoint_every": 4, "fsdp_unit": "pair", "gradient_checkpointing": True}}
    paths = {}
    for name, extra in runs.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps({**base, **extra, "out_dir": str(tmp_path / name)}))

    # the reference: one plain process (no process group, no FSDP)
    train(TrainConfig.from_file(paths["one"]))
    # "resumed" starts from the 1-process checkpoint at step 2 (world size 1 -> 2), with each
    # block pair as one FSDP unit and gradient checkpointing
    step2 = "checkpoints/step_00000002"
    shutil.copytree(tmp_path / "one" / step2, tmp_path / "resumed" / step2)

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(WORKER), str(paths["two"]), str(paths["resumed"])]
    path = os.pathsep.join(filter(None, [str(WORKER.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ref = _losses(tmp_path / "one")
    for name in ("two", "resumed"):
        got = _losses(tmp_path / name)
        assert len(got) == len(ref) == 4
        for a, b in zip(got, ref):
            assert a == pytest.approx(b, rel=1e-5), name
        step4 = "checkpoints/step_00000004"
        _close(checkpoint.read_weights(tmp_path / name / step4, "model"),  # sharded: DCP
               load_weights(tmp_path / "one" / step4 / "model.safetensors"))
        _close(load_weights(tmp_path / name / "final/model.safetensors"),
               load_weights(tmp_path / "one/final/model.safetensors"))
