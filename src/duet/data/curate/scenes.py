"""Scene cuts (PySceneDetect's content detector) and the clip windows between them.

The detector is fed the frames already decoded, so each input is decoded once. A clip
never straddles a cut: a joint model trained across one would learn that sound continues
through a jump of the picture.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from duet.data.curate.config import CurateConfig


def scene_cuts(frames: np.ndarray, fps: float, cfg: CurateConfig) -> list[int]:
    """Frame indices where a new scene starts (0 excluded). frames: uint8 [T, H, W, 3] RGB."""
    from scenedetect import ContentDetector
    from scenedetect.common import FrameTimecode

    detector = ContentDetector(threshold=cfg.scene_threshold, min_scene_len=cfg.scene_min_frames)
    cuts: list[int] = []
    for i, frame in enumerate(frames):
        bgr = np.ascontiguousarray(frame[..., ::-1])  # the detector reads OpenCV's BGR order
        cuts += [tc.frame_num for tc in detector.process_frame(FrameTimecode(i, fps), bgr)]
    cuts += [tc.frame_num for tc in detector.post_process(FrameTimecode(len(frames), fps))]
    return sorted({c for c in cuts if 0 < c < len(frames)})


def scenes(n_frames: int, cuts: list[int]) -> list[tuple[int, int]]:
    """[start, end) frame ranges between the cuts."""
    edges = [0, *cuts, n_frames]
    return [(a, b) for a, b in pairwise(edges) if b > a]


def windows(scene: tuple[int, int], length: int, limit: int) -> list[tuple[int, int]]:
    """Up to `limit` consecutive, non-overlapping [start, end) windows of `length` frames,
    from the scene's start (empty when the scene is shorter than one clip)."""
    start, end = scene
    n = min(limit, (end - start) // length)
    return [(start + k * length, start + (k + 1) * length) for k in range(n)]
