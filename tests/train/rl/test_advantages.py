"""Group-normalised advantages and OmniNFT's modality-wise routing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duet.errors import ConfigError
from duet.train.rl.advantages import group_advantages, tower_advantages

GROUPS = torch.tensor([0, 0, 0, 1, 1, 1])
R = torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0])


def test_group_mean_with_global_std():
    r = R.numpy()
    mean = np.array([3.0, 3.0, 3.0, 1.0, 1.0, 1.0])
    want = (r - mean) / (r.std() + 1e-4)  # numpy's std: the population std
    np.testing.assert_allclose(group_advantages(R, GROUPS).numpy(), want, rtol=1e-6)


def test_group_mean_with_group_std():
    r = R.numpy()
    want = np.concatenate([(g - g.mean()) / (g.std() + 1e-4) for g in (r[:3], r[3:])])
    np.testing.assert_allclose(group_advantages(R, GROUPS, global_std=False).numpy(), want,
                               rtol=1e-6)


def test_group_ids_need_not_be_contiguous():
    ids = torch.tensor([7, 3, 7, 3])
    got = group_advantages(torch.tensor([1.0, 5.0, 3.0, 1.0]), ids, global_std=False)
    assert got.tolist() == pytest.approx([-1.0, 1.0, 1.0, -1.0], abs=1e-3)


def _rewards():
    g = torch.Generator().manual_seed(0)
    return {name: torch.rand(6, generator=g) * scale
            for name, scale in (("v", 1.0), ("a", 10.0), ("sync", 0.1))}


TAGS = {"v": "video", "a": "audio", "sync": "joint"}


def test_routing_sends_each_reward_to_its_towers():
    r, w = _rewards(), {"v": 1.0, "a": 2.0, "sync": 3.0}
    got = tower_advantages(r, TAGS, w, GROUPS)
    norm = {k: group_advantages(x, GROUPS) for k, x in r.items()}
    torch.testing.assert_close(got["video"], (1 * norm["v"] + 3 * norm["sync"]) / 4)
    torch.testing.assert_close(got["audio"], (2 * norm["a"] + 3 * norm["sync"]) / 5)


def test_routing_ignores_the_other_towers_rewards():
    r = _rewards()
    base = tower_advantages(r, TAGS, {"v": 1.0, "a": 1.0, "sync": 1.0}, GROUPS)
    changed = tower_advantages({**r, "a": -r["a"]}, TAGS, {"v": 1.0, "a": 1.0, "sync": 1.0}, GROUPS)
    torch.testing.assert_close(changed["video"], base["video"])
    assert not torch.allclose(changed["audio"], base["audio"])


def test_a_tower_without_rewards_gets_zero():
    got = tower_advantages({"v": R}, {"v": "video"}, {"v": 1.0}, GROUPS)
    assert got["audio"].abs().max() == 0 and got["video"].abs().max() > 0


def test_routing_off_pools_the_raw_rewards():
    r, w = _rewards(), {"v": 1.0, "a": 2.0, "sync": 3.0}
    got = tower_advantages(r, TAGS, w, GROUPS, routing=False)
    want = group_advantages(r["v"] + 2 * r["a"] + 3 * r["sync"], GROUPS)
    torch.testing.assert_close(got["video"], want)
    torch.testing.assert_close(got["audio"], want)


def test_needs_a_reward():
    with pytest.raises(ConfigError, match="at least one reward"):
        tower_advantages({}, {}, {}, GROUPS)
