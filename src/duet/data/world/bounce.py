"""The ``bounce`` scene: one or two balls fall and bounce on a floor, solved in closed form
between contacts so every impact instant is exact; each contact starts a percussive sound
whose timbre follows the ball's material."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from duet.data.world.common import (BACKGROUNDS, EDGE_FRAMES, PALETTE, SIZES, WorldClip,
                                    WorldConfig)
from duet.data.world.draw import (Sound, band_noise, disc, finish, paint, place, room_tone,
                                  to_uint8)

_FLOORS: dict[str, tuple[int, int, int]] = {
    "wooden": (128, 92, 58),
    "gray stone": (105, 105, 112),
    "white tiled": (200, 200, 206),
}
_MATERIAL_WORD = {"rubber": "rubber", "metal": "metal", "glass": "glass", "wood": "wooden",
                  "bronze": "bronze"}

# Physics in units of the frame height H, so clips look the same at any resolution; gravity
# (H / s^2) is the world's `WorldConfig.gravity`.
_FLOOR = 0.875  # floor line at this fraction of the height (the band below is the floor)
# A ball whose rebound speed (H / s) is below this stops (it would otherwise bounce forever):
# every rebound rises at least _V_MIN^2 / 2g (4.5 px of a 64 px frame at the default gravity,
# more in a slower world) and flies at least 2 _V_MIN / g (0.3 s), so the evaluator always
# sees the ball leave the floor.
_V_MIN = 0.9375
_RESTITUTION = {"rubber": (0.78, 0.90), "metal": (0.65, 0.80), "glass": (0.65, 0.80),
                "wood": (0.60, 0.75), "bronze": (0.60, 0.72)}

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
    click = band_noise(rng, int(0.03 * sr), sr, centre, width)

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
    g = config.gravity * h
    colour = str(rng.choice(sorted(set(PALETTE) - taken)))
    size = str(rng.choice(list(SIZES)))
    material = str(rng.choice(config.materials))
    r = SIZES[size] * h
    floor_y = round(_FLOOR * h)
    y_contact = floor_y - r
    top = r + 0.04 * h
    if rng.random() < 1.0 - config.drop_in:  # in flight from the first frame
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
    edge = EDGE_FRAMES / config.fps
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


def make_bounce(rng: np.random.Generator, config: WorldConfig) -> WorldClip:
    """A bounce clip drawn from `rng`; every draw comes from this one stream, in a fixed order,
    so the clip is a pure function of the seed."""
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
    audio = room_tone(rng, config) if ambience else np.zeros(config.samples)
    v_ref = math.sqrt(2 * config.gravity * h * _FLOOR * h)  # speed of a fall from the top
    for b in balls:
        r, colour = b["radius"], np.asarray(PALETTE[b["colour"]], np.float64)
        cx = b["x0"] + b["vx"] * times
        cy = _heights(b["segments"], times, config.gravity * h)
        paint(img, disc(cx, cy, r, h, w), colour)
        if b["material"] == "wood":  # a darker grain band across the middle
            band = disc(cx, cy, r, h, w) * (np.abs(np.arange(h)[None, :, None] + 0.5
                                                   - cy[:, None, None]) < 0.22 * r)
            paint(img, band, 0.72 * colour)
        elif b["material"] in ("metal", "glass", "bronze"):  # a specular highlight
            spot = disc(cx - 0.35 * r, cy - 0.35 * r, 0.28 * r, h, w)
            paint(img, spot * (0.85 if b["material"] == "metal" else 0.6), (250, 250, 250))
        pitch = (1.25 if b["size"] == "small" else 0.8) * rng.uniform(0.94, 1.06)
        tuning = pitch * (1.0 + rng.uniform(-0.02, 0.02, len(_IMPACT[b["material"]]["modes"])))
        for t_hit, v_in in b["impacts"]:
            loud = 0.6 * min(1.0, v_in / v_ref)
            place(audio, t_hit, sr, _impact_sound(rng, b["material"], tuning, loud, sr))

    events = tuple(sorted(t for b in balls for t, _ in b["impacts"]))
    attributes = dict(
        background=background, floor=floor, floor_y=floor_y, ambience=ambience,
        balls=[dict(colour=b["colour"], size=b["size"], material=b["material"],
                    radius=b["radius"], restitution=b["restitution"],
                    impacts=tuple(t for t, _ in b["impacts"]),
                    speeds=tuple(v for _, v in b["impacts"])) for b in balls])
    caption = _bounce_caption(balls, floor, background, ambience)
    return WorldClip(to_uint8(img), finish(audio), caption, "bounce", events, attributes)
