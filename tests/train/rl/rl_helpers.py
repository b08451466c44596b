"""Tiny twin models (symmetric and bridged) and inputs for the RL tests (imported by name)."""

from __future__ import annotations

import torch

from duet.config import BridgeConfig, TowerConfig, TwinConfig
from duet.model import ModalityInput, TwinModel


def tiny_twin(bridge: bool = False, layers: int = 4, seed: int = 0) -> TwinModel:
    """4 blocks per tower (symmetric), or a 4-block video and 2-block audio tower bridged
    before video blocks 0..3; bridge output projections randomised (as if trained)."""
    common = dict(ffn_dim=32, text_len=6, text_dim=8, freq_dim=16, num_heads=2)
    if bridge:
        video = TowerConfig("video", dim=32, num_layers=layers, in_dim=4, out_dim=4,
                            cross_modal=False, **common)
        audio = TowerConfig("audio", dim=16, num_layers=2, in_dim=5, out_dim=5, patch_size=(1,),
                            cross_modal=False, **common)
        cfg = TwinConfig(video, audio, BridgeConfig(layers=tuple(range(layers)), video_rate=6.0,
                                                    audio_rate=12.0, dim=16, num_heads=2))
    else:
        video = TowerConfig("video", dim=32, num_layers=layers, in_dim=4, out_dim=4, **common)
        audio = TowerConfig("audio", dim=32, num_layers=layers, in_dim=5, out_dim=5,
                            patch_size=(1,), rope_time_scale=0.5, **common)
        cfg = TwinConfig(video, audio)
    torch.manual_seed(seed)
    model = TwinModel(cfg)
    if bridge:
        for p in model.bridge.parameters():
            torch.nn.init.normal_(p, std=0.2)
    return model


def tiny_inputs(b: int = 2, seed: int = 0) -> tuple[ModalityInput, ModalityInput]:
    g = torch.Generator().manual_seed(seed)
    t = torch.tensor([900.0, 300.0])[:b]
    v = ModalityInput(torch.randn(b, 4, 3, 4, 4, generator=g), t, torch.randn(b, 4, 8, generator=g))
    a = ModalityInput(torch.randn(b, 6, 5, generator=g), t, torch.randn(b, 4, 8, generator=g))
    return v, a
