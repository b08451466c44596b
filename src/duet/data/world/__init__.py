"""A procedural, seeded audio-visual world: short captioned clips whose sound is caused by
what is seen, so a small joint model can learn synchrony and an evaluator can check it.

Two kinds of clip, both at 24 fps with 16 kHz mono audio by default (97 frames = 4.04 s,
64x64 RGB, the `demo` preset's media):

* ``bounce``: one or two balls (colour, size, material) fall and bounce on a floor. Motion
  is solved in closed form between contacts (ballistic parabolas, restitution at the
  floor), so every impact instant is exact to floating point rather than quantised to a
  frame or a simulation step. Each contact starts a percussive sound at that instant whose
  timbre depends on the material and whose loudness scales with the impact speed. Heights,
  velocities and restitution are random and never written in the caption: the impact times
  have to be read from the picture.
* ``talk``: a cartoon face says the phrase inside ``<S>...<E>``. A built-in syllable
  synthesizer (consonant bursts, formant vowels, a pitch per speaker, jittered timing)
  makes the voice; the mouth opens and closes with each syllable's loudness envelope.

``WorldClip.events`` holds the times (seconds) the sound of each event starts: impacts for
``bounce``, syllable onsets for ``talk``. Captions use Ovi's format,
``<visual description> <AUDCAP>audio description<ENDAUDCAP>``, and parse with
`duet.text.prompt.parse_prompt`.

Everything is a pure function of ``(seed, kind, config)``: the same call gives
byte-identical video and audio (numpy's PCG64 streams; no global random state).

Split convention: seeds ``>= HELDOUT_SEED_START`` (1,000,000) are the held-out set. Train on
seeds below it, evaluate on seeds at or above it; `iter_clips` refuses a range that crosses
the boundary so a training loop cannot silently read evaluation clips.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from duet.data.world.bounce import make_bounce
from duet.data.world.common import (
    BACKGROUNDS,
    EXTRA_MATERIALS,
    HELDOUT_SEED_START,
    KINDS,
    MATERIALS,
    PALETTE,
    SIZES,
    WorldClip,
    WorldConfig,
    split_of,
)
from duet.data.world.talk import WORDS, make_talk
from duet.errors import InputError

__all__ = [
    "BACKGROUNDS",
    "EXTRA_MATERIALS",
    "HELDOUT_SEED_START",
    "KINDS",
    "MATERIALS",
    "PALETTE",
    "SIZES",
    "WORDS",
    "WorldClip",
    "WorldConfig",
    "iter_clips",
    "make_clip",
    "split_of",
]


def make_clip(seed: int, kind: str | None = None, config: WorldConfig = WorldConfig()) -> WorldClip:
    """The clip for `seed`. With kind=None the kind is drawn from `config.kinds`; forcing the
    kind that would have been drawn gives the same clip (the kind has its own random stream)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    if kind is None:
        kind = config.kinds[int(np.random.default_rng((int(seed), 0)).integers(len(config.kinds)))]
    if kind not in KINDS:
        raise InputError(f"unknown kind {kind!r}; choose one of {KINDS} or None")
    rng = np.random.default_rng((int(seed), 1))
    clip = make_bounce(rng, config) if kind == "bounce" else make_talk(rng, config)
    clip.attributes.update(seed=int(seed), split=split_of(int(seed)))
    return clip


def iter_clips(start_seed: int, n: int, kind: str | None = None,
               config: WorldConfig = WorldConfig()) -> Iterator[WorldClip]:
    """Clips for seeds start_seed .. start_seed + n - 1, all from one split."""
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    if n and split_of(start_seed) != split_of(start_seed + n - 1):
        raise InputError(
            f"seeds {start_seed}..{start_seed + n - 1} cross the held-out boundary "
            f"{HELDOUT_SEED_START}; draw training and held-out clips separately")
    for seed in range(start_seed, start_seed + n):
        yield make_clip(seed, kind, config)
