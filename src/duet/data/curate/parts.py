"""Part files: one input's curated rows and kept tensors, written by whichever worker
curated it (`parallel`) and read back in input order by the run that assembles the shards
(`run`), so both sides share this module rather than importing each other.

A part is `KEY.safetensors` (absent when nothing was kept) and `KEY.json` (rows and
captions); KEY hashes the input's path, size and modification time with the config's
fingerprint, so a changed input or config gets a new part.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from torch import Tensor

from duet.atomic import atomic_write
from duet.data.curate.config import CurateConfig
from duet.data.curate.process import InputResult
from duet.weights import save_weights


def part_key(path: Path, cfg: CurateConfig) -> str:
    st = path.stat() if path.exists() else None
    ident = f"{path.resolve()}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}"
    return hashlib.sha1(f"{ident}|{cfg.fingerprint()}".encode()).hexdigest()[:16]


def write_part(stem: str | Path, result: InputResult) -> None:
    """Tensors first, rows last: the .json's presence marks the input finished."""
    stem = Path(stem)
    if result.tensors is not None:
        save_weights(result.tensors, stem.with_suffix(".safetensors"))
    body = json.dumps({"rows": result.rows, "captions": result.captions}, allow_nan=False)
    atomic_write(stem.with_suffix(".json"), lambda tmp: tmp.write_text(body))


def read_parts(stems: list[Path]) -> Iterator[tuple[dict[str, Any], dict[str, Tensor] | None]]:
    """Each part's rows and captions, and its tensors (None when it kept no clip)."""
    for stem in stems:
        body = json.loads(stem.with_suffix(".json").read_text())
        tensors = stem.with_suffix(".safetensors")
        yield body, load_file(tensors) if body["captions"] else None
