"""Sharded (DCP) training checkpoints on 2 CPU ranks (gloo, torchrun): each rank writes its
own shards, and a run killed with SIGKILL and resumed repeats the uninterrupted one exactly."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from duet.errors import CheckpointError
from duet.train import TrainConfig, train

from train_helpers import TINY_MODEL, write_shards

WORKER = Path(__file__).with_name("sharded_worker.py")


def _torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(WORKER), *args]
    path = os.pathsep.join(filter(None, [str(WORKER.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def _losses(out: Path) -> list[list[str]]:
    """losses.csv as written (strings: equal strings are bit-equal floats)."""
    with (out / "losses.csv").open() as f:
        return [[r[k] for k in ("step", "loss", "video", "audio", "grad_norm")]
                for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """"whole": 6 steps on 2 ranks; "cut": the same run killed after step 5 (last checkpoint:
    step 4, with a half-written step 6 left behind), then started again and resumed."""
    tmp = tmp_path_factory.mktemp("sharded")
    data = write_shards(tmp / "data", n=8, per_shard=4)
    base = dict(model=TINY_MODEL, data=[str(data)], steps=6, batch_size=4, lr=1e-3,
                warmup_steps=1, ema_decay=0.9, checkpoint_every=2, keep_checkpoints=2,
                progress=False)
    for name in ("whole", "cut"):
        (tmp / f"{name}.json").write_text(json.dumps({**base, "out_dir": str(tmp / name)}))
    killed = _torchrun(str(tmp / "whole.json"), f"{tmp / 'cut.json'}@5")
    assert killed.returncode != 0, "the run meant to be killed finished"
    assert (tmp / "whole" / "final").is_dir(), killed.stdout[-3000:] + killed.stderr[-3000:]
    assert not (tmp / "cut" / "final").exists()
    (tmp / "cut" / "checkpoints" / ".tmp-step_00000006").mkdir()  # a save killed half-way
    step4 = tmp / "cut" / "checkpoints" / "step_00000004"
    inode = step4.stat().st_ino
    resumed = _torchrun(str(tmp / "cut.json"))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert step4.stat().st_ino == inode  # resumed after step 4, not started again from 0
    return tmp


def test_resume_after_kill_repeats_the_loss_curve_exactly(runs):
    whole, cut = _losses(runs / "whole"), _losses(runs / "cut")
    assert [r[0] for r in whole] == [str(s) for s in range(1, 7)]
    assert cut == whole
    assert sorted(p.name for p in (runs / "cut" / "checkpoints").iterdir()) == [
        "step_00000004", "step_00000006"]  # keep_checkpoints, and no temporary folder


def test_each_rank_writes_its_own_shards(runs):
    folder = runs / "whole" / "checkpoints" / "step_00000006"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [".metadata", "__0_0.distcp", "__1_0.distcp", "manifest.json", "rng.pt",
                     "trainer.json"]
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    assert set(manifest) == set(names) - {"manifest.json"}
    # no rank gathered a full tensor: each row-sharded tensor is stored as 2 pieces, one
    # in each rank's file, and the files hold about half of the bytes each
    meta = dcp.FileSystemReader(folder).read_metadata()
    files: dict[str, set[str]] = {}
    for index, info in meta.storage_data.items():
        files.setdefault(index.fqn, set()).add(info.relative_path)
    tensors = {k: m.size for k, m in meta.state_dict_metadata.items()
               if isinstance(m, TensorStorageMetadata)}
    sharded = [k for k, size in tensors.items() if k.startswith(("model.", "ema.", "optimizer.state."))
               and len(size) > 0 and size[0] > 1]
    assert len(sharded) > 100
    for key in sharded:
        assert files[key] == {"__0_0.distcp", "__1_0.distcp"}, key
    sizes = [(folder / f"__{rank}_0.distcp").stat().st_size for rank in (0, 1)]
    assert 0.4 < sizes[0] / sum(sizes) < 0.6


def test_one_process_resumes_a_sharded_checkpoint(runs, tmp_path):
    """DCP reshards on load: 2 ranks' shards resume in a plain process (same losses up to
    the float summation order of 2 ranks vs 1)."""
    out = tmp_path / "alone"
    (out / "checkpoints").mkdir(parents=True)
    src = runs / "whole" / "checkpoints" / "step_00000004"
    shutil.copytree(src, out / "checkpoints" / src.name)
    cfg = json.loads((runs / "whole.json").read_text()) | {"out_dir": str(out)}
    train(TrainConfig.from_dict(cfg))
    for a, b in zip(_losses(out), _losses(runs / "whole"), strict=True):
        assert [float(x) for x in a] == pytest.approx([float(x) for x in b], rel=1e-5)


def test_a_sharded_checkpoint_of_another_model_is_refused_by_key(runs, tmp_path):
    out = tmp_path / "other"
    src = runs / "whole" / "checkpoints" / "step_00000004"
    shutil.copytree(src, out / "checkpoints" / src.name)
    cfg = json.loads((runs / "whole.json").read_text()) | {"out_dir": str(out)}
    cfg["model"] = {**TINY_MODEL, "ffn_dim": 48}
    with pytest.raises(CheckpointError, match=r"does not fit this model config: wrong shape"):
        train(TrainConfig.from_dict(cfg))
