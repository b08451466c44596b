"""Per-clip measurements that decide whether a clip is worth training on.

Each function returns plain numbers for the report; `check_*` turns numbers into rejection
reasons against the config, so a threshold change never needs a re-measurement to explain.
"""

from __future__ import annotations

import math
from itertools import pairwise

import cv2
import numpy as np

from duet.data.curate.config import CurateConfig


def loudness_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, gated) in LUFS; -inf for digital silence."""
    import pyloudnorm

    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(audio.astype(np.float64)))


def silent_fraction(audio: np.ndarray, sample_rate: int, silence_db: float) -> float:
    """Fraction of 50 ms windows whose RMS is below `silence_db` dBFS."""
    n = max(1, round(0.05 * sample_rate))
    chunks = audio[: len(audio) // n * n].reshape(-1, n).astype(np.float64)
    if not len(chunks):
        return 1.0
    rms = np.sqrt((chunks**2).mean(axis=1))
    return float(np.mean(rms < 10 ** (silence_db / 20)))


def optical_flow(frames: np.ndarray, size: int) -> np.ndarray:
    """Farneback flow between consecutive frames [T-1, h, w, 2], pixels per frame, computed
    on grey frames scaled so the short side is at most `size` (flow dominates the cost)."""
    _, h, w, _ = frames.shape
    scale = min(1.0, size / min(h, w))
    dims = (max(8, round(w * scale)), max(8, round(h * scale)))
    grey = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), dims, interpolation=cv2.INTER_AREA)
            for f in frames]
    return np.stack([cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 2, 9, 3, 5, 1.1, 0)
                     for a, b in pairwise(grey)])


def motion(flow: np.ndarray) -> float:
    """Mean flow magnitude (pixels per frame at the flow's size)."""
    return float(np.linalg.norm(flow, axis=-1).mean())


def check_audio(lufs: float, silent: float, cfg: CurateConfig) -> list[str]:
    reasons = []
    if not math.isfinite(lufs) or lufs < cfg.loudness_min_lufs:
        reasons.append("quiet")
    if silent > cfg.silence_max_fraction:
        reasons.append("silent")
    return reasons


def check_motion(value: float, cfg: CurateConfig) -> list[str]:
    if value < cfg.motion_min:
        return ["static"]
    return ["too_much_motion"] if value > cfg.motion_max else []
