"""MOVA-style bridge towers: config checks, a new bridge is the identity, the exchange,
per-item gating and skipping, the shared time axis (training: tests/train/test_bridge_training.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from duet.config import BridgeConfig, TowerConfig, TwinConfig
from duet.errors import ConfigError, InputError
from duet.model import ModalityInput, TwinModel
from duet.model.bridge import bridge_positions, time_rope
from duet.presets import get_preset


def _cfg(layers=(0, 2), rope="aligned") -> TwinConfig:
    common = dict(ffn_dim=32, text_len=6, text_dim=8, freq_dim=16, cross_modal=False)
    video = TowerConfig("video", dim=32, num_heads=2, num_layers=3, in_dim=4, out_dim=4, **common)
    audio = TowerConfig("audio", dim=16, num_heads=2, num_layers=2, in_dim=5, out_dim=5,
                        patch_size=(1,), **common)
    return TwinConfig(video, audio, BridgeConfig(layers=layers, video_rate=6.0, audio_rate=12.0,
                                                 dim=16, num_heads=2, rope=rope))


def _inputs(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.tensor([900.0, 400.0, 50.0])[:b]
    v = ModalityInput(torch.randn(b, 4, 3, 4, 4, generator=g), t, torch.randn(b, 4, 8, generator=g))
    a = ModalityInput(torch.randn(b, 6, 5, generator=g), t, torch.randn(b, 4, 8, generator=g))
    return v, a


def _trained(cfg=None, seed=0) -> TwinModel:
    torch.manual_seed(seed)
    model = TwinModel(cfg or _cfg()).eval()
    for p in model.bridge.parameters():  # as if trained: the output projections leave zero
        torch.nn.init.normal_(p, std=0.2)
    return model


def test_config_errors_name_the_fix():
    cfg = _cfg()
    with pytest.raises(ConfigError, match=r"bridge layers \[3\] out of range: the video tower has blocks 0..2"):
        TwinConfig(cfg.video, cfg.audio, dataclasses.replace(cfg.bridge, layers=(0, 3)))
    with pytest.raises(ConfigError, match="set cross_modal = false"):
        TwinConfig(dataclasses.replace(cfg.video, cross_modal=True), cfg.audio, cfg.bridge)
    with pytest.raises(ConfigError, match="towers of different shape need a bridge"):
        TwinConfig(cfg.video, cfg.audio)
    with pytest.raises(ConfigError, match="rope must be 'aligned' or 'seconds'"):
        BridgeConfig(layers=(0,), video_rate=1, audio_rate=1, rope="scaled")


def test_a_new_bridge_is_the_identity_and_a_trained_one_exchanges():
    torch.manual_seed(0)
    model = TwinModel(_cfg()).eval()
    v, a = _inputs()
    with torch.no_grad():
        fused = model(v, a)
        alone = model(v, a, cross_modal=False)
    assert fused[0].shape == (3, 4, 3, 4, 4) and fused[1].shape == (3, 6, 5)
    assert all(torch.equal(x, y) for x, y in zip(fused, alone))  # zero-initialised outputs
    model = _trained()
    with torch.no_grad():
        fused, alone = model(v, a), model(v, a, cross_modal=False)
        # each modality now depends on the other one
        a2 = ModalityInput(a.latent + 1.0, a.timestep, a.context)
        moved = model(v, a2)
    assert all((x - y).abs().max() > 1e-3 for x, y in zip(fused, alone))
    assert (moved[0] - fused[0]).abs().max() > 1e-3


def test_per_item_gate_and_skips_equal_separate_calls():
    model = _trained()
    v, a = _inputs()
    gate = torch.tensor([True, False, True])
    skip = torch.tensor([False, True, False])
    with torch.no_grad():
        mixed = model(v, a, cross_modal=gate, skip_blocks=(1,), skip_items=skip)
        fused = model(v, a)
        alone_skip = model(v, a, cross_modal=False, skip_blocks=(1,))
    for m in range(2):
        torch.testing.assert_close(mixed[m][[0, 2]], fused[m][[0, 2]], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(mixed[m][1], alone_skip[m][1], rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match=r"skip_blocks \[2\] out of range"):
        model(v, a, skip_blocks=(2,))  # block 2 exists in the video tower only


@pytest.mark.parametrize("rope", ["aligned", "seconds"])
def test_shared_time_axis(rope):
    cfg = _cfg(rope=rope).bridge  # video 6 latents/s, audio 12/s: video frame f = audio 2f
    pv, pa = bridge_positions(cfg, video_frames=3, frame_tokens=2, patch_t=1, audio_len=6)
    want_v = torch.tensor([0.0, 0, 2, 2, 4, 4], dtype=torch.float64)
    want_a = torch.arange(6, dtype=torch.float64)
    if rope == "seconds":
        want_v, want_a = want_v / 12.0, want_a / 12.0
    assert torch.equal(pv, want_v) and torch.equal(pa, want_a)
    # the same instant gets the same rotation in both modalities
    cv, _ = time_rope(pv, 8)
    ca, _ = time_rope(pa, 8)
    torch.testing.assert_close(cv[2], ca[2])


def test_demo_bridge_preset_and_lora_targets():
    from duet.lora import LoraSpec, add_lora

    cfg = get_preset("demo-bridge").model
    assert cfg.audio.dim == cfg.video.dim // 2 and cfg.audio.num_layers < cfg.video.num_layers
    model = TwinModel.from_config(cfg, device="meta")
    assert {n.split(".")[0] for n, _ in model.named_parameters()} == {"video_model", "audio_model", "bridge"}
    assert model.bridge.audio_block_before(2) == 1
    n = add_lora(TwinModel(_cfg()), LoraSpec(rank=2, targets=("fusion",)))
    assert n == 2 * 2 * 4  # 2 layers x 2 directions x q, k, v, o
