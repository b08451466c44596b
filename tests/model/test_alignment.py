"""The temporal-alignment prior: cross-modal attention starts local on the shared time axis
(and misaligned without Ovi's RoPE scaling), text attention ignores the reserved channels,
the input state is left alone, and bad settings fail with the fix."""

from __future__ import annotations

import pytest
import torch

from duet.config import TowerConfig, TwinConfig
from duet.presets import get_preset
from duet.errors import ConfigError
from duet.model import ModalityInput, TwinModel
from duet.model.alignment import (alignment_channels, audio_to_video_attention, mass_near_aligned,
                                  with_alignment_prior)
from duet.train.config import TrainConfig

SCALE = 0.768  # the demo's video latent frames per audio latent

def _cfg(scale: float = SCALE) -> TwinConfig:
    common = dict(dim=64, ffn_dim=64, num_heads=2, num_layers=2, text_len=6, text_dim=8, freq_dim=16)
    return TwinConfig(TowerConfig("video", in_dim=4, out_dim=4, patch_size=(1, 2, 2), **common),
                      TowerConfig("audio", in_dim=5, out_dim=5, patch_size=(1,),
                                  rope_time_scale=scale, **common))

def _inputs(seed: int = 0) -> tuple[ModalityInput, ModalityInput]:
    g = torch.Generator().manual_seed(seed)
    t = torch.tensor([700.0, 300.0])
    video = ModalityInput(torch.randn(2, 4, 24, 4, 4, generator=g), t, torch.randn(2, 6, 8, generator=g))
    audio = ModalityInput(torch.randn(2, 31, 5, generator=g), t, torch.randn(2, 6, 8, generator=g))
    return video, audio

def _model(cfg: TwinConfig, strength: float | None, seed: int = 0) -> TwinModel:
    torch.manual_seed(seed)
    model = TwinModel(cfg).eval()
    if strength is not None:
        model.load_state_dict(with_alignment_prior(model.state_dict(), cfg, strength))
    return model

def test_prior_makes_audio_attend_to_the_video_frames_at_its_instant():
    cfg = _cfg()
    video, audio = _inputs()
    tokens_per_frame = 4  # 4x4 latent, 2x2 patches
    for strength, low, high in ((None, 0.0, 0.2), (4.0, 0.75, 1.0)):
        maps = audio_to_video_attention(_model(cfg, strength), video, audio)
        assert len(maps) == 2 and maps[0].shape == (2, 2, 31, 24 * 4)
        for w in maps:
            assert low <= mass_near_aligned(w, SCALE, tokens_per_frame) <= high
    # the peak follows Ovi's scaled axis: audio token l looks at video frame ~0.768 l
    w = audio_to_video_attention(_model(cfg, 4.0), video, audio)[0]
    per_frame = w.mean((0, 1)).unflatten(-1, (24, tokens_per_frame)).sum(-1)  # [31, 24]
    peak = per_frame.argmax(-1).float()
    assert (peak - torch.arange(31) * SCALE).abs().max() <= 1.0

def test_without_rope_scaling_the_prior_aligns_the_wrong_instants():
    """An unscaled audio axis (scale 1) pairs audio latent l with video frame l: the late
    audio tokens look at frames that do not happen at their instant."""
    cfg = _cfg(scale=1.0)
    video, audio = _inputs()
    w = audio_to_video_attention(_model(cfg, 4.0), video, audio)[0]
    assert mass_near_aligned(w, SCALE, 4) < 0.5
    assert mass_near_aligned(w, 1.0, 4) > 0.75

def test_text_attention_ignores_the_reserved_channels_and_the_input_is_untouched():
    cfg = _cfg()
    torch.manual_seed(0)
    state = TwinModel(cfg).state_dict()
    before = {k: v.clone() for k, v in state.items()}
    out = with_alignment_prior(state, cfg, 5.0, pairs=2)
    assert all(torch.equal(state[k], before[k]) for k in state)
    first, second = alignment_channels(32, 2, 2)
    assert first.tolist() == [0, 2, 32, 34] and second.tolist() == [1, 3, 33, 35]
    for tower in ("video", "audio"):
        p = f"{tower}_model.blocks.1.cross_attn."
        assert torch.equal(out[p + "norm_k.weight"][first], torch.zeros(4))
        assert torch.equal(out[p + "norm_q.weight"][first], torch.full((4,), 5.0))
        assert torch.equal(out[p + "k_fusion.bias"][first], torch.ones(4))
        assert float(out[p + "q.weight"][torch.cat([first, second])].abs().sum()) == 0.0
        # the self-attention and every other channel keep their weights
        assert torch.equal(out[p.replace("cross", "self") + "q.weight"], before[p.replace("cross", "self") + "q.weight"])
        assert torch.equal(out[p + "q.weight"][4:32], before[p + "q.weight"][4:32])

def test_bad_settings_name_the_fix():
    cfg = _cfg()
    state = TwinModel(cfg).state_dict()
    with pytest.raises(ConfigError, match=r"alignment pairs must be in 1..6 \(a head of 32"):
        with_alignment_prior(state, cfg, 4.0, pairs=7)
    with pytest.raises(ConfigError, match="alignment strength must be > 0"):
        with_alignment_prior(state, cfg, 0.0)
    with pytest.raises(ConfigError, match="alignment_prior must be >= 0"):
        TrainConfig(preset="demo", alignment_prior=-1.0)
    with pytest.raises(ConfigError, match="alignment pairs must be in 1..12"):
        TrainConfig(preset="demo", alignment_prior=4.0, alignment_pairs=13)
    with pytest.raises(ConfigError, match="a bridged model aligns through its bridge RoPE"):
        TrainConfig(preset="demo-bridge", alignment_prior=4.0)
    with pytest.raises(ConfigError, match="cross_modal = false"):
        TrainConfig(preset="demo", model={"cross_modal": False}, alignment_prior=4.0)
    bridged = get_preset("demo-bridge").model
    with pytest.raises(ConfigError, match="symmetric fusion"):
        with_alignment_prior({}, bridged, 4.0)

