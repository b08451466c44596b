"""The audio -> video attention probe: outputs unchanged, maps that are the attention."""

from __future__ import annotations

import pytest
import torch

from duet.config import BridgeConfig, TowerConfig, TwinConfig
from duet.model import ModalityInput, TwinModel
from duet.model.attention import attention, key_mask
from duet.model.probe import AudioToVideoAttention
from duet.model.rope import apply_rope
from duet.model.state import CrossModalSource


def _model(bridge: bool) -> TwinModel:
    common = dict(ffn_dim=32, text_len=6, text_dim=8, freq_dim=16, num_heads=2, num_layers=3)
    if bridge:
        video = TowerConfig("video", dim=32, in_dim=4, out_dim=4, cross_modal=False, **common)
        audio = TowerConfig("audio", dim=16, in_dim=5, out_dim=5, patch_size=(1,),
                            cross_modal=False, **common)
        cfg = TwinConfig(video, audio, BridgeConfig(layers=(0, 2), video_rate=6.0, audio_rate=12.0,
                                                    dim=16, num_heads=2))
    else:
        cfg = TwinConfig(TowerConfig("video", dim=32, in_dim=4, out_dim=4, **common),
                         TowerConfig("audio", dim=32, in_dim=5, out_dim=5, patch_size=(1,),
                                     rope_time_scale=0.5, **common))
    torch.manual_seed(0)
    model = TwinModel(cfg).eval()
    if bridge:
        for p in model.bridge.parameters():
            torch.nn.init.normal_(p, std=0.2)
    return model


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    t = torch.tensor([800.0, 200.0])
    v = ModalityInput(torch.randn(2, 4, 3, 4, 4, generator=g), t, torch.randn(2, 4, 8, generator=g))
    a = ModalityInput(torch.randn(2, 6, 5, generator=g), t, torch.randn(2, 4, 8, generator=g))
    return v, a


@pytest.mark.parametrize("bridge", [False, True], ids=["ovi", "bridge"])
@torch.no_grad()
def test_outputs_unchanged_and_maps_are_distributions(bridge):
    model = _model(bridge)
    v, a = _inputs()
    plain = model(v, a)
    with AudioToVideoAttention(model) as probe:
        probed = model(v, a)
        model(*_inputs(seed=1))  # a second call: the probe keeps the first one's maps
    assert all(torch.equal(x, y) for x, y in zip(plain, probed))
    maps = probe.take()
    assert maps.shape == (2, 6, 3 * 2 * 2)  # (B, audio tokens, video tokens)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 6))
    with AudioToVideoAttention(model) as again:
        model(v, a)
    torch.testing.assert_close(again.take(), maps)
    assert probe.take() is None  # taken: empty until the next call
    assert not any(m._forward_hooks for m in probe.modules)  # hooks removed on exit


@torch.no_grad()
def test_unfused_passes_record_nothing():
    model = _model(False)
    with AudioToVideoAttention(model) as probe:
        model(*_inputs(), cross_modal=False)
    assert probe.take() is None


@torch.no_grad()
def test_cross_modal_weights_are_the_fused_attention():
    """weights @ values reproduces the cross-modal branch of `attention`, with a key mask."""
    model = _model(False)
    ca = model.video_model.blocks[1].cross_attn
    g = torch.Generator().manual_seed(3)
    x, other_x = torch.randn(2, 12, 32, generator=g), torch.randn(2, 6, 32, generator=g)
    rope_x = model.video_model.rope((3, 2, 2), x.device)
    rope_o = model.audio_model.rope((6,), x.device)
    other = CrossModalSource(other_x, rope_o, key_mask(torch.tensor([6, 4]), 6))
    w = ca.cross_modal_weights(x, rope_x, other)  # (B, H, 12, 6)
    assert torch.all(w[1, :, :, 4:] == 0)  # masked keys get no weight
    q = ca.norm_q(ca.q(x)).unflatten(-1, (2, -1))
    k, vals = ca.fusion_keys(other)
    want = attention(apply_rope(q, rope_x), apply_rope(k, rope_o), vals, other.mask)
    got = (w @ vals.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_bridge_weights_are_its_attention():
    model = _model(True)
    layer = model.bridge.layers[0].to_audio
    g = torch.Generator().manual_seed(4)
    a, v = torch.randn(2, 6, 16, generator=g), torch.randn(2, 12, 32, generator=g)
    rope_v, rope_a = model.bridge.ropes((3, 2, 2), 1, 6, a.device)
    w = layer.weights(a, v, rope_a, rope_v, None)
    _, _, vals = layer._project(a, v)
    out = (w @ vals.transpose(1, 2)).transpose(1, 2).flatten(2)  # what `o` projects
    torch.testing.assert_close(layer.o(out), layer(a, v, rope_a, rope_v, None),
                               rtol=1e-5, atol=1e-6)
