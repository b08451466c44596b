"""Training with the temporal-alignment prior (`alignment_prior`): the run starts from it,
and a resumed run keeps its checkpoint instead of setting the prior again."""

from __future__ import annotations

import torch

from duet.train.config import TrainConfig
from duet.train.parallel import Runtime
from duet.train.setup import initial_state
from duet.train.trainer import train
from duet.weights import BUNDLE_WEIGHTS, load_weights
from train_helpers import TINY_MODEL, write_shards


def test_a_training_run_starts_from_the_prior_and_a_resume_does_not_set_it_again(tmp_path):
    data = write_shards(tmp_path / "data")
    base = dict(preset="tiny", model=TINY_MODEL, data=(str(data),), batch_size=4, warmup_steps=0,
                progress=False, seed=3, checkpoint_every=1, ema_decay=0.0, alignment_pairs=1)
    rt = Runtime(torch.device("cpu"))
    plain = initial_state(TrainConfig(**base), rt)
    cfg = TrainConfig(**base, alignment_prior=3.0, steps=1, lr=0.0, out_dir=str(tmp_path / "a"))
    state = initial_state(cfg, rt)
    key = "audio_model.blocks.0.cross_attn.norm_k_fusion.weight"  # head dim 16: channels 0, 1, 16, 17
    assert state[key][[0, 1, 16, 17]].tolist() == [3.0] * 4 and state[key][2] == plain[key][2]
    assert torch.equal(state["audio_model.blocks.0.ffn.0.weight"], plain["audio_model.blocks.0.ffn.0.weight"])
    assert torch.equal(load_weights(train(cfg) / BUNDLE_WEIGHTS)[key], state[key])  # lr 0
    # a resumed run continues from its checkpoint; the prior is not set again over it
    trained = load_weights(train(TrainConfig(**base, alignment_prior=3.0, steps=1, lr=1e-2,
                                             out_dir=str(tmp_path / "b"))) / BUNDLE_WEIGHTS)
    assert not torch.equal(trained[key], state[key])
    resumed = load_weights(train(TrainConfig(**base, alignment_prior=3.0, steps=2, lr=0.0,
                                             out_dir=str(tmp_path / "b"))) / BUNDLE_WEIGHTS)
    assert torch.equal(resumed[key], trained[key])
