"""A folder of synthetic-world MP4s with planted defects, for the curation tests (imported
by name; the tests' directory is on sys.path under pytest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from duet.data.world import make_clip
from duet.media import write_mp4

SR, FPS = 16000, 24
SHIFT = round(0.3 * SR)  # 300 ms of samples

# seeds: bounce clips 1, 6, 9, 11 and talk clip 5 (world defaults, demo media)
GOOD = {"good_bounce": 1, "good_bounce2": 11, "good_talk": 5}


def _write(folder: Path, name: str, seed: int, video=None, audio=None, caption=True) -> Path:
    clip = make_clip(seed)
    video = clip.video if video is None else video
    audio = clip.audio if audio is None else audio
    path = write_mp4(folder / f"{name}.mp4", video, None if audio is False else audio, FPS, SR)
    if caption:
        path.with_suffix(".txt").write_text(clip.caption)
    return path


def planted_folder(folder: Path) -> dict[str, str | None]:
    """Write the inputs; returns name -> the reason the report must give (None: kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, seed in GOOD.items():
        _write(folder, name, seed)
    a = make_clip(6).audio
    _write(folder, "late", 6, audio=np.concatenate([np.zeros(SHIFT, np.float32), a])[:len(a)])
    b = make_clip(9).audio
    _write(folder, "early", 9, audio=np.concatenate([b[SHIFT:], np.zeros(SHIFT, np.float32)]))
    _write(folder, "silent", 1, audio=np.zeros_like(a))
    still = make_clip(11).video
    _write(folder, "static", 11, video=np.repeat(still[40:41], len(still), axis=0))
    first, second = make_clip(1), make_clip(5)  # a bounce scene cut to a talking face
    joined_v = np.concatenate([first.video[:60], second.video[37:]])
    joined_a = np.concatenate([first.audio[:40000], second.audio[24667:]])
    _write(folder, "joined", 1, video=joined_v, audio=joined_a, caption=False)
    whole = _write(folder, "truncated", 11, caption=False).read_bytes()
    (folder / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    _write(folder, "no_audio", 1, audio=False, caption=False)
    (folder / "notes.mp4").write_text("not a video, just a note\n")
    return {"good_bounce": None, "good_bounce2": None, "good_talk": None,
            "late": "audio_late", "early": "audio_early", "silent": "silent",
            "static": "static", "joined": "short_scene", "truncated": "truncated",
            "no_audio": "no_audio", "notes": "unreadable"}
