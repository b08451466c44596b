"""The temporal-locality prior: a video tower's self-attention starts on its own latent
frame, only the reserved channels change, and bad settings fail with the fix."""

from __future__ import annotations

import pytest
import torch

from duet.config import TowerConfig, TwinConfig
from duet.errors import ConfigError
from duet.model import ModalityInput, TwinModel
from duet.model.alignment import alignment_channels, module_inputs
from duet.model.attention import attention_weights
from duet.model.locality import with_locality_prior
from duet.model.rope import apply_rope
from duet.train.config import TrainConfig
from duet.train.setup import _with_prior

FRAMES, TOKENS_PER_FRAME = 12, 4  # 4x4 latent, 2x2 patches


def _cfg() -> TwinConfig:
    common = dict(dim=64, ffn_dim=64, num_heads=2, num_layers=2, text_len=6, text_dim=8, freq_dim=16)
    return TwinConfig(TowerConfig("video", in_dim=4, out_dim=4, patch_size=(1, 2, 2), **common),
                      TowerConfig("audio", in_dim=5, out_dim=5, patch_size=(1,), rope_time_scale=0.768,
                                  **common))


@torch.no_grad()
def _own_frame_mass(model: TwinModel) -> list[float]:
    """Per video block: the mean share of a token's self-attention on its own latent frame."""
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([900.0])
    video = ModalityInput(torch.randn(1, 4, FRAMES, 4, 4, generator=g), t, torch.randn(1, 6, 8, generator=g))
    audio = ModalityInput(torch.randn(1, 16, 5, generator=g), t, torch.randn(1, 6, 8, generator=g))
    attns = [block.self_attn for block in model.video_model.blocks]
    return [_mass(sa, *args[:2]) for sa, args in zip(attns, module_inputs(model, attns, video, audio), strict=True)]


@torch.no_grad()
def _mass(sa: torch.nn.Module, x: torch.Tensor, rope: tuple) -> float:
    frame = torch.arange(FRAMES * TOKENS_PER_FRAME) // TOKENS_PER_FRAME
    own = (frame[:, None] == frame[None, :]).float()
    q = apply_rope(sa.norm_q(sa.q(x)).unflatten(-1, (sa.heads, -1)), rope)
    k = apply_rope(sa.norm_k(sa.k(x)).unflatten(-1, (sa.heads, -1)), rope)
    return float((attention_weights(q, k) * own).sum(-1).mean())


def test_prior_makes_video_tokens_attend_to_their_own_frame():
    cfg = _cfg()
    torch.manual_seed(0)
    model = TwinModel(cfg).eval()
    before = _own_frame_mass(model)
    assert all(m < 2 / FRAMES for m in before)  # about uniform over the 12 frames
    model.load_state_dict(with_locality_prior(model.state_dict(), cfg, 5.0))
    after = _own_frame_mass(model)
    assert all(m > 0.5 for m in after), after


def test_only_the_reserved_self_attention_channels_change():
    cfg = _cfg()
    torch.manual_seed(0)
    state = TwinModel(cfg).state_dict()
    before = {k: v.clone() for k, v in state.items()}
    out = with_locality_prior(state, cfg, 5.0, pairs=2)
    assert all(torch.equal(state[k], before[k]) for k in state)  # the input is left alone
    first, second = alignment_channels(32, 2, 2)
    both = torch.cat([first, second])
    changed = {k for k in out if not torch.equal(out[k], before[k])}
    assert changed == {f"video_model.blocks.{i}.self_attn.{name}" for i in range(2)
                       for name in ("q.weight", "q.bias", "k.weight", "k.bias",
                                    "norm_q.weight", "norm_k.weight")}
    p = "video_model.blocks.1.self_attn."
    assert torch.equal(out[p + "q.bias"][first], torch.ones(4))
    assert torch.equal(out[p + "k.bias"][second], torch.zeros(4))
    assert torch.equal(out[p + "norm_k.weight"][both], torch.full((8,), 5.0))
    assert float(out[p + "k.weight"][both].abs().sum()) == 0.0
    rest = torch.ones(64, dtype=torch.bool)
    rest[both] = False
    assert torch.equal(out[p + "q.weight"][rest], before[p + "q.weight"][rest])


def test_train_config_sets_the_prior_and_rejects_bad_settings():
    model = {"dim": 64, "ffn_dim": 64, "num_heads": 2, "num_layers": 2}
    cfg = TrainConfig(preset="tiny", model=model, video_locality_prior=5.0)
    torch.manual_seed(0)
    state = TwinModel(cfg.twin()).state_dict()
    out = _with_prior(state, cfg)
    first, _ = alignment_channels(cfg.twin().video.head_dim, 2, 4)
    assert torch.equal(out["video_model.blocks.0.self_attn.norm_q.weight"][first], torch.full((8,), 5.0))
    assert _with_prior(state, TrainConfig(preset="tiny", model=model)) is state
    with pytest.raises(ConfigError, match="video_locality_prior must be >= 0"):
        TrainConfig(preset="tiny", model=model, video_locality_prior=-1.0)
    with pytest.raises(ConfigError, match=r"video_locality_pairs must be in 1\.\.6"):
        TrainConfig(preset="tiny", model=model, video_locality_prior=5.0, video_locality_pairs=7)
