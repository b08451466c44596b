"""Prompt adherence: does a world clip show and sound like its caption? Measured with the
sync rulers (`duet.eval.visual`, `duet.eval.sync`): the ball colours seen, each ball's
material as heard (decay and spectral centroid of the sounds at its floor contacts), and
for talk clips the mouth openings against the syllables of the spoken words.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from duet.data.world import MATERIALS, PALETTE, WORDS
from duet.errors import InputError
from duet.eval.sync import audio_onsets, match_events
from duet.eval.visual import ball_tracks, contact_times, visual_events
from duet.text.prompt import parse_prompt

__all__ = ["impact_material", "prompt_adherence"]

_BALL = re.compile(r"\b(small|large) (" + "|".join(PALETTE) + r") (rubber|metal|glass|wooden) ball")


def impact_material(audio: np.ndarray, sample_rate: int, onset: float) -> str:
    """Material heard at an onset. Decay first: a ring that loses < 4 dB from the first to
    the second 30 ms is metal (only in the bins the new sound dominates, so another ball's
    ringing does not count). Otherwise the spectral centroid of what was added at the
    onset: rubber < 350 Hz < wood < 2200 Hz < glass."""
    x = np.asarray(audio, np.float64)
    n = round(0.03 * sample_rate)
    i = round(onset * sample_rate)

    def power(a: int) -> np.ndarray:
        seg = x[max(0, a) : max(0, a + n)]
        seg = np.pad(seg, (0, n - len(seg)))
        return np.abs(np.fft.rfft(seg * np.hanning(n), 1024)) ** 2

    pre, early, late = power(i - n - round(0.002 * sample_rate)), power(i), power(i + n)
    new = early > 2 * pre
    if not new.any():
        new[:] = True
    decay_db = 10 * np.log10(max(late[new].sum(), 1e-20) / max(early[new].sum(), 1e-20))
    if decay_db > -4.0:
        return "metal"
    added = np.clip(early - pre, 0, None)
    freqs = np.fft.rfftfreq(1024, 1.0 / sample_rate)
    centroid = (freqs * added).sum() / max(added.sum(), 1e-20)
    return "glass" if centroid > 2200 else "wood" if centroid > 350 else "rubber"


def _ball_materials(tracks: dict[str, np.ndarray], height: int, audio: np.ndarray, fps: float,
                    sample_rate: int) -> dict[str, str | None]:
    """Colour -> majority material of the sounds paired with that ball's contacts."""
    contacts = sorted((t, c) for c, y in tracks.items() for t in contact_times(y, fps, height))
    visual = np.asarray([t for t, _ in contacts])
    owner = [c for _, c in contacts]
    onsets = audio_onsets(audio, sample_rate)
    pairs, _ = match_events(visual, onsets)
    votes: dict[str, list[str]] = {c: [] for c in tracks}
    for i, j in pairs:
        votes[owner[i]].append(impact_material(audio, sample_rate, onsets[j]))
    return {c: max(MATERIALS, key=v.count) if v else None for c, v in votes.items()}


def prompt_adherence(frames: np.ndarray, audio: np.ndarray, caption: str, fps: float = 24.0,
                     sample_rate: int = 16000) -> dict[str, Any]:
    """How well a world clip matches its caption.

    ``bounce`` captions: ``colour_match`` (the set of ball colours seen equals the
    caption's), ``colour_score`` (Jaccard index of the two sets), ``material_match`` /
    ``material_score`` (each captioned ball's material as heard at its contacts).
    ``talk`` captions: ``syllables_expected`` (from the lexicon), ``mouth_openings``,
    ``syllable_match`` (within one). Detected values are included for inspection.
    """
    prompt = parse_prompt(caption)
    balls = {m[2]: m[3].replace("wooden", "wood") for m in _BALL.finditer(prompt.visual)}
    if balls:
        tracks = ball_tracks(frames)
        seen = set(tracks)
        heard = _ball_materials(tracks, np.asarray(frames).shape[1], audio, fps, sample_rate)
        right = [c for c, m in balls.items() if heard.get(c) == m]
        return dict(kind="bounce", colours_expected=sorted(balls), colours_detected=sorted(seen),
                    colour_match=seen == set(balls),
                    colour_score=len(seen & set(balls)) / len(seen | set(balls)),
                    materials_expected=balls, materials_detected=heard,
                    material_match=len(right) == len(balls),
                    material_score=len(right) / len(balls))
    if prompt.speech:
        words = " ".join(prompt.speech).lower().split()
        expected = sum(len(WORDS.get(w.strip(".,!?"), ())) or
                       max(1, len(re.findall(r"[aeiouy]+", w))) for w in words)
        openings = len(visual_events(frames, fps, "talk"))
        return dict(kind="talk", syllables_expected=expected, mouth_openings=openings,
                    syllable_match=abs(openings - expected) <= 1)
    raise InputError("caption names no ball and no speech; it is not a world caption")
