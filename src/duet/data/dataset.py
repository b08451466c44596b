"""Clips → training shards: latents from the preset's codecs and text from its encoder.

Encoding is done once, before training, so the trainer only reads tensors (the format is
`duet.data.shards`'s: `video`, `audio`, `context` stacked per shard). Shards are written
atomically, one per `shard_size` clips, with the captions beside them. Each shard's header
records its captions and a fingerprint of what made it (preset, codecs and their files,
world settings, seeds), so a build that was stopped resumes: a re-run with the same
settings keeps the shards that match and makes only the rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from duet.config import Preset
from duet.data.shards import (drop_shards_after, read_metadata, shard_path, write_captions,
                              write_shard)
from duet.data.world import WorldConfig, make_clip
from duet.errors import InputError
from duet.components import build_codecs
from duet.text.encoder import TextEncoder
from duet.weights import codec_files

log = logging.getLogger(__name__)

_FINGERPRINT, _CAPTIONS = "duet.build", "duet.captions"  # shard header keys of a build


class Clip(Protocol):
    """What encoding needs of a clip: a world clip, or a curated one (`duet.data.curate`)."""

    video: np.ndarray  # uint8 [T, H, W, 3]
    audio: np.ndarray  # float32 [N]
    caption: str


def world_config_for(preset: Preset, **overrides: Any) -> WorldConfig:
    """The synthetic world at the preset's frame rate, sample rate, length and size."""
    m = preset.media
    side = int(m.area**0.5)
    fields = dict(fps=m.fps, sample_rate=m.sample_rate, frames=m.frames, height=side, width=side)
    return WorldConfig(**{**fields, **overrides})


@torch.no_grad()
def encode_clips(preset: Preset, codecs: tuple[Any, Any, TextEncoder],
                 clips: Sequence[Clip]) -> dict[str, Tensor]:
    """Stacked latents and zero-padded text contexts for a list of clips.

    codecs: (video codec, audio codec, text encoder), e.g. from `build_codecs(preset)`.
    """
    video_codec, audio_codec, text_encoder = codecs
    text_len = preset.model.video.text_len
    n_audio = preset.media.audio_length(clips[0].video.shape[0])
    video = torch.from_numpy(np.stack([c.video for c in clips]))  # (N, T, H, W, 3) uint8
    video = video.permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # (N, 3, T, H, W)
    wave = torch.from_numpy(np.stack([c.audio for c in clips]))[:, : n_audio * audio_codec.hop]
    return {"video": video_codec.encode(video), "audio": audio_codec.encode(wave),
            "context": encode_texts(text_encoder, [c.caption for c in clips], text_len)}


@torch.no_grad()
def encode_texts(text_encoder: TextEncoder, texts: list[str], text_len: int) -> Tensor:
    """[N, text_len, dim] float32 contexts, each prompt's hidden states zero-padded (or cut)
    to text_len: the form the shards store and the towers pad to themselves."""
    context = torch.zeros(len(texts), text_len, text_encoder.dim)
    for i, emb in enumerate(text_encoder.encode(texts)):
        context[i, : min(text_len, emb.shape[0])] = emb[:text_len].float()
    return context


def build_fingerprint(preset: Preset, config: WorldConfig) -> str:
    """What decides a shard's contents besides its seeds: the preset's media, codecs (with
    the bytes of every codec file they name) and text length, and the world's settings."""
    files = {f"{kind}.{key}": hashlib.sha256(path.read_bytes()).hexdigest()
             for kind, key, path in codec_files(preset.codecs) if path.is_file()}
    made_of = {"preset": preset.name, "media": dataclasses.asdict(preset.media),
               "codecs": preset.codecs, "files": files, "text_len": preset.model.video.text_len,
               "world": dataclasses.asdict(config)}
    return hashlib.sha256(json.dumps(made_of, sort_keys=True, default=str).encode()).hexdigest()


def _finished(path: Path, fingerprint: str, seeds: range) -> list[dict[str, Any]] | None:
    """The captions of a shard an earlier build wrote with these settings and seeds."""
    meta = read_metadata(path)
    if meta.get(_FINGERPRINT) != fingerprint:
        return None
    captions = json.loads(meta.get(_CAPTIONS, "[]"))
    return captions if [c["seed"] for c in captions] == list(seeds) else None


def build_shards(out_dir: str | Path, preset: Preset, seeds: range, *,
                 shard_size: int = 256, config: WorldConfig | None = None,
                 progress: bool = True) -> list[Path]:
    """Generate world clips for `seeds`, encode them with the preset's codecs and text
    encoder, and write `shard-XXXXX.safetensors` (no model is loaded). Shards that an
    earlier run with the same settings finished are kept, not made again."""
    if len(seeds) == 0:
        raise InputError(f"no clips to build: the seed range {seeds!r} is empty; ask for at "
                         "least one clip (--clips 1 or more)")
    if shard_size < 1:
        raise InputError(f"shard_size must be at least 1 clip, got {shard_size}")
    out = Path(out_dir)
    config = config or world_config_for(preset)
    fingerprint = build_fingerprint(preset, config)
    parts = [seeds[i:i + shard_size] for i in range(0, len(seeds), shard_size)]
    done = [_finished(shard_path(out, k), fingerprint, part) for k, part in enumerate(parts)]
    kept = sum(d is not None for d in done)
    if kept:
        log.info("keeping %d of %d shards finished by an earlier build", kept, len(parts))
    codecs = build_codecs(preset) if kept < len(parts) else None
    paths, captions = [], []
    bar = tqdm(total=len(seeds), disable=not progress, desc="encoding clips")
    for k, (part, finished) in enumerate(zip(parts, done)):
        path = shard_path(out, k)
        if finished is None:
            clips = [make_clip(seed, config=config) for seed in part]
            finished = [{"seed": seed, "caption": c.caption, "events": list(c.events)}
                        for seed, c in zip(part, clips)]
            write_shard(encode_clips(preset, codecs, clips), path,
                        {_FINGERPRINT: fingerprint, _CAPTIONS: json.dumps(finished)})
        captions += finished
        paths.append(path)
        bar.update(len(part))
    bar.close()
    drop_shards_after(out, len(paths))
    write_captions(out, captions)
    log.info("wrote %d shards (%d clips) to %s", len(paths), len(seeds), out)
    return paths
