"""Clips longer than the model was trained for, planned as consecutive chunks.

A chunk has the model's native length (its preset's `media.frames`), so every denoising
pass sees the sequence length the towers were trained on. Each chunk after the first
starts with the previous chunk's last `overlap` latent frames and the matching span of
audio latents, held clean (t = 0) like an image-to-video first frame, so it continues the
picture and the sound instead of starting over. This module only plans: which frames and
audio latents each chunk covers, what it shares with the previous one and which prompt it
reads. `pipeline.py` runs the plan and `stitch.py` blends the overlaps.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from duet.config import MediaConfig
from duet.errors import InputError

#: The longest clip in seconds that chunked generation makes (time grows linearly: at the
#: demo's 8 s per 4 s chunk on 2 CPU cores, 120 s is about 4 minutes).
MAX_DURATION = 120.0

#: Default overlap in seconds, turned into whole latent frames: long enough to carry the
#: motion of a few frames into the next chunk, short next to a chunk.
OVERLAP_SECONDS = 1 / 3


@dataclass(frozen=True)
class Chunk:
    """One denoising pass of a long clip. Frames and audio latents are counted in the whole
    clip; the leading `overlap` frames / `audio_overlap` latents repeat the previous chunk."""

    index: int
    start: int  # first video frame
    frames: int  # video frames, st*k + 1 (the native length, or fewer for the last chunk)
    overlap: int  # leading video frames shared with the previous chunk (0 for the first)
    overlap_latents: int  # the latent frames those make, held clean
    audio_start: int  # first audio latent
    audio_latents: int
    audio_overlap: int  # leading audio latents shared with the previous chunk, held clean
    prompt: str


@dataclass(frozen=True)
class ChunkPlan:
    """The chunks of one clip, in order, and the clip's totals."""

    chunks: tuple[Chunk, ...]
    frames: int
    audio_latents: int

    @classmethod
    def single(cls, frames: int, media: MediaConfig, prompt: str) -> ChunkPlan:
        """The whole clip in one pass (a given video or sound sets a length of its own)."""
        latents = media.audio_length(frames)
        return cls((Chunk(0, 0, frames, 0, 0, 0, latents, 0, prompt),), frames, latents)


def overlap_frames(media: MediaConfig, overlap: int | None) -> int:
    """Overlap in latent frames: the given one, checked, or about `OVERLAP_SECONDS`."""
    native = media.latent_frames(media.frames)
    if overlap is None:
        latent_fps = media.fps / media.video_stride[0]
        return min(native - 1, max(1, round(OVERLAP_SECONDS * latent_fps)))
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 1:
        raise InputError(f"overlap must be a whole number of latent frames >= 1, got {overlap!r}")
    if overlap >= native:
        raise InputError(f"an overlap of {overlap} latent frames leaves nothing new in a chunk of "
                         f"{native} latent frames ({media.duration:.2f} s); use at most {native - 1}")
    return overlap


def plan_chunks(frames: int, media: MediaConfig, prompt: str, *, then: Sequence[str] = (),
                schedule: Sequence[tuple[float, str]] = (), overlap: int | None = None) -> ChunkPlan:
    """Chunks of the native length covering `frames` video frames (st*k + 1), the last one
    shortened to what is left. `then` gives the 2nd, 3rd... chunk its prompt (the last one
    carries on); `schedule` lists (seconds, prompt) changes instead: a chunk reads the prompt
    in force when its new frames begin, so a change lands on the next chunk boundary."""
    if then and schedule:
        raise InputError("give follow-on prompts either as then (--then) or as a schedule, not both")
    st, native = media.video_stride[0], media.frames
    lap = overlap_frames(media, overlap)
    lap_px = st * (lap - 1) + 1  # pixel frames of `lap` causal latent frames
    stride = native - lap_px  # new frames per chunk, a multiple of st
    n = 1 if frames <= native else 1 + math.ceil((frames - native) / stride)
    starts = [i * stride for i in range(n)]
    firsts = [0.0] + [(s + lap_px) / media.fps for s in starts[1:]]  # when each chunk's new frames begin
    prompts = _chunk_prompts(prompt, then, schedule, firsts, frames / media.fps)
    chunks, prev = [], None
    for i, start in enumerate(starts):
        length = min(native, frames - start)
        a_start = round(start / media.fps * media.audio_rate)
        a_lap = 0 if prev is None else prev.audio_start + prev.audio_latents - a_start
        if prev is not None and a_lap < 1:
            raise InputError(f"an overlap of {lap} latent frames spans no whole audio latent; "
                             "use a larger overlap")
        a_len = max(media.audio_length(length), a_lap + 1)
        prev = Chunk(i, start, length, 0 if i == 0 else lap_px, 0 if i == 0 else lap,
                     a_start, a_len, a_lap, prompts[i])
        chunks.append(prev)
    return ChunkPlan(tuple(chunks), frames, prev.audio_start + prev.audio_latents)


def _chunk_prompts(prompt: str, then: Sequence[str], schedule: Sequence[tuple[float, str]],
                   firsts: list[float], duration: float) -> list[str]:
    """The prompt of each chunk; a follow-on prompt that no chunk would read is refused."""
    n = len(firsts)
    if then:
        if len(then) > n - 1:
            raise InputError(f"{len(then)} follow-on prompt(s) (--then) but a {duration:.2f} s clip "
                             f"has {n} chunk(s), so at most {n - 1}; lengthen --duration or drop some")
        return [prompt, *then] + [then[-1]] * (n - 1 - len(then))
    prompts, last = [prompt] * n, 0.0
    for at, text in schedule:
        if not at > last:
            raise InputError(f"schedule times must be increasing and after 0 s, got {at:g} s after "
                             f"{last:g} s")
        if at >= duration:
            raise InputError(f"schedule entry at {at:g} s is past the clip's end ({duration:.2f} s)")
        first = next((i for i, t in enumerate(firsts) if t >= at - 1e-9), None)
        if first is None:
            starts = ", ".join(f"{t:.2f}" for t in firsts)
            raise InputError(f"schedule entry at {at:g} s: no chunk begins at or after it "
                             f"(chunks begin at {starts} s)")
        prompts[first:] = [text] * (n - first)
        last = at
    return prompts


def read_schedule(path: str | Path) -> list[tuple[float, str]]:
    """A schedule file: a JSON list of {"at": SECONDS, "prompt": TEXT}, times increasing;
    the main prompt holds from 0 s until the first entry."""
    try:
        entries = json.loads(Path(path).read_text())
    except OSError as e:
        raise InputError(f"cannot read schedule {str(path)!r}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"schedule {str(path)!r} is not JSON ({e})") from None
    shape = 'a JSON list of {"at": SECONDS, "prompt": TEXT}'
    if not isinstance(entries, list) or not entries:
        raise InputError(f"schedule {str(path)!r} must be {shape}")
    out = []
    for i, e in enumerate(entries):
        ok = (isinstance(e, dict) and set(e) == {"at", "prompt"} and isinstance(e["prompt"], str)
              and isinstance(e["at"], (int, float)) and not isinstance(e["at"], bool)
              and math.isfinite(e["at"]))
        if not ok:
            raise InputError(f"schedule {str(path)!r} entry {i} is {json.dumps(e)[:80]}; "
                             f"the file must be {shape}")
        out.append((float(e["at"]), e["prompt"]))
    return out
