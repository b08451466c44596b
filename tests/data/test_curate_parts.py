"""Curation building blocks that need no video file: captions, config, the sync estimate."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("cv2", reason="curation needs the test extra: pip install -e '.[test]'")

from duet.data.curate.avsync import estimate
from duet.data.curate.captions import CaptionError, caption_for, ovi_prompt
from duet.data.curate.config import CurateConfig
from duet.data.curate.filters import optical_flow, silent_fraction
from duet.data.curate.scenes import windows
from duet.data.world import make_clip
from duet.errors import ConfigError


def parts_caption(path: str, start: float, end: float) -> dict[str, str]:
    """A caption_callable for the test: returns Ovi's parts as a dict."""
    return {"visual": f"A clip from {start:.0f} s", "speech": "hello", "audio": "a calm voice"}


def test_caption_hooks_give_prompts_in_the_presets_format(tmp_path):
    video = tmp_path / "v.mp4"
    cmd = CurateConfig(caption_command="echo 'A dog barks. <AUDCAP>barking<ENDAUDCAP>'")
    assert caption_for(video, 0, 4, cmd, "audio_colon")[0] == "A dog barks. Audio: barking"
    sys.modules.setdefault("curate_parts_hook", sys.modules[__name__])
    call = CurateConfig(caption_callable="curate_parts_hook:parts_caption")
    text, prompt = caption_for(video, 2, 6, call, "audcap")
    assert text == "A clip from 2 s <S>hello<E>. <AUDCAP>a calm voice<ENDAUDCAP>"
    assert prompt is not None and prompt.speech == ("hello",)
    assert caption_for(video, 0, 4, CurateConfig(), "audcap") == ("", None)  # no sidecar
    video.with_suffix(".txt").write_text("Rain. <AUDCAP>rain<ENDAUDCAP>\n")
    assert caption_for(video, 0, 4, CurateConfig(), "audcap")[0] == "Rain. <AUDCAP>rain<ENDAUDCAP>"
    with pytest.raises(CaptionError, match="exited 3"):
        caption_for(video, 0, 4, CurateConfig(caption_command="exit 3"), "audcap")
    with pytest.raises(CaptionError, match="not a valid Ovi prompt"):
        caption_for(video, 0, 4, CurateConfig(caption_command="echo '<AUDCAP>x'"), "audcap")
    assert ovi_prompt("A cat", "", "purring") == "A cat <AUDCAP>purring<ENDAUDCAP>"


def test_config_refuses_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match=r"unknown curate config key\(s\) \['motion_mni'\]"):
        CurateConfig.from_dict({"motion_mni": 1})
    with pytest.raises(ConfigError, match="not both"):
        CurateConfig(caption_command="x", caption_callable="m:f")
    assert CurateConfig(workers=8).fingerprint() == CurateConfig().fingerprint()
    assert CurateConfig(motion_min=1).fingerprint() != CurateConfig().fingerprint()


@pytest.mark.parametrize("shift_s", [0.0, 0.3, -0.3])
def test_sync_estimate_finds_a_shifted_sound(shift_s):
    clip = make_clip(1)  # a bounce clip
    n = round(abs(shift_s) * 16000)
    zeros = np.zeros(n, np.float32)
    audio = (np.concatenate([zeros, clip.audio])[: len(clip.audio)] if shift_s > 0 else
             np.concatenate([clip.audio[n:], zeros]) if shift_s < 0 else clip.audio)
    est = estimate(optical_flow(clip.video, 128), audio, 16000, 24.0, 500.0)
    assert est.offset_ms == pytest.approx(1000 * shift_s, abs=45) and est.score > 0.3


def test_silence_and_windows():
    assert silent_fraction(np.zeros(16000, np.float32), 16000, -60) == 1.0
    assert windows((10, 300), 97, 4) == [(10, 107), (107, 204)]
    assert windows((0, 96), 97, 4) == []
