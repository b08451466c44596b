"""Inflating a video tower to a longer temporal patch (`duet.weights.inflate`): a token of k
equal frames then computes what one frame's token did, and a training run starts from it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from duet.config import TowerConfig
from duet.errors import ConfigError
from duet.model.state import ModalityInput
from duet.model.tower import Tower
from duet.train.config import TrainConfig
from duet.train.parallel import Runtime
from duet.train.setup import initial_state
from duet.train.trainer import train
from duet.weights import BUNDLE_WEIGHTS, load_weights
from duet.weights.inflate import inflate_temporal_patch, temporal_patch
from train_helpers import TINY_MODEL, write_shards

VIDEO = TowerConfig("video", dim=32, ffn_dim=64, num_heads=2, num_layers=2, in_dim=4, out_dim=4,
                    text_len=8, text_dim=16, patch_size=(1, 2, 2), prediction="sample")


def _inflated(old: Tower, patch_t: int) -> Tower:
    state = {f"video_model.{k}": v for k, v in old.state_dict().items()}
    state = inflate_temporal_patch(state, patch_t)
    new = Tower(dataclasses.replace(old.cfg, patch_size=(patch_t, *old.cfg.patch_size[1:]))).eval()
    new.load_state_dict({k.removeprefix("video_model."): v for k, v in state.items()})
    return new


@torch.no_grad()
@pytest.mark.parametrize("k", [2, 4])
def test_an_inflated_tower_predicts_a_slowed_clip_as_the_original_predicts_the_clip(k):
    """Every frame repeated k times (a clip in slow motion) through the inflated tower gives
    the original tower's prediction for the clip, each frame repeated k times."""
    torch.manual_seed(0)
    old = Tower(VIDEO).eval()
    new = _inflated(old, k)
    g = torch.Generator().manual_seed(1)
    latent, ctx = torch.randn(2, 4, 5, 4, 4, generator=g), torch.randn(2, 8, 16, generator=g)
    t = torch.tensor([700.0, 300.0])
    want = old(ModalityInput(latent, t, ctx)).repeat_interleave(k, dim=2)
    got = new(ModalityInput(latent.repeat_interleave(k, dim=2), t, ctx))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(want[:, :, ::k], want[:, :, 1::k].roll(1, dims=2))  # frames differ


def test_a_patch_that_does_not_divide_is_refused():
    torch.manual_seed(0)
    state = {f"video_model.{k}": v for k, v in Tower(dataclasses.replace(VIDEO, patch_size=(2, 2, 2))).state_dict().items()}
    assert temporal_patch(state) == 2
    assert inflate_temporal_patch(state, 2) is state
    with pytest.raises(ConfigError, match="does not divide this run's 3"):
        inflate_temporal_patch(state, 3)


def test_a_training_run_with_a_longer_patch_starts_from_the_inflated_bundle(tmp_path, caplog):
    data = write_shards(tmp_path / "data")
    base = dict(preset="tiny", data=(str(data),), batch_size=4, warmup_steps=0, progress=False,
                seed=3, ema_decay=0.0, steps=1, lr=0.0)
    bundle = train(TrainConfig(**base, model=TINY_MODEL, out_dir=str(tmp_path / "one")))
    two = {**TINY_MODEL, "video": {**TINY_MODEL["video"], "patch_size": [2, 2, 2]}}
    cfg = TrainConfig(**base, model=two, init_from=str(bundle), out_dir=str(tmp_path / "two"))
    with caplog.at_level("INFO", logger="duet"):
        state = initial_state(cfg, Runtime(torch.device("cpu")))
    assert "inflated from a temporal patch of 1 frames to 2" in caplog.text
    assert "another model config" not in caplog.text  # the patch is converted, not a mismatch
    source = initial_state(TrainConfig(**base, model=TINY_MODEL, init_from=str(bundle)),
                           Runtime(torch.device("cpu")))
    w = state["video_model.patch_embedding.weight"]
    assert w.shape[2] == 2 and torch.equal(w[:, :, 0], w[:, :, 1])
    torch.testing.assert_close(2 * w[:, :, :1], source["video_model.patch_embedding.weight"])
    assert torch.equal(state["video_model.blocks.0.ffn.0.weight"], source["video_model.blocks.0.ffn.0.weight"])
    assert temporal_patch(load_weights(train(cfg) / BUNDLE_WEIGHTS)) == 2  # and it trains
