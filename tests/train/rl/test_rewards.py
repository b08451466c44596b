"""The reward registry, the simple rewards, and the world's rewards on real and spoilt clips."""

from __future__ import annotations

import numpy as np
import pytest

from duet.data.world import make_clip
from duet.errors import ConfigError
from duet.train.rl import REWARDS, GeneratedClip, Reward, get_reward, register_reward
from duet.train.rl.world_rewards import count_score, steady_score


def _clip(frames, audio, prompt="x") -> GeneratedClip:
    return GeneratedClip(np.asarray(frames, np.uint8), np.asarray(audio, np.float32), 24.0, 16000,
                         prompt)


def test_builtins_are_registered_with_their_tags():
    tags = {n: REWARDS[n].tag for n in ("sync", "video_adherence", "motion", "audio_adherence",
                                        "brightness", "loudness")}
    assert tags == {"sync": "joint", "video_adherence": "video", "motion": "video",
                    "audio_adherence": "audio", "brightness": "video", "loudness": "audio"}


def test_register_and_look_up_by_name_or_import_path():
    @register_reward("test-constant", "joint")
    def constant(clip: GeneratedClip) -> float:
        return 0.5

    try:
        assert isinstance(constant, Reward) and get_reward("test-constant") is constant
        assert constant(_clip(np.zeros((2, 4, 4, 3)), np.zeros(8))) == 0.5
    finally:
        del REWARDS["test-constant"]
    assert get_reward("duet.train.rl.rewards:brightness") is REWARDS["brightness"]
    with pytest.raises(ConfigError, match="unknown reward 'nope'; registered: "):
        get_reward("nope")
    with pytest.raises(ConfigError, match="cannot import"):
        get_reward("duet.train.rl.rewards:missing")
    with pytest.raises(ConfigError, match="is not a Reward: decorate"):
        get_reward("duet.train.rl.world_rewards:sync")  # a plain function
    with pytest.raises(ConfigError, match="tagged 'both'"):
        register_reward("bad", "both")(lambda clip: 0.0)


def test_brightness_and_loudness():
    frames = np.full((2, 4, 4, 3), 51)
    assert REWARDS["brightness"](_clip(frames, np.zeros(8))) == pytest.approx(0.2)
    silent, full = _clip(frames, np.zeros(800)), _clip(frames, np.ones(800))
    assert REWARDS["loudness"](silent) == 0.0 and REWARDS["loudness"](full) == 1.0
    half = _clip(frames, np.full(800, 10 ** (-30 / 20)))  # -30 dBFS
    assert REWARDS["loudness"](half) == pytest.approx(0.5)


def test_count_and_steady_scores():
    assert [count_score(n, 2, 8) for n in (0, 1, 2, 8, 12, 16, 30)] == [0, 0.5, 1, 1, 0.5, 0, 0]
    still = np.zeros((5, 8, 8, 3))
    noisy = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3))
    assert steady_score(still) == 1.0 and steady_score(noisy) == 0.0


@pytest.mark.parametrize("seed", [1, 3])  # a bounce clip and a talk clip
def test_world_rewards_score_real_clips_high_and_spoilt_ones_lower(seed):
    world = make_clip(seed)
    real = GeneratedClip(world.video, world.audio, 24.0, 16000, world.caption)
    scores = {n: REWARDS[n](real) for n in ("sync", "video_adherence", "audio_adherence")}
    # the ruler finds a few extra onsets in some speech (a consonant and its vowel)
    assert scores["sync"] > 0.5 and scores["video_adherence"] > 0.8, scores
    assert scores["audio_adherence"] > 0.7, scores
    late = np.concatenate([np.zeros(3200, np.float32), world.audio[:-3200]])  # sound 200 ms late
    late_clip = GeneratedClip(world.video, late, 24.0, 16000, world.caption)
    assert REWARDS["sync"](late_clip) < 0.5 * scores["sync"]
    rng = np.random.default_rng(0)
    flicker = np.clip(world.video + rng.normal(0, 40, world.video.shape), 0, 255).astype(np.uint8)
    spoilt = GeneratedClip(flicker, world.audio, 24.0, 16000, world.caption)
    assert REWARDS["video_adherence"](spoilt) < scores["video_adherence"] - 0.2
    hiss = GeneratedClip(world.video, rng.normal(0, 0.3, world.audio.shape).astype(np.float32),
                         24.0, 16000, world.caption)
    assert REWARDS["audio_adherence"](hiss) < scores["audio_adherence"]


def test_motion_scores_falling_balls_over_hovering_or_jumping_ones():
    world = make_clip(1)
    assert world.kind == "bounce"

    def motion(frames) -> float:
        return REWARDS["motion"](GeneratedClip(frames, world.audio, 24.0, 16000, world.caption))

    real = motion(world.video)
    # the ball held where it is in the middle frame: a steady track that goes nowhere
    hover = motion(np.repeat(world.video[len(world.video) // 2][None], len(world.video), 0))
    # every other pair of frames swapped: the ball covers its path but jumps back and forth
    order = np.arange(len(world.video)).reshape(-1, 1)[: len(world.video) // 4 * 4]
    order = order.reshape(-1, 4)[:, [0, 2, 1, 3]].ravel()
    jump = motion(np.concatenate([world.video[order], world.video[len(order):]]))
    assert real == 1.0 and hover == 0.0, (real, hover)  # smooth, no travel
    assert jump == 0.0, jump  # full travel, no smoothness
    talk = make_clip(3)
    assert REWARDS["motion"](GeneratedClip(talk.video, talk.audio, 24.0, 16000, talk.caption)) == 1.0
    still_face = np.repeat(talk.video[:1], len(talk.video), 0)
    assert REWARDS["motion"](GeneratedClip(still_face, talk.audio, 24.0, 16000, talk.caption)) == 0.0


def test_world_rewards_refuse_other_prompts():
    with pytest.raises(ConfigError, match="synthetic-world captions only"):
        REWARDS["video_adherence"](_clip(np.zeros((8, 32, 32, 3)), np.zeros(16000), "a cat"))
