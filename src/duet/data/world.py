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

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from duet.errors import ConfigError, InputError

__all__ = [
    "BACKGROUNDS",
    "HELDOUT_SEED_START",
    "EXTRA_MATERIALS",
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
_FLOORS: dict[str, tuple[int, int, int]] = {
    "wooden": (128, 92, 58),
    "gray stone": (105, 105, 112),
    "white tiled": (200, 200, 206),
}
MATERIALS: tuple[str, ...] = ("rubber", "metal", "glass", "wood")
# Not drawn by default: a concept the default model has never seen (LoRA fine-tuning demo).
EXTRA_MATERIALS: tuple[str, ...] = ("bronze",)
_MATERIAL_WORD = {"rubber": "rubber", "metal": "metal", "glass": "glass", "wood": "wooden",
                  "bronze": "bronze"}
SIZES: dict[str, float] = {"small": 0.06, "large": 0.095}  # ball radius / frame height

# Physics in units of the frame height H, so clips look the same at any resolution.
_GRAVITY = 6.25  # H / s^2: a fall through the whole frame takes ~0.55 s
_FLOOR = 0.875  # floor line at this fraction of the height (the band below is the floor)
# A ball whose rebound speed is below this stops (it would otherwise bounce forever); it
# also bounds every flight to >= 2 * _V_MIN / _GRAVITY = 0.3 s, so the evaluator always
# sees a few frames on each side of a contact.
_V_MIN = 0.15 * _GRAVITY
_RESTITUTION = {"rubber": (0.78, 0.90), "metal": (0.65, 0.80), "glass": (0.65, 0.80),
                "wood": (0.60, 0.75), "bronze": (0.60, 0.72)}
_EDGE_FRAMES = 3  # no event within this many frames of either end of the clip


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
    clip = _make_bounce(rng, config) if kind == "bounce" else _make_talk(rng, config)
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


# ------------------------------------------------------------------------------ drawing


def _disc(cx: np.ndarray, cy: np.ndarray, r: float, h: int, w: int) -> np.ndarray:
    """Anti-aliased disc coverage [T, h, w] for centres [T] (pixel (i, j) spans [j, j+1) x
    [i, i+1)). Coverage ramps linearly over one pixel across the edge, which keeps the
    centroid a smooth function of a sub-pixel position."""
    ys = np.arange(h, dtype=np.float64)[None, :, None] + 0.5
    xs = np.arange(w, dtype=np.float64)[None, None, :] + 0.5
    d = np.hypot(xs - np.asarray(cx, np.float64)[:, None, None],
                 ys - np.asarray(cy, np.float64)[:, None, None])
    return np.clip(r + 0.5 - d, 0.0, 1.0)


def _ellipse(cx: float, cy: float, a: float, b: np.ndarray, h: int, w: int,
             sub: int = 8) -> np.ndarray:
    """Ellipse coverage [T, h, w] with per-frame vertical semi-axis `b` [T]: exact along x,
    `sub` sub-rows per pixel along y, so the covered area grows linearly with `b` (a mouth's
    dark area then follows its opening even below one pixel). Only the bounding box is
    rasterised."""
    b = np.maximum(np.asarray(b, np.float64), 1e-6)[:, None]  # [T, 1]
    r0, r1 = max(0, math.floor(cy - b.max()) - 1), min(h, math.ceil(cy + b.max()) + 1)
    c0, c1 = max(0, math.floor(cx - a) - 1), min(w, math.ceil(cx + a) + 1)
    ys = (np.arange(r0 * sub, r1 * sub, dtype=np.float64) + 0.5) / sub  # sub-row centres
    half = a * np.sqrt(np.clip(1.0 - ((ys[None, :] - cy) / b) ** 2, 0.0, None))  # [T, rows*sub]
    cols = np.arange(c0, c1, dtype=np.float64)
    lo = np.maximum((cx - half)[..., None], cols)  # [T, rows*sub, cols]
    hi = np.minimum((cx + half)[..., None], cols + 1.0)
    out = np.zeros((len(b), h, w))
    out[:, r0:r1, c0:c1] = np.clip(hi - lo, 0.0, 1.0).reshape(len(b), r1 - r0, sub, c1 - c0).mean(2)
    return out


def _paint(img: np.ndarray, alpha: np.ndarray, colour: Any) -> None:
    """Composite `colour` over `img` [T, h, w, 3] (float) with coverage `alpha` [T, h, w]."""
    img += alpha[..., None] * (np.asarray(colour, np.float64) - img)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))


# ------------------------------------------------------------------------------ sound

Sound = Callable[[np.ndarray], np.ndarray]  # time since onset (s) -> samples


def _band_noise(rng: np.random.Generator, n: int, sr: int, centre: float,
                width: float) -> np.ndarray:
    """White noise shaped by a Gaussian band (FFT mask), unit RMS. Filtering happens before
    any envelope is applied, so nothing leaks ahead of a sound's onset."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spec *= np.exp(-0.5 * ((freqs - centre) / width) ** 2)
    out = np.fft.irfft(spec, n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def _place(track: np.ndarray, t0: float, sr: int, make: Sound) -> None:
    """Add `make(tau)` to `track` from time t0 on, where tau = n / sr - t0 >= 0 is the exact
    (sub-sample) time since the onset, so a sound starts at t0 and not at a rounded sample."""
    start = math.ceil(t0 * sr - 1e-9)
    if start >= len(track):
        return
    tau = np.arange(start, len(track)) / sr - t0
    piece = make(tau)
    track[start : start + len(piece)] += piece


def _ambience(rng: np.random.Generator, config: WorldConfig) -> np.ndarray:
    """A quiet room tone (pinkish noise, about -50 dBFS RMS)."""
    n, sr = config.samples, config.sample_rate
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spec /= np.sqrt(np.maximum(freqs, 20.0))
    noise = np.fft.irfft(spec, n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12) * rng.uniform(0.002, 0.004)


def _finish(audio: np.ndarray) -> np.ndarray:
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------ bounce

# Modal frequencies (Hz, for a small ball), decay times (s) and relative gains per
# material; a noise "click" of the given band and length marks the contact itself.
_IMPACT = {
    "rubber": dict(modes=(110.0, 240.0), decays=(0.035, 0.02), gains=(1.0, 0.4),
                   click=(250.0, 300.0, 0.004, 0.5)),
    "wood": dict(modes=(620.0, 1330.0, 2150.0), decays=(0.035, 0.022, 0.012),
                 gains=(1.0, 0.6, 0.3), click=(1200.0, 800.0, 0.003, 0.6)),
    "metal": dict(modes=(2000.0, 3320.0, 4660.0), decays=(0.35, 0.25, 0.15),
                  gains=(1.0, 0.6, 0.35), click=(4000.0, 2000.0, 0.002, 0.4)),
    "glass": dict(modes=(3900.0, 5300.0, 6700.0), decays=(0.045, 0.035, 0.025),
                  gains=(1.0, 0.7, 0.5), click=(5500.0, 1500.0, 0.002, 0.6)),
    "bronze": dict(modes=(520.0, 1270.0, 1830.0), decays=(0.6, 0.4, 0.25),
                   gains=(1.0, 0.5, 0.3), click=(900.0, 600.0, 0.003, 0.3)),
}


def _impact_sound(rng: np.random.Generator, material: str, tuning: np.ndarray, loud: float,
                  sr: int) -> Sound:
    """The waveform of one contact as a function of time since contact (s): a short noise
    click plus exponentially decaying modes (sine phase, so the modes start from zero).
    `tuning` scales each mode's frequency; it belongs to the ball, so repeated hits of one
    ball ring at the same pitches."""
    p = _IMPACT[material]
    centre, width, click_len, click_gain = p["click"]
    click = _band_noise(rng, int(0.03 * sr), sr, centre, width)

    def make(tau: np.ndarray) -> np.ndarray:
        tau = tau[: int(6 * max(p["decays"]) * sr)]
        out = np.zeros_like(tau)
        for f, d, g, k in zip(p["modes"], p["decays"], p["gains"], tuning, strict=True):
            if f * k < 0.45 * sr:  # a low sample rate drops the highest modes
                out += g * np.exp(-tau / d) * np.sin(2 * np.pi * f * k * tau)
        m = min(len(tau), len(click))
        out[:m] += click_gain * click[:m] * np.exp(-tau[:m] / click_len)
        return loud * out / sum(p["gains"])

    return make


Segment = tuple[float, float, float]  # (t_start, y_start, v_start); v nan = at rest


def _flight(t0: float, y0: float, v0: float, y_contact: float, e: float, t_end: float,
            g: float, v_min: float) -> tuple[list[Segment], list[tuple[float, float]]]:
    """Exact event-driven bounce from (t0, y0, v0), y pointing down. Returns trajectory
    segments (t_start, y_start, v_start), each a parabola until the next (before t0 the ball
    is out of sight above the frame); a ball that stops gets a final segment with v = nan
    (at rest); and the impacts (time, speed into the floor)."""
    segments, impacts = [(-1.0, -1e3, math.nan), (t0, y0, v0)], []
    t, y, v = t0, y0, v0
    while True:
        tau = (-v + math.sqrt(v * v + 2.0 * g * (y_contact - y))) / g
        t_hit, v_in = t + tau, v + g * tau
        if t_hit > t_end:
            return segments, impacts
        impacts.append((t_hit, v_in))
        if e * v_in < v_min:
            segments.append((t_hit, y_contact, math.nan))
            return segments, impacts
        t, y, v = t_hit, y_contact, -e * v_in
        segments.append((t, y, v))


def _heights(segments: list[Segment], times: np.ndarray, g: float) -> np.ndarray:
    """Height (y down, pixels) of a ball at each time, from its trajectory segments."""
    seg = np.asarray(segments)
    i = np.searchsorted(seg[:, 0], times, side="right") - 1
    t0, y0, v0 = seg[i, 0], seg[i, 1], seg[i, 2]
    dt = times - t0
    rest = np.isnan(v0)
    return np.where(rest, y0, y0 + np.nan_to_num(v0) * dt + 0.5 * g * dt**2)


def _draw_ball(rng: np.random.Generator, config: WorldConfig, lane: tuple[float, float],
               taken: set[str]) -> dict[str, Any]:
    """Random ball parameters and their exact trajectory; `lane` is its horizontal range."""
    h, T = config.height, config.duration
    g = _GRAVITY * h
    colour = str(rng.choice(sorted(set(PALETTE) - taken)))
    size = str(rng.choice(list(SIZES)))
    material = str(rng.choice(config.materials))
    r = SIZES[size] * h
    floor_y = round(_FLOOR * h)
    y_contact = floor_y - r
    top = r + 0.04 * h
    if rng.random() < 0.5:  # in flight from the first frame
        t0, y0 = 0.0, rng.uniform(top, y_contact - 0.45 * h)
        v_up = math.sqrt(2 * g * (y0 - top))  # fastest upward start that stays in frame
        v0 = rng.uniform(-min(v_up, 0.6 * h), 0.5 * h)
    else:  # dropped in from above the frame later on
        t0, y0, v0 = rng.uniform(0.0, 0.5 * T), -r - 0.5, rng.uniform(0.0, 0.3 * h)
    lo, hi = lane[0] + r + 1, lane[1] - r - 1
    x0 = rng.uniform(lo, hi)
    vx = rng.uniform((lo - x0) / T, (hi - x0) / T)  # stays in its lane for the whole clip
    e = rng.uniform(*_RESTITUTION[material])
    segments, impacts = _flight(t0, y0, v0, y_contact, e, T, g, _V_MIN * h)
    return dict(colour=colour, size=size, material=material, radius=r, x0=x0, vx=vx,
                restitution=e, segments=segments, impacts=impacts)


def _events_ok(times: list[float], config: WorldConfig) -> bool:
    edge = _EDGE_FRAMES / config.fps
    times = sorted(times)
    if not times or times[0] < edge or times[-1] > config.duration - edge:
        return False
    return all(b - a >= config.min_event_gap for a, b in zip(times, times[1:]))


def _draw_balls(rng: np.random.Generator, config: WorldConfig) -> list[dict[str, Any]]:
    """One or two balls whose impacts are all observable (away from the clip ends and from
    each other); rejection sampling from the same stream keeps this deterministic."""
    w = config.width
    n = 1 if config.max_balls == 1 or rng.random() < 0.5 else 2
    lanes = [(0.0, float(w))] if n == 1 else [(0.0, w / 2.0), (w / 2.0, float(w))]
    balls: list[dict[str, Any]] = []
    for lane in lanes:
        for _ in range(200):
            ball = _draw_ball(rng, config, lane, {b["colour"] for b in balls})
            times = [t for b in [*balls, ball] for t, _ in b["impacts"]]
            if ball["impacts"] and _events_ok(times, config):
                balls.append(ball)
                break
    if not balls:  # pragma: no cover - 200 single-ball draws essentially never all fail
        raise RuntimeError("could not draw an observable bounce; adjust WorldConfig")
    return balls


def _bounce_caption(balls: list[dict[str, Any]], floor: str, background: str,
                    ambience: bool) -> str:
    names = [f"a {b['size']} {b['colour']} {_MATERIAL_WORD[b['material']]} ball" for b in balls]
    verb = "falls and bounces" if len(balls) == 1 else "fall and bounce"
    visual = (f"{' and '.join(names).capitalize()} {verb} on a {floor} floor in front of a "
              f"plain {background} wall.")
    sounds = {"rubber": "dull low rubbery thuds", "metal": "high metallic pings that ring",
              "glass": "bright short glassy clinks", "wood": "hollow wooden knocks",
              "bronze": "deep ringing bell-like bongs"}
    heard = " and ".join(dict.fromkeys(sounds[b["material"]] for b in balls))
    room = "quiet room ambience" if ambience else "otherwise silent"
    audio = f"{heard.capitalize()} each time a ball hits the floor, {room}"
    return f"{visual} <AUDCAP>{audio}<ENDAUDCAP>"


def _make_bounce(rng: np.random.Generator, config: WorldConfig) -> WorldClip:
    h, w, sr = config.height, config.width, config.sample_rate
    background = str(rng.choice(list(BACKGROUNDS)))
    floor = str(rng.choice(list(_FLOORS)))
    balls = _draw_balls(rng, config)
    ambience = bool(rng.random() < config.ambience)

    img = np.empty((config.frames, h, w, 3))
    img[:] = BACKGROUNDS[background]
    floor_y = round(_FLOOR * h)
    img[:, floor_y:] = _FLOORS[floor]
    times = np.arange(config.frames) / config.fps
    audio = _ambience(rng, config) if ambience else np.zeros(config.samples)
    v_ref = math.sqrt(2 * _GRAVITY * h * _FLOOR * h)  # speed of a fall from the top
    for b in balls:
        r, colour = b["radius"], np.asarray(PALETTE[b["colour"]], np.float64)
        cx = b["x0"] + b["vx"] * times
        cy = _heights(b["segments"], times, _GRAVITY * h)
        _paint(img, _disc(cx, cy, r, h, w), colour)
        if b["material"] == "wood":  # a darker grain band across the middle
            band = _disc(cx, cy, r, h, w) * (np.abs(np.arange(h)[None, :, None] + 0.5
                                                    - cy[:, None, None]) < 0.22 * r)
            _paint(img, band, 0.72 * colour)
        elif b["material"] in ("metal", "glass", "bronze"):  # a specular highlight
            spot = _disc(cx - 0.35 * r, cy - 0.35 * r, 0.28 * r, h, w)
            _paint(img, spot * (0.85 if b["material"] == "metal" else 0.6), (250, 250, 250))
        pitch = (1.25 if b["size"] == "small" else 0.8) * rng.uniform(0.94, 1.06)
        tuning = pitch * (1.0 + rng.uniform(-0.02, 0.02, len(_IMPACT[b["material"]]["modes"])))
        for t_hit, v_in in b["impacts"]:
            loud = 0.6 * min(1.0, v_in / v_ref)
            _place(audio, t_hit, sr, _impact_sound(rng, b["material"], tuning, loud, sr))

    events = tuple(sorted(t for b in balls for t, _ in b["impacts"]))
    attributes = dict(
        background=background, floor=floor, floor_y=floor_y, ambience=ambience,
        balls=[dict(colour=b["colour"], size=b["size"], material=b["material"],
                    radius=b["radius"], restitution=b["restitution"],
                    impacts=tuple(t for t, _ in b["impacts"]),
                    speeds=tuple(v for _, v in b["impacts"])) for b in balls])
    return WorldClip(_to_uint8(img), _finish(audio), _bounce_caption(balls, floor, background,
                     ambience), "bounce", events, attributes)


# ------------------------------------------------------------------------------ talk

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
    edge = _EDGE_FRAMES / config.fps
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
        cons_wave = _band_noise(rng, n, sr, centre, width) / 3.0
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


def _make_talk(rng: np.random.Generator, config: WorldConfig) -> WorldClip:
    h, w, sr = config.height, config.width, config.sample_rate
    background = str(rng.choice(list(_TALK_BACKGROUNDS)))
    skin = str(rng.choice(list(_SKINS)))
    voice = str(rng.choice(list(_VOICES)))
    f0 = rng.uniform(*_VOICES[voice])
    start = _EDGE_FRAMES / config.fps + rng.uniform(0.03, 0.4)
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
        plan = _schedule(rng, words, config, _EDGE_FRAMES / config.fps) or []

    ambience = bool(rng.random() < config.ambience)
    audio = _ambience(rng, config) if ambience else np.zeros(config.samples)
    speech = np.zeros(config.samples)
    times = np.arange(config.frames) / config.fps
    opening = np.zeros(config.frames)
    for i, s in enumerate(plan):
        pitch = f0 * (1.0 - 0.08 * i / max(1, len(plan))) * rng.uniform(0.96, 1.04)
        _place(speech, s["onset"], sr, _syllable_sound(rng, s, pitch, sr))
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
    _paint(face, _disc(cx * one, cy * one, R, h, w), _SKINS[skin])
    for side in (-1, 1):
        ex, ey = cx + side * 0.38 * R, cy - 0.25 * R
        _paint(face, _disc(ex * one, ey * one, 0.17 * R, h, w), (250, 250, 250))
        _paint(face, _disc(ex * one, ey * one, 0.09 * R, h, w), (20, 20, 30))
    img = np.repeat(face, config.frames, axis=0)
    b = 0.035 * R + opening * 0.26 * R  # closed lips are a thin line
    _paint(img, _ellipse(cx, cy + 0.45 * R, 0.38 * R, b, h, w), (70, 15, 20))

    phrase = " ".join(words)
    caption = (f"A cartoon face with {skin} skin and round eyes on a plain {background} "
               f"background says <S>{phrase}<E>. <AUDCAP>A {voice} voice speaking clearly, "
               f"{'quiet room ambience' if ambience else 'no background noise'}<ENDAUDCAP>")
    events = tuple(s["onset"] for s in plan)
    attributes = dict(background=background, skin=skin, voice=voice, f0=f0, words=tuple(words),
                      syllables=tuple(s["syllable"] for s in plan), ambience=ambience,
                      head=(cx, cy, R))
    return WorldClip(_to_uint8(img), _finish(audio), caption, "talk", events, attributes)
