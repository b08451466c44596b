"""Clips → training shards: latents from the preset's codecs and text from its encoder.

Encoding is done once, before training, so the trainer only reads tensors (the format is
`duet.data.shards`'s: `video`, `audio`, `context` stacked per shard). Shards are written
atomically, one per `shard_size` clips, with the captions beside them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from duet.config import Preset
from duet.data.shards import shard_path, write_captions, write_shard
from duet.data.world import WorldClip, WorldConfig, make_clip
from duet.errors import InputError
from duet.components import build_codecs
from duet.text.encoder import TextEncoder

log = logging.getLogger(__name__)


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


def _batches(seeds: Iterable[int], size: int, config: WorldConfig) -> Iterator[list[WorldClip]]:
    batch: list[WorldClip] = []
    for seed in seeds:
        batch.append(make_clip(seed, config=config))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def build_shards(out_dir: str | Path, preset: Preset, seeds: range, *,
                 shard_size: int = 256, config: WorldConfig | None = None,
                 progress: bool = True) -> list[Path]:
    """Generate world clips for `seeds`, encode them with the preset's codecs and text
    encoder, and write `shard-XXXXX.safetensors` (no model is loaded)."""
    if len(seeds) == 0:
        raise InputError(f"no clips to build: the seed range {seeds!r} is empty; ask for at "
                         "least one clip (--clips 1 or more)")
    if shard_size < 1:
        raise InputError(f"shard_size must be at least 1 clip, got {shard_size}")
    out = Path(out_dir)
    config = config or world_config_for(preset)
    codecs = build_codecs(preset)
    paths, captions = [], []
    bar = tqdm(total=len(seeds), disable=not progress, desc="encoding clips")
    for k, clips in enumerate(_batches(seeds, shard_size, config)):
        path = write_shard(encode_clips(preset, codecs, clips), shard_path(out, k))
        captions += [{"seed": s, "caption": c.caption, "events": list(c.events)}
                     for s, c in zip(seeds[k * shard_size:], clips)]
        paths.append(path)
        bar.update(len(clips))
    bar.close()
    write_captions(out, captions)
    log.info("wrote %d shards (%d clips) to %s", len(paths), len(seeds), out)
    return paths
