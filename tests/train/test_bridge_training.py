"""A bridged (MOVA) model trains with the existing trainer: fusion stage, bridge layers train."""

from __future__ import annotations

import pytest
import torch

from duet.errors import ConfigError
from duet.train import BatchPlan, LatentDataset, TrainConfig, train
from duet.train.parallel import Runtime
from duet.train.setup import build_model, build_optimizer, initial_state
from duet.train.trainer import train_step
from duet.weights import load_weights
from train_helpers import TINY_MODEL, synthetic_tensors

# the tiny model with a half-width audio tower, joined by a bridge before both video blocks
BRIDGED = {**TINY_MODEL, "cross_modal": False, "audio": {**TINY_MODEL["audio"], "dim": 16},
           "bridge": {"layers": [0, 1], "dim": 16, "num_heads": 2}}


def _config(tmp_path, **changes) -> TrainConfig:
    base = dict(model=BRIDGED, stage="fusion", steps=6, batch_size=4, lr=3e-3, warmup_steps=2,
                progress=False, checkpoint_every=100, out_dir=str(tmp_path / "run"))
    return TrainConfig.from_dict({**base, **changes})


def test_fusion_stage_fits_a_fixed_batch_and_trains_the_bridge(tmp_path):
    cfg = _config(tmp_path)
    assert cfg.twin().bridge.layers == (0, 1) and cfg.twin().audio.dim == 16
    rt = Runtime(torch.device("cpu"))
    model, _ = build_model(cfg, rt, initial_state(cfg, rt))
    trains = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("bridge.") for n in trains) and not any(".ffn." in n for n in trains)
    dataset = LatentDataset(synthetic_tensors())
    opt = build_optimizer(model, cfg)
    plan = BatchPlan(len(dataset), cfg.batch_size)
    losses = [train_step(model, opt, dataset, plan, 0, cfg.flow(), cfg, rt)["loss"] for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_exports_a_bundle_with_the_bridge(tmp_path):
    cfg = _config(tmp_path)
    train(cfg, dataset=LatentDataset(synthetic_tensors()))
    weights = load_weights(tmp_path / "run" / "final" / "model.safetensors")
    assert weights["bridge.layers.1.to_audio.o.weight"].abs().max() > 0  # left its zero init
    with pytest.raises(ConfigError, match=r"bridge layers \[5\] out of range"):
        _config(tmp_path, model={**BRIDGED, "bridge": {"layers": [0, 5]}})
    with pytest.raises(ConfigError, match="unknown model key bridge.'depth'"):
        _config(tmp_path, model={**BRIDGED, "bridge": {"layers": [0], "depth": 2}})
