"""What every scene kind of the world shares: the public tables (colours, backgrounds,
materials), the media format (`WorldConfig`), the clip record (`WorldClip`) and the
train/held-out split of seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from duet.errors import ConfigError

HELDOUT_SEED_START = 1_000_000
KINDS: tuple[str, ...] = ("bounce", "talk")

#: Ball colours. Far apart in RGB so a decoded (blurred, chroma-subsampled) frame still
#: names them unambiguously; the evaluator classifies pixels against this table.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 140, 25),
    "yellow": (240, 220, 40),
    "green": (40, 175, 65),
    "blue": (45, 90, 230),
    "purple": (150, 55, 200),
    "pink": (245, 125, 190),
}
#: Plain backgrounds, dark and unsaturated so that no ball colour is close to them.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "dark gray": (48, 48, 54),
    "black": (12, 12, 16),
    "charcoal": (30, 34, 40),
    "dark brown": (58, 40, 30),
}
MATERIALS: tuple[str, ...] = ("rubber", "metal", "glass", "wood")
# Not drawn by default: a concept the default model has never seen (LoRA fine-tuning demo).
EXTRA_MATERIALS: tuple[str, ...] = ("bronze",)
SIZES: dict[str, float] = {"small": 0.06, "large": 0.095}  # ball radius / frame height
EDGE_FRAMES = 3  # no event within this many frames of either end of the clip


@dataclass(frozen=True)
class WorldConfig:
    """Media format and mix of the world. Defaults match the `demo` preset's media."""

    fps: float = 24.0
    sample_rate: int = 16000
    frames: int = 97
    height: int = 64
    width: int = 64
    kinds: tuple[str, ...] = KINDS  # kinds drawn when `make_clip(kind=None)`
    max_balls: int = 2
    # probability that a ball drops in from above the frame at a random moment in the first
    # half of the clip, instead of being in flight from the first frame
    drop_in: float = 0.5
    # frame heights per s^2: 6.25 makes a fall through the whole frame take ~0.55 s, so a ball
    # crosses up to 7 px of a 64 px frame per frame; lower is a slower world (docs/synthetic-world.md)
    gravity: float = 6.25
    ambience: float = 0.5  # probability of a quiet room tone under the events
    min_event_gap: float = 0.1  # seconds between any two events, so each is observable
    materials: tuple[str, ...] = MATERIALS  # ball materials drawn (EXTRA_MATERIALS: new concepts)

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.sample_rate <= 0:
            raise ConfigError(f"fps and sample_rate must be positive, got {self.fps}, "
                              f"{self.sample_rate}")
        if self.duration < 1.5:
            raise ConfigError(f"frames={self.frames} at {self.fps} fps is {self.duration:.2f} s;"
                              " the world needs clips of at least 1.5 s")
        if self.height < 32 or self.width < 32 or self.height % 2 or self.width % 2:
            raise ConfigError(f"height and width must be even and >= 32, got "
                              f"{self.height}x{self.width}")
        unknown = sorted(set(self.kinds) - set(KINDS))
        if not self.kinds or unknown:
            raise ConfigError(f"kinds {self.kinds!r} must be a non-empty subset of {KINDS}")
        unknown = sorted(set(self.materials) - set(MATERIALS) - set(EXTRA_MATERIALS))
        if not self.materials or unknown:
            raise ConfigError(f"materials {self.materials!r} must be a non-empty subset of "
                              f"{MATERIALS + EXTRA_MATERIALS}")
        if self.max_balls not in (1, 2):
            raise ConfigError(f"max_balls must be 1 or 2, got {self.max_balls}")
        if not 0.0 <= self.drop_in <= 1.0:
            raise ConfigError(f"drop_in is a probability in [0, 1], got {self.drop_in}")
        if not 0.5 <= self.gravity <= 50.0:
            raise ConfigError(f"gravity must be in [0.5, 50] frame heights per s^2, got "
                              f"{self.gravity}")
        if not 0.0 <= self.ambience <= 1.0:
            raise ConfigError(f"ambience is a probability in [0, 1], got {self.ambience}")
        if not 0.0 < self.min_event_gap < 0.5:
            raise ConfigError(f"min_event_gap must be in (0, 0.5) s, got {self.min_event_gap}")

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    @property
    def samples(self) -> int:
        return round(self.frames * self.sample_rate / self.fps)


@dataclass(frozen=True, eq=False)
class WorldClip:
    """One clip. video: uint8 [T, H, W, 3]; audio: float32 [N] in [-1, 1], sample n at
    n / sample_rate and frame k at k / fps on the same timeline. events: when each event's
    sound starts (s), sorted. attributes: plain-Python scene parameters (JSON-able)."""

    video: np.ndarray
    audio: np.ndarray
    caption: str
    kind: str
    events: tuple[float, ...]
    attributes: dict[str, Any]


def split_of(seed: int) -> str:
    """'train' for seeds below `HELDOUT_SEED_START`, 'heldout' from it on."""
    return "heldout" if seed >= HELDOUT_SEED_START else "train"
