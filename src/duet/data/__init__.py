"""Training data: the procedural audio-visual world (`world`)."""

from duet.data.world import (
    HELDOUT_SEED_START,
    KINDS,
    WorldClip,
    WorldConfig,
    iter_clips,
    make_clip,
    split_of,
)

__all__ = [
    "HELDOUT_SEED_START",
    "KINDS",
    "WorldClip",
    "WorldConfig",
    "iter_clips",
    "make_clip",
    "split_of",
]
