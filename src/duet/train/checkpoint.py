"""Training checkpoints: one folder per step, written whole or not at all.

Layout of `<out_dir>/checkpoints/step_00001200/`:
    model.safetensors   full fp32 model state (official key names)
    ema.safetensors     EMA of the trainable parameters
    optimizer.pt        full AdamW state keyed by parameter name
    rng.pt              torch / accelerator / numpy / python RNG states of every rank
    trainer.json        step, data position, loss history, the config that wrote it
    manifest.json       size and sha256 of every file above; written last

A folder is built under a temporary name (`.tmp-step_…`) and renamed into place, so a
killed run leaves either a complete folder or a temporary one that is ignored and removed.
A folder whose manifest is missing, unreadable or disagrees with the files (truncated or
altered since) is skipped with a warning, and the newest valid one is used instead.
Only rank 0 touches the files; the other ranks receive what they need by broadcast. The
parts are written and read one at a time, so rank 0 never holds more than one full state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from duet.atomic import atomic_write
from duet.weights import load_weights, save_weights
from duet.errors import CheckpointError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PREFIX = "step_"
TMP_PREFIX = ".tmp-"
PARTS = ("model.safetensors", "ema.safetensors", "optimizer.pt", "rng.pt", "trainer.json")


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

    def commit(self, keep: int) -> Path:
        """Write the manifest last, rename into place, delete all but the newest `keep`."""
        files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                 for p in sorted(self.tmp.iterdir())}
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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory
    finally:
        os.close(fd)


def verify(folder: Path) -> str | None:
    """None if `folder` is a complete, unaltered checkpoint; else what is wrong with it."""
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        expected = {name: (int(meta["bytes"]), str(meta["sha256"])) for name, meta in files.items()}
    except FileNotFoundError:
        return "no manifest (the write did not finish)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return f"unreadable manifest ({e!r})"
    for name in PARTS:
        if name not in expected:
            return f"the manifest does not list {name}"
    for name, (size, digest) in expected.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {size}"
        if _sha256(path) != digest:
            return f"{name} does not match its sha256 in the manifest"
    return None


def latest_valid(root: Path) -> Path | None:
    """The newest checkpoint folder that verifies; broken newer ones are reported and set aside."""
    for folder in step_folders(root):
        problem = verify(folder)
        if problem is None:
            return folder
        aside = folder.with_name(f"{folder.name}.corrupt")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(folder, aside)
        log.warning("checkpoint %s is unusable (%s); moved it to %s and trying the previous one",
                    folder, problem, aside.name)
    return None


def clean_temporaries(root: Path) -> None:
    """Remove half-written folders left by a run that was killed while saving."""
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(TMP_PREFIX):
                shutil.rmtree(p, ignore_errors=True)


def read_weights(folder: Path, name: str) -> dict[str, Tensor]:
    return load_weights(folder / f"{name}.safetensors")


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
