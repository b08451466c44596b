"""Rewards for the synthetic world (`duet.data.world`), measured from the generated clip and
its caption alone with the project's rulers (`duet.eval`); each lies in [0, 1].

- `sync` (joint): the paired events' closeness, Σ max(0, 1 - |offset| / 2 frames), over
  every event either side found (pairs + missed + extra), so unmatched impacts or sounds
  cost as much as late ones; a clip with no event scores 0.
- `video_adherence` (video), the mean of three scores: what the caption names is there
  (the Jaccard score of the ball colours seen, or a face for a talk caption); a plausible
  impact count (2-8 floor contacts per captioned ball, as the world draws) or mouth-opening
  count (near the caption's syllable count); a steady picture (mean frame-to-frame change up
  to 3 grey levels scores 1, falling to 0 at 15: real clips change by < 3).
- `motion` (video), for bounce captions the geometric mean of two scores: the balls travel
  up and down as far as real ones (`vertical_travel` per captioned ball, full score from
  `TRAVEL_PER_BALL` pixels, which nine real clips in ten reach after the codec's round trip)
  and along smooth parabolas (`height_jitter`: full score up to 0.5 px/frame², what the
  codec's round trip leaves, none from 3). It is what `video_adherence` lets through: a
  ball that hovers or jumps from place to place still makes a plausible number of
  "contacts". For talk captions: the mouth-opening count near the syllable count.
- `audio_adherence` (audio), the mean of two scores: the material's sound (the fraction of
  onsets whose sound is a captioned ball's material) or, for speech, a voice at all (at
  least one onset); and a plausible onset count (as for the impacts, or near the syllables).

Counts away from the plausible range lose linearly: half the lower bound scores 0.5, twice
the upper bound scores 0 (`count_score`). Scores of reward-hacked clips (one loud click
in a still picture, say) stay low on the other terms, which is why each reward mixes them.
"""

from __future__ import annotations

import numpy as np

from duet.errors import ConfigError, InputError
from duet.eval.adherence import impact_material, prompt_adherence
from duet.eval.sync import audio_onsets, measure
from duet.eval.visual import detect_kind, height_jitter, vertical_travel, visual_events
from duet.train.rl.generated import GeneratedClip

EVENTS_PER_BALL = (2, 8)  # the world's balls hit the floor 3-7 times in 4 s
STEADY = (3.0, 15.0)  # mean |frame change| (grey levels): full score up to 3, none from 15
TRAVEL_PER_BALL = 60.0  # px up and down per 4 s: 90 % of real balls after the codec round trip
SMOOTH = (0.5, 3.0)  # height jitter (px/frame²): full score up to 0.5 (codec), none from 3


def count_score(n: int, low: float, high: float) -> float:
    """1 inside [low, high]; n / low below it; max(0, 1 - (n - high) / high) above it."""
    if n < low:
        return n / low
    if n > high:
        return max(0.0, 1.0 - (n - high) / high)
    return 1.0


def steady_score(frames: np.ndarray) -> float:
    """1 for a picture that changes like real footage, 0 for heavy flicker."""
    f = np.asarray(frames, np.float32)
    change = float(np.abs(f[1:] - f[:-1]).mean()) if len(f) > 1 else 0.0
    lo, hi = STEADY
    return float(np.clip(1.0 - (change - lo) / (hi - lo), 0.0, 1.0))


def _caption(clip: GeneratedClip) -> dict:
    """What the ruler reads against the caption (InputError: not a world caption)."""
    try:
        return prompt_adherence(clip.frames, clip.audio, clip.prompt, clip.fps, clip.sample_rate)
    except InputError as e:
        raise ConfigError(f"the world rewards read synthetic-world captions only ({e}); use "
                          "other rewards for other prompts") from None


def _near(n: int, expected: int) -> float:
    """Count score for a count expected near `expected` (within a quarter, at least 1)."""
    slack = max(1.0, 0.25 * expected)
    return count_score(n, max(1.0, expected - slack), expected + slack)


def sync(clip: GeneratedClip) -> float:
    """Closeness of the paired visual events and sound onsets, over all events found."""
    report = measure(clip.frames, clip.audio, clip.fps, clip.sample_rate)
    events = report.n_visual + report.extra
    if events == 0:
        return 0.0
    close = sum(max(0.0, 1.0 - abs(o) / (2 * report.frame_ms)) for o in report.offsets_ms)
    return close / events


def video_adherence(clip: GeneratedClip) -> float:
    """Named things seen, plausible event count, steady picture (mean of three)."""
    found = _caption(clip)
    if found["kind"] == "bounce":
        balls = len(found["colours_expected"])
        contacts = len(visual_events(clip.frames, clip.fps, "bounce"))
        named = found["colour_score"]
        count = count_score(contacts, *(balls * n for n in EVENTS_PER_BALL))
    else:
        named = float(detect_kind(clip.frames) == "talk")
        count = _near(found["mouth_openings"], found["syllables_expected"])
    return (named + count + steady_score(clip.frames)) / 3


def motion(clip: GeneratedClip) -> float:
    """Balls that fall and bounce (travel, smooth paths), or a mouth that moves with the words.
    The two bounce scores are multiplied (geometric mean): with their mean, a policy learnt to
    collect the smoothness half with balls that hover (docs/rl.md)."""
    found = _caption(clip)
    if found["kind"] != "bounce":
        return _near(found["mouth_openings"], found["syllables_expected"])
    balls = len(found["colours_expected"])
    travel = min(1.0, vertical_travel(clip.frames) / (balls * TRAVEL_PER_BALL))
    jitter = height_jitter(clip.frames)
    lo, hi = SMOOTH
    smooth = 0.0 if np.isnan(jitter) else float(np.clip(1.0 - (jitter - lo) / (hi - lo), 0.0, 1.0))
    return float(np.sqrt(travel * smooth))


def audio_adherence(clip: GeneratedClip) -> float:
    """The captioned sound heard, plausible onset count (mean of two)."""
    found = _caption(clip)
    onsets = audio_onsets(clip.audio, clip.sample_rate)
    if found["kind"] == "bounce":
        wanted = set(found["materials_expected"].values())
        heard = [impact_material(clip.audio, clip.sample_rate, t) for t in onsets]
        sound = sum(m in wanted for m in heard) / len(heard) if heard else 0.0
        balls = len(found["colours_expected"])
        count = count_score(len(onsets), *(balls * n for n in EVENTS_PER_BALL))
    else:
        sound = float(len(onsets) > 0)
        count = _near(len(onsets), found["syllables_expected"])
    return (sound + count) / 2
