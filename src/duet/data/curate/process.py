"""One input → its clips, their report rows and, for the kept ones, encoded tensors.

Everything here is a pure function of (file, config): the same input gives the same rows
and the same tensors in any process, which is what makes a Ray run and a multiprocessing
run write identical shards. Order of work per clip: cut, measure (resolution, loudness,
motion), caption, sync (and shift), then encode the survivors in one batch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from duet.config import Preset
from duet.data.curate import avsync, filters
from duet.data.curate.captions import CaptionError, caption_for
from duet.data.curate.config import CurateConfig
from duet.data.curate.scenes import scene_cuts, scenes, windows
from duet.data.curate.source import Source, SourceError, clip_side, load_source, resample
from duet.media import retime_frames
from duet.presets import get_preset


@dataclass(frozen=True)
class CuratedClip:
    """A kept clip, in the form `duet.data.dataset.encode_clips` reads."""

    video: np.ndarray  # uint8 [T, side, side, 3]
    audio: np.ndarray  # float32 [N]
    caption: str


@dataclass
class InputResult:
    """Report rows of one input (one per clip window, or one for an unusable file) and the
    stacked tensors of its kept clips (None when none was kept)."""

    rows: list[dict[str, Any]]
    tensors: dict[str, Tensor] | None = None
    captions: list[dict[str, Any]] = field(default_factory=list)


@functools.cache
def _codecs(preset_name: str) -> tuple[Any, Any, Any]:
    """The preset's codecs and text encoder, built once per worker process."""
    from duet.components import build_codecs

    return build_codecs(get_preset(preset_name))


@functools.cache
def _syncnet(path: str) -> Any:
    from duet.data.curate.syncnet import load_syncnet

    return load_syncnet(path)


def _audio_span(src: Source, start_frame: int, n_samples: int, shift_s: float = 0.0) -> np.ndarray:
    """The clip's samples from the source, starting `shift_s` later (zeros past the ends)."""
    first = round((start_frame / src.fps + shift_s) * src.sample_rate)
    out = np.zeros(n_samples, np.float32)
    lo, hi = max(first, 0), min(first + n_samples, len(src.audio))
    if hi > lo:
        out[lo - first:hi - first] = src.audio[lo:hi]
    return out


def _speech_sync(video: np.ndarray, audio: np.ndarray, src: Source, cfg: CurateConfig
                 ) -> tuple[dict[str, Any], float | None]:
    """SyncNet's metrics for a speech clip and its offset if confident (None otherwise);
    without weights the clip is left unmeasured."""
    if not cfg.syncnet_weights:
        return {"sync_method": "none", "sync_note": "speech: set syncnet_weights to measure"}, None
    from duet.data.curate.syncnet import FPS, SAMPLE_RATE, offset_confidence

    offset, conf = offset_confidence(_syncnet(cfg.syncnet_weights),
                                     retime_frames(video, src.fps, FPS),
                                     resample(audio, src.sample_rate, SAMPLE_RATE))
    metrics = {"sync_method": "syncnet", "sync_offset_ms": offset, "syncnet_confidence": conf}
    return metrics, offset if conf >= cfg.syncnet_min_confidence else None


def _motion_sync(flow: np.ndarray, audio: np.ndarray, src: Source, cfg: CurateConfig
                 ) -> tuple[dict[str, Any], float | None]:
    """The weight-free estimate's metrics and its offset if the score clears the bar."""
    est = avsync.estimate(flow, audio, src.sample_rate, src.fps, cfg.sync_max_offset_ms)
    metrics = {"sync_method": "onsets-vs-motion", "sync_offset_ms": est.offset_ms,
               "sync_score": est.score, "sync_uniqueness": est.uniqueness,
               "audio_onsets": est.onsets}
    return metrics, est.offset_ms if est.score >= cfg.sync_min_score else None


def _measure(src: Source, video: np.ndarray, audio: np.ndarray, cfg: CurateConfig,
             preset: Preset) -> tuple[dict[str, Any], list[str], np.ndarray]:
    """Resolution, loudness and motion: (metrics, rejection reasons, optical flow)."""
    metrics: dict[str, Any] = {"short_side": min(src.original_size)}
    reasons = ["low_resolution"] if min(src.original_size) < (cfg.min_short_side or
                                                               clip_side(preset)) else []
    metrics["loudness_lufs"] = filters.loudness_lufs(audio, src.sample_rate)
    metrics["silent_fraction"] = filters.silent_fraction(audio, src.sample_rate, cfg.silence_db)
    reasons += filters.check_audio(metrics["loudness_lufs"], metrics["silent_fraction"], cfg)
    flow = filters.optical_flow(video, cfg.motion_size)
    metrics["motion"] = filters.motion(flow)
    reasons += filters.check_motion(metrics["motion"], cfg)
    return metrics, reasons, flow


def _sync(src: Source, span: tuple[int, int], audio: np.ndarray, flow: np.ndarray,
          speech: bool, cfg: CurateConfig) -> tuple[dict[str, Any], list[str], list[str], np.ndarray]:
    """Measure sync (SyncNet for speech, else onsets vs motion) and act on an offset:
    (metrics, rejection reasons, flags, the clip's sound, shifted when that was the fix)."""
    video = src.frames[span[0]:span[1]]
    metrics, offset = (_speech_sync(video, audio, src, cfg) if speech
                       else _motion_sync(flow, audio, src, cfg))
    reasons = ["no_sync_evidence"] if metrics["sync_method"] != "none" and offset is None else []
    if offset is None or abs(offset) <= cfg.sync_tolerance_ms:
        return metrics, reasons, [], audio
    flag = "audio_late" if offset > 0 else "audio_early"
    if cfg.sync_action == "drop":
        return metrics, [*reasons, flag], [flag], audio
    audio = _audio_span(src, span[0], len(audio), offset / 1000.0)  # the sound where it belongs
    metrics["shifted_ms"] = -offset
    if not speech:  # measure again: the residual shows the shift worked
        after = avsync.estimate(flow, audio, src.sample_rate, src.fps, cfg.sync_max_offset_ms)
        metrics["sync_offset_after_ms"] = after.offset_ms
    return metrics, reasons, [flag], audio


def _clip(src: Source, span: tuple[int, int], path: Path, cfg: CurateConfig, preset: Preset,
          n_samples: int) -> tuple[dict[str, Any], CuratedClip | None]:
    """The report row of one clip window and the clip itself if it is kept."""
    a, b = span
    video = src.frames[a:b]
    audio = _audio_span(src, a, n_samples)
    metrics, reasons, flow = _measure(src, video, audio, cfg, preset)
    caption, prompt = "", None
    try:
        caption, prompt = caption_for(path, a / src.fps, b / src.fps, cfg, preset.prompt_format)
    except CaptionError as e:
        reasons.append("caption_failed")
        metrics["caption_error"] = str(e)
    speech = prompt is not None and bool(prompt.speech)
    sync_metrics, sync_reasons, flags, audio = _sync(src, span, audio, flow, speech, cfg)
    metrics.update(sync_metrics)
    reasons += sync_reasons
    row = {"input": str(path), "start_s": round(a / src.fps, 4), "end_s": round(b / src.fps, 4),
           "status": "rejected" if reasons else "kept", "reasons": reasons, "flags": flags,
           "metrics": {k: _json_number(v) for k, v in metrics.items()}, "caption": caption}
    return row, None if reasons else CuratedClip(video, audio, caption)


def _json_number(v: Any) -> Any:
    """Floats rounded for the report; non-finite ones (silence's -inf LUFS) as None."""
    if isinstance(v, float | np.floating):
        return round(float(v), 4) if math.isfinite(v) else None
    return v


_FILE_ERRORS = ("unreadable", "no_video", "no_audio", "truncated")  # status "error", not "rejected"


def _unusable(path: Path, reason: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"input": str(path), "status": "error" if reason in _FILE_ERRORS else "rejected",
            "reasons": [reason], "flags": [], "metrics": extra, "detail": detail, "caption": ""}



def curate_input(path: str | Path, cfg: CurateConfig) -> InputResult:
    """Curate one file: rows for the report and the encoded tensors of the kept clips."""
    from duet.data.dataset import encode_clips

    path = Path(path)
    preset = get_preset(cfg.preset)
    try:
        src = load_source(path, preset)
    except SourceError as e:
        return InputResult([_unusable(path, e.reason, str(e))])
    length = preset.media.frames
    n_samples = round(length * src.sample_rate / src.fps)
    cuts = scene_cuts(src.frames, src.fps, cfg)
    rows: list[dict[str, Any]] = []
    kept: list[CuratedClip] = []
    for k, scene in enumerate(scenes(len(src.frames), cuts)):
        spans = windows(scene, length, cfg.clips_per_scene)
        if not spans:
            seconds = (scene[1] - scene[0]) / src.fps
            rows.append(_unusable(path, "short_scene" if cuts else "too_short",
                                  f"scene {k} lasts {seconds:.2f} s, a clip {length / src.fps:.2f} s",
                                  scene_s=round(seconds, 4), scene_cuts_s=[c / src.fps for c in cuts]))
            continue
        for span in spans:
            row, clip = _clip(src, span, path, cfg, preset, n_samples)
            rows.append({**row, "scene": k})
            if clip is not None:
                kept.append(clip)
    if not kept:
        return InputResult(rows)
    tensors = encode_clips(preset, _codecs(cfg.preset), kept)
    captions = [{"input": r["input"], "start_s": r["start_s"], "caption": r["caption"]}
                for r in rows if r["status"] == "kept"]
    return InputResult(rows, tensors, captions)
