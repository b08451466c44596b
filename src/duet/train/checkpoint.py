"""Training checkpoints: one folder per step, written whole or not at all.

Layout of `<out_dir>/checkpoints/step_00001200/` for a single-process run ("full"):
    model.safetensors   full fp32 model state (official key names)
    ema.safetensors     EMA of the trainable parameters
    optimizer.pt        full AdamW state keyed by parameter name
    rng.pt              torch / accelerator / numpy / python RNG states of every rank
    trainer.json        step, data position, loss history, the config that wrote it
    manifest.json       size and sha256 of every file above; written last

A distributed (FSDP2) run writes the model, EMA and optimizer states "sharded" instead, with
`torch.distributed.checkpoint` (DCP): every rank writes its own shards (`__RANK_N.distcp`)
and DCP's `.metadata` says where each piece of each tensor is, so no rank ever holds a full
state (about 140 GB for the 11.7B model). rng.pt, trainer.json and manifest.json are as
above. DCP reshards on load, so either format resumes on any number of ranks.

A folder is built under a temporary name (`.tmp-step_…`) and renamed into place, so a
killed run leaves either a complete folder or a temporary one that is ignored and removed.
A folder whose manifest is missing, unreadable or disagrees with the files (truncated or
altered since) is skipped with a warning, and the newest valid one is used instead.
In the full format only rank 0 touches the files; the other ranks receive what they need
by broadcast, one part at a time, so rank 0 never holds more than one full state. In the
sharded format each rank hashes and verifies its share of the shard files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch import Tensor, nn
from torch.distributed.checkpoint.metadata import TensorStorageMetadata
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from duet.atomic import atomic_write
from duet.errors import CheckpointError
from duet.weights import key_problems, load_weights, save_weights

if TYPE_CHECKING:
    from duet.train.parallel import Runtime

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PREFIX = "step_"
TMP_PREFIX = ".tmp-"
PARTS = ("model.safetensors", "ema.safetensors", "optimizer.pt", "rng.pt", "trainer.json")
DCP_METADATA = ".metadata"  # DCP's index of the shard files
SHARDED_PARTS = (DCP_METADATA, "rng.pt", "trainer.json")


def folder_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def step_folders(root: Path) -> list[Path]:
    """Checkpoint folders under `root`, newest step first (temporary ones excluded)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
             and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]), reverse=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


class Writer:
    """Builds `root/step_N` under a temporary name, one part at a time (so the caller can
    free each full state after writing it), then `commit` makes it visible."""

    def __init__(self, root: Path, step: int) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root, self.step = root, step
        self.final = root / folder_name(step)
        self.tmp = root / f"{TMP_PREFIX}{self.final.name}"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()

    def weights(self, name: str, state: dict[str, Tensor]) -> None:
        save_weights(state, self.tmp / f"{name}.safetensors")

    def torch(self, name: str, obj: Any) -> None:
        torch.save(obj, self.tmp / f"{name}.pt")

    def json(self, name: str, obj: Any) -> None:
        (self.tmp / f"{name}.json").write_text(json.dumps(obj, indent=1))

    def commit(self, keep: int, hashed: dict[str, dict[str, Any]] | None = None) -> Path:
        """Write the manifest last, rename into place, delete all but the newest `keep`.
        `hashed`: entries of files other ranks already hashed (their shards)."""
        hashed = hashed or {}
        files = {p.name: hashed.get(p.name) or _file_entry(p) for p in sorted(self.tmp.iterdir())}
        manifest = {"step": self.step, "files": files}
        atomic_write(self.tmp / MANIFEST, lambda t: t.write_text(json.dumps(manifest, indent=1)))
        _fsync_dir(self.tmp)
        if self.final.exists():  # an older, invalid copy of this step
            shutil.rmtree(self.final)
        os.replace(self.tmp, self.final)
        _fsync_dir(self.root)
        for old in step_folders(self.root)[keep:]:
            shutil.rmtree(old, ignore_errors=True)
        return self.final


def _file_entry(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory
    finally:
        os.close(fd)


def is_sharded(folder: Path) -> bool:
    """Whether `folder` holds the sharded (DCP) format rather than the full one."""
    return (folder / DCP_METADATA).is_file()


def verify(folder: Path, rank: int = 0, world: int = 1) -> str | None:
    """None if `folder` is a complete, unaltered checkpoint; else what is wrong with it.
    With `world` > 1 this rank hashes only its share of the files (every world-th one)."""
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        expected = {name: (int(meta["bytes"]), str(meta["sha256"])) for name, meta in files.items()}
    except FileNotFoundError:
        return "no manifest (the write did not finish)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return f"unreadable manifest ({e!r})"
    for name in SHARDED_PARTS if DCP_METADATA in expected else PARTS:
        if name not in expected:
            return f"the manifest does not list {name}"
    for name, (size, digest) in sorted(expected.items())[rank::world]:
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {size}"
        if _sha256(path) != digest:
            return f"{name} does not match its sha256 in the manifest"
    return None


def latest_valid(root: Path, rt: Runtime | None = None) -> Path | None:
    """The newest checkpoint folder that verifies; broken newer ones are reported and set aside.
    With a distributed `rt` (every rank must call) the ranks share the hashing."""
    rank, world = (rt.rank, rt.world) if rt is not None else (0, 1)
    main = rank == 0
    folders = [str(f) for f in step_folders(root)] if main else None
    for name in folders if rt is None else rt.broadcast(folders):
        folder = Path(name)
        problem = verify(folder, rank, world)
        if rt is not None:
            problem = next((p for p in rt.gather(problem) if p is not None), None)
        if problem is None:
            return folder
        if main:
            aside = folder.with_name(f"{folder.name}.corrupt")
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(folder, aside)
            log.warning("checkpoint %s is unusable (%s); moved it to %s and trying the previous "
                        "one", folder, problem, aside.name)
    return None


def clean_temporaries(root: Path) -> None:
    """Remove half-written folders left by a run that was killed while saving."""
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(TMP_PREFIX):
                shutil.rmtree(p, ignore_errors=True)


def read_weights(folder: Path, name: str) -> dict[str, Tensor]:
    """The full "model" or "ema" state of a checkpoint of either format, in this process
    alone (for tools and for resuming a full one; a sharded one is resumed by `load_sharded`)."""
    if not is_sharded(folder):
        return load_weights(folder / f"{name}.safetensors")
    state = {k: torch.empty(m.size, dtype=m.properties.dtype) for k, m in _stored(folder, name).items()}
    if not state:
        raise CheckpointError(f"{folder} holds no {name} state")
    dcp.load({name: state}, checkpoint_id=folder, no_dist=True)
    return state


def read_torch(folder: Path, name: str) -> Any:
    try:
        return torch.load(folder / f"{name}.pt", weights_only=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"cannot read {folder / name}.pt: {e}") from None


def read_json(folder: Path, name: str) -> Any:
    try:
        return json.loads((folder / f"{name}.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {folder / name}.json: {e}") from None


# ---- the sharded format (distributed runs) --------------------------------------------------
def _stored(folder: Path, part: str) -> dict[str, TensorStorageMetadata]:
    """The tensors DCP's index lists under `part` ("model", "ema"), by their name within it."""
    stored = dcp.FileSystemReader(folder).read_metadata().state_dict_metadata
    prefix = f"{part}."
    return {k[len(prefix):]: m for k, m in stored.items()
            if k.startswith(prefix) and isinstance(m, TensorStorageMetadata)}


def save_sharded(root: Path, step: int, rt: Runtime, model: nn.Module, opt: torch.optim.Optimizer,
                 ema: dict[str, Tensor], trainer: dict[str, Any], keep: int) -> Path:
    """Write `root/step_N` with every rank's shards of the model, optimizer and EMA states
    (DCP, no gather), rank 0 adding rng.pt, trainer.json and, last, the manifest; every rank
    must call. The folder appears under its final name only once complete."""
    writer = Writer(root, step) if rt.is_main else None
    tmp = Path(rt.broadcast(None if writer is None else str(writer.tmp)))
    model_sd, optim_sd = get_state_dict(model, opt)
    dcp.save({"model": model_sd, "optimizer": optim_sd, "ema": ema}, checkpoint_id=tmp)
    mine = {p.name: _file_entry(p) for p in sorted(tmp.glob(f"__{rt.rank}_*"))}
    shards = {name: entry for part in rt.gather(mine) for name, entry in part.items()}
    rngs = rt.gather(rng_state(rt.device))
    final = writer.final if writer else root / folder_name(step)
    if writer:
        writer.torch("rng", rngs)
        writer.json("trainer", trainer)
        writer.commit(keep, shards)
    rt.barrier()
    return final


def load_sharded(folder: Path, model: nn.Module, opt: torch.optim.Optimizer,
                 ema: dict[str, Tensor]) -> None:
    """Load a sharded checkpoint into `model`, `opt` and `ema` in place, whether they are
    sharded over any number of ranks or plain (DCP reshards); every rank must call. Keys and
    shapes are checked first, so a checkpoint of another model or stage is named plainly."""
    model_sd, optim_sd = get_state_dict(model, opt)
    problems = key_problems(model_sd, {k: m.size for k, m in _stored(folder, "model").items()})
    if problems:
        raise CheckpointError(f"{folder} does not fit this model config: {problems}")
    if set(_stored(folder, "ema")) != set(ema):
        raise CheckpointError("the checkpoint's EMA covers other parameters than this stage "
                              "trains; resume with the stage that wrote it")
    state = {"model": model_sd, "optimizer": optim_sd, "ema": ema}
    try:
        dcp.load(state, checkpoint_id=folder)
    except dcp.CheckpointException as e:
        raise CheckpointError(f"cannot load {folder}: {e}") from None
    set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def read_model(folder: Path, model: nn.Module, rt: Runtime) -> dict[str, Tensor]:
    """A full-format checkpoint's model state on rank 0 ({} elsewhere), its keys and shapes
    checked against `model` on rank 0 and any problem raised on every rank."""
    state, problem = {}, None
    if rt.is_main:
        state = read_weights(folder, "model")
        problem = key_problems(model.state_dict(), state)
    problem = rt.broadcast(problem)
    if problem:
        raise CheckpointError(f"{folder} does not fit this model config: {problem}")
    return state


# ---- RNG states ----------------------------------------------------------------------------
def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's RNG states (torch CPU, the accelerator's, numpy, python)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if device.type != "cpu":
        state["device"] = torch.get_device_module(device).get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "device" in state and device.type != "cpu":
        torch.get_device_module(device).set_rng_state(state["device"], device)
