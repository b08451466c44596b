"""`duet data curate`: inputs → per-input parts → shards, captions and the report.

Layout of the output folder:

    shard-00000.safetensors ...   what `duet train` reads (`duet.data.shards`)
    captions.json                 one entry per stored clip, in shard order
    report.jsonl                  one row per clip window or unusable file (all metrics)
    parts/KEY.json, KEY.safetensors   one input's rows and kept tensors (`parts`)

A part's KEY hashes the input's path, size and modification time with the config's
fingerprint, so a re-run skips every input whose part is there and redoes one that
changed. Shards are rebuilt from the parts in input order at the end of every run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from duet.atomic import atomic_write
from duet.data.curate.config import CurateConfig
from duet.data.curate.parallel import Job, logger_levels, run_pool, run_ray
from duet.data.curate.parts import part_key, read_parts
from duet.data.shards import drop_shards_after, shard_path, write_captions, write_shard
from duet.errors import InputError

log = logging.getLogger(__name__)

_LIST_SKIP = (".txt", ".json", ".jsonl")  # captions and notes beside the videos in a folder


@dataclass
class Summary:
    inputs: int = 0
    skipped: int = 0  # finished by an earlier run
    clips_kept: int = 0
    rows: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    shards: list[Path] = field(default_factory=list)


def list_inputs(source: str | Path) -> list[Path]:
    """The files to curate: a folder's files (recursively, sorted, without caption/notes
    files), or the paths listed one per line in a .txt file (relative to the list's folder;
    blank lines and # comments ignored)."""
    src = Path(source)
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix not in _LIST_SKIP
                       and not any(part.startswith(".") for part in p.relative_to(src).parts))
    elif src.is_file() and src.suffix == ".txt":
        lines = (ln.strip() for ln in src.read_text().splitlines())
        files = [src.parent / ln for ln in lines if ln and not ln.startswith("#")]
    else:
        raise InputError(f"{src} is neither a folder nor a .txt list of video files")
    if not files:
        raise InputError(f"{src} lists no files to curate")
    return files


class _ShardWriter:
    """Fixed-size shards from a stream of per-input tensor batches, in arrival order."""

    def __init__(self, out: Path, shard_size: int) -> None:
        self.out, self.size = out, shard_size
        self.buffer: dict[str, list[Tensor]] = {}
        self.pending = 0
        self.paths: list[Path] = []

    def add(self, tensors: dict[str, Tensor]) -> None:
        for k, v in tensors.items():
            self.buffer.setdefault(k, []).append(v)
        self.pending += next(iter(tensors.values())).shape[0]
        while self.pending >= self.size:
            self._write(self.size)

    def close(self) -> list[Path]:
        if self.pending:
            self._write(self.pending)
        drop_shards_after(self.out, len(self.paths))
        return self.paths

    def _write(self, n: int) -> None:
        whole = {k: torch.cat(v) for k, v in self.buffer.items()}
        path = shard_path(self.out, len(self.paths))
        write_shard({k: v[:n] for k, v in whole.items()}, path)
        self.buffer = {k: [v[n:]] for k, v in whole.items()}
        self.pending -= n
        self.paths.append(path)


def _write_outputs(out: Path, stems: list[Path], shard_size: int, report: Path,
                   summary: Summary) -> None:
    """Stream the parts, in input order, into shards, captions.json and the report."""
    shards = _ShardWriter(out, shard_size)
    captions: list[dict[str, Any]] = []
    rows: list[str] = []
    for body, tensors in read_parts(stems):
        rows += [json.dumps(r, allow_nan=False) for r in body["rows"]]
        for reason in (reason for r in body["rows"] for reason in r["reasons"]):
            summary.reasons[reason] = summary.reasons.get(reason, 0) + 1
        captions += body["captions"]
        if tensors is not None:
            shards.add(tensors)
    summary.shards = shards.close()
    summary.rows, summary.clips_kept = len(rows), len(captions)
    write_captions(out, captions)
    atomic_write(report, lambda tmp: tmp.write_text("".join(r + "\n" for r in rows)))


def curate(source: str | Path, out_dir: str | Path, cfg: CurateConfig | None = None, *,
           report: str | Path | None = None, ray: bool = False, ray_address: str | None = None,
           progress: bool = True) -> Summary:
    """Curate every input of `source` into shards under `out_dir` (see module doc)."""
    cfg = cfg or CurateConfig()
    inputs = list_inputs(source)
    out = Path(out_dir)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    stems = [out / "parts" / part_key(p, cfg) for p in inputs]
    config, levels = cfg.to_json(), logger_levels()
    jobs: list[Job] = [{"path": str(p), "part": str(s), "config": config, "log_levels": levels}
                       for p, s in zip(inputs, stems) if not s.with_suffix(".json").exists()]
    summary = Summary(inputs=len(inputs), skipped=len(inputs) - len(jobs))
    if summary.skipped:
        log.info("%d of %d inputs were finished by an earlier run; skipping them",
                 summary.skipped, len(inputs))
    bar = tqdm(total=len(jobs), disable=not progress, desc="curating inputs")
    done = lambda job: bar.update(1)
    if ray:
        run_ray(jobs, cfg.workers, ray_address, done)
    elif jobs:
        run_pool(jobs, cfg.workers, done)
    bar.close()
    _write_outputs(out, stems, cfg.shard_size, Path(report) if report else out / "report.jsonl",
                  summary)
    return summary
