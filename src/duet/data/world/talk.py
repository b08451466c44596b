"""The ``talk`` scene: a cartoon face says a phrase; a syllable synthesizer (consonant
bursts, formant vowels, a pitch per speaker) makes the voice, and the mouth opens with each
syllable's loudness envelope."""

from __future__ import annotations

from typing import Any

import numpy as np

from duet.data.world.common import EDGE_FRAMES, WorldClip, WorldConfig
from duet.data.world.draw import (
    Sound,
    band_noise,
    disc,
    ellipse,
    finish,
    paint,
    place,
    room_tone,
    to_uint8,
)

#: The lexicon: each word as consonant-vowel syllables (every syllable starts with a
#: consonant, so each has a sharp acoustic onset), which the synthesizer voices.
WORDS: dict[str, tuple[str, ...]] = {
    "hello": ("he", "lo"), "banana": ("ba", "na", "na"), "tomato": ("to", "ma", "to"),
    "potato": ("po", "ta", "to"), "coffee": ("ko", "fi"), "music": ("mu", "si"),
    "paper": ("pe", "pa"), "lemon": ("le", "mo"), "tiger": ("ti", "ga"), "pony": ("po", "ni"),
    "hippo": ("hi", "po"), "sofa": ("so", "fa"), "kitty": ("ki", "ti"), "daddy": ("da", "di"),
    "mommy": ("ma", "mi"), "robot": ("ro", "bo"), "pizza": ("pi", "sa"), "hotel": ("ho", "te"),
    "lady": ("le", "di"), "yes": ("ye",), "no": ("no",), "go": ("go",), "see": ("si",),
    "funny": ("fa", "ni"), "sunny": ("sa", "ni"), "baby": ("be", "bi"), "radio": ("re", "di", "yo"),
}
# Vowels: formants F1..F3 (Hz) and how wide the mouth opens (0..1).
_VOWELS = {"a": ((750, 1250, 2550), 1.0), "e": ((480, 1900, 2550), 0.7),
           "i": ((300, 2300, 3000), 0.5), "o": ((500, 880, 2450), 0.8),
           "u": ((330, 800, 2300), 0.45)}
# Consonants: (kind, noise band centre Hz, band width Hz, length s, gain).
_CONSONANTS = {
    "p": ("burst", 800, 500, 0.014, 0.7), "b": ("burst", 500, 350, 0.010, 0.6),
    "t": ("burst", 4200, 1200, 0.014, 0.6), "d": ("burst", 3000, 1000, 0.010, 0.5),
    "k": ("burst", 1900, 600, 0.018, 0.6), "g": ("burst", 1500, 500, 0.012, 0.5),
    "s": ("hiss", 5500, 1200, 0.085, 0.35), "f": ("hiss", 3500, 2500, 0.065, 0.25),
    "h": ("hiss", 1500, 900, 0.055, 0.25), "m": ("hum", 250, 0, 0.060, 0.5),
    "n": ("hum", 300, 0, 0.055, 0.5), "l": ("hum", 380, 0, 0.045, 0.6),
    "r": ("hum", 420, 0, 0.045, 0.6), "y": ("hum", 300, 0, 0.040, 0.6),
}
_VOICES = {"deep": (95.0, 130.0), "medium": (150.0, 190.0), "high-pitched": (215.0, 260.0)}
_SKINS = {"yellow": (245, 205, 80), "peach": (240, 190, 160), "tan": (200, 150, 105),
          "light green": (160, 215, 140), "light blue": (150, 190, 235)}
_TALK_BACKGROUNDS = {"dark gray": (48, 48, 54), "navy": (24, 30, 70), "black": (12, 12, 16),
                     "dark purple": (50, 28, 60)}


def _voiced(f0: np.ndarray, formants: tuple[float, ...], sr: int, tilt: float = 1.0) -> np.ndarray:
    """Additive harmonic voice: harmonics of the pitch track `f0` [n] weighted by formant
    resonances (formant-filtered glottal source, without any filter state)."""
    phase = 2 * np.pi * np.cumsum(f0) / sr  # [n]
    k = np.arange(1, int(0.45 * sr / f0.max()) + 1)[:, None]  # [K, 1] harmonics below 0.9 Nyq.
    freq = k * f0[None, :]  # [K, n]
    gain = sum(1.0 / (1.0 + ((freq - f) / (60.0 + 0.06 * f)) ** 2) for f in formants)
    out = (gain / k**tilt * np.sin(k * phase)).sum(axis=0)
    return out / (np.abs(out).max() + 1e-12)


def _schedule(rng: np.random.Generator, words: list[str], config: WorldConfig,
              start: float) -> list[dict[str, Any]] | None:
    """Syllable timing for `words`, or None if they do not fit before the clip's end."""
    out: list[dict[str, Any]] = []
    t = start
    for wi, word in enumerate(words):
        if wi:
            t += rng.uniform(0.12, 0.25)  # pause between words
        for si, syl in enumerate(WORDS[word]):
            if si:
                t += rng.uniform(0.035, 0.09)  # the mouth closes between syllables
            if out:
                t = max(t, out[-1]["onset"] + config.min_event_gap)
            attack = rng.uniform(0.10, 0.14)  # mouth/vowel ramp: >= 2 frames at 24 fps
            release = rng.uniform(0.05, 0.08)
            length = attack + release + rng.uniform(0.03, 0.10)
            out.append(dict(syllable=syl, onset=t, attack=attack, release=release,
                            length=length))
            t += length
    edge = EDGE_FRAMES / config.fps
    return out if t <= config.duration - max(edge, 0.2) else None


def _syllable_sound(rng: np.random.Generator, s: dict[str, Any], f0: float, sr: int) -> Sound:
    """One consonant-vowel syllable. The consonant starts it sharply (a burst, a hiss or a
    nasal/liquid hum); the vowel's loudness follows the mouth envelope."""
    kind, centre, width, c_len, c_gain = _CONSONANTS[s["syllable"][0]]
    formants, _ = _VOWELS[s["syllable"][1]]
    n = int((s["length"] + 0.01) * sr)
    contour = f0 * np.linspace(1.04, 0.96, n)  # a slight fall within the syllable
    vowel_wave = _voiced(contour, formants, sr)
    if kind == "hum":
        cons_wave = _voiced(contour, (centre, 2.6 * centre), sr, tilt=2.0)
    else:
        cons_wave = band_noise(rng, n, sr, centre, width) / 3.0
    attack, release, length = s["attack"], s["release"], s["length"]
    # Voicing starts 20 ms after a burst; after a hiss or hum the vowel cross-fades in, so
    # each syllable has one sharp acoustic onset: its first sound.
    v_start, fade = (c_len + 0.02, 0.01) if kind == "burst" else (c_len - 0.03, 0.04)

    def make(tau: np.ndarray) -> np.ndarray:
        tau = tau[:n]
        env = _mouth_env(tau, attack, release, length)
        out = 0.8 * env * np.clip((tau - v_start) / fade, 0.0, 1.0) * vowel_wave[: len(tau)]
        if kind == "burst":
            shape = np.exp(-tau / (0.4 * c_len)) * (tau < c_len + 0.01)
        else:  # 2 ms attack, hold, 30 ms fade
            shape = np.clip(tau / 0.002, 0.0, 1.0) * np.clip((c_len - tau) / 0.03 + 1, 0, 1)
        return out + c_gain * shape * cons_wave[: len(tau)]

    return make


def _mouth_env(tau: np.ndarray, attack: float, release: float, length: float) -> np.ndarray:
    """Syllable loudness and mouth opening: linear rise from the onset, hold, linear fall."""
    rise = np.clip(tau / attack, 0.0, 1.0)
    fall = np.clip((length - tau) / release, 0.0, 1.0)
    return np.minimum(rise, fall) * (tau >= 0)


def make_talk(rng: np.random.Generator, config: WorldConfig) -> WorldClip:
    """A talk clip drawn from `rng`; every draw comes from this one stream, in a fixed order,
    so the clip is a pure function of the seed."""
    h, w, sr = config.height, config.width, config.sample_rate
    background = str(rng.choice(list(_TALK_BACKGROUNDS)))
    skin = str(rng.choice(list(_SKINS)))
    voice = str(rng.choice(list(_VOICES)))
    f0 = rng.uniform(*_VOICES[voice])
    start = EDGE_FRAMES / config.fps + rng.uniform(0.03, 0.4)
    words: list[str] = []
    plan: list[dict[str, Any]] = []
    for _ in range(int(rng.integers(2, 5))):  # up to 4 words, as many as fit
        candidate = [*words, str(rng.choice(list(WORDS)))]
        trial = _schedule(rng, candidate, config, start)
        if trial is None:
            break
        words, plan = candidate, trial
    if not plan:  # a short clip: one short word always fits in 1.5 s
        words = ["no"]
        plan = _schedule(rng, words, config, EDGE_FRAMES / config.fps) or []

    ambience = bool(rng.random() < config.ambience)
    audio = room_tone(rng, config) if ambience else np.zeros(config.samples)
    speech = np.zeros(config.samples)
    times = np.arange(config.frames) / config.fps
    opening = np.zeros(config.frames)
    for i, s in enumerate(plan):
        pitch = f0 * (1.0 - 0.08 * i / max(1, len(plan))) * rng.uniform(0.96, 1.04)
        place(speech, s["onset"], sr, _syllable_sound(rng, s, pitch, sr))
        openness = _VOWELS[s["syllable"][-1]][1]
        opening += openness * _mouth_env(times - s["onset"], s["attack"], s["release"],
                                         s["length"])
    audio += 0.6 * speech / (np.abs(speech).max() + 1e-12)

    cx = w / 2 + rng.uniform(-0.04, 0.04) * w
    cy = h / 2 + rng.uniform(-0.04, 0.04) * h
    R = rng.uniform(0.32, 0.38) * h
    face = np.broadcast_to(np.asarray(_TALK_BACKGROUNDS[background], np.float64),
                           (1, h, w, 3)).copy()  # the static part, drawn once
    one = np.ones(1)
    paint(face, disc(cx * one, cy * one, R, h, w), _SKINS[skin])
    for side in (-1, 1):
        ex, ey = cx + side * 0.38 * R, cy - 0.25 * R
        paint(face, disc(ex * one, ey * one, 0.17 * R, h, w), (250, 250, 250))
        paint(face, disc(ex * one, ey * one, 0.09 * R, h, w), (20, 20, 30))
    img = np.repeat(face, config.frames, axis=0)
    b = 0.035 * R + opening * 0.26 * R  # closed lips are a thin line
    paint(img, ellipse(cx, cy + 0.45 * R, 0.38 * R, b, h, w), (70, 15, 20))

    phrase = " ".join(words)
    caption = (f"A cartoon face with {skin} skin and round eyes on a plain {background} "
               f"background says <S>{phrase}<E>. <AUDCAP>A {voice} voice speaking clearly, "
               f"{'quiet room ambience' if ambience else 'no background noise'}<ENDAUDCAP>")
    events = tuple(s["onset"] for s in plan)
    attributes = dict(background=background, skin=skin, voice=voice, f0=f0, words=tuple(words),
                      syllables=tuple(s["syllable"] for s in plan), ambience=ambience,
                      head=(cx, cy, R))
    return WorldClip(to_uint8(img), finish(audio), caption, "talk", events, attributes)
