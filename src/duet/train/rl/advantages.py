"""Advantages from rewards: group normalisation and OmniNFT's modality-wise routing.

Each prompt is sampled G times (a group). A reward's advantage is its deviation from the
group's mean, divided by the std over the whole batch (DiffusionNFT's default, `global_std`)
or over the group: A = (r - mean_group(r)) / (std + 1e-4).

Routing (OmniNFT): a sample can have a good picture and a bad sound, so one pooled
advantage would push both towers the same way. Instead every reward is normalised on its
own, and each tower's advantage is the weighted mean of the advantages of the rewards that
judge it: video rewards and joint rewards (e.g. sync) for the video tower, audio and joint
rewards for the audio tower. Without routing (the ablation), the weighted sum of the raw
rewards is normalised once and both towers get it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from duet.errors import ConfigError, InputError

STD_EPS = 1e-4
FEEDS = {"video": ("video", "joint"), "audio": ("audio", "joint")}  # tower -> reward tags


def group_advantages(rewards: Tensor, groups: Tensor, global_std: bool = True) -> Tensor:
    """(r - group mean) / (std + 1e-4) for rewards [N] and group ids [N] (any integers)."""
    if rewards.shape != groups.shape or rewards.dim() != 1:
        raise InputError(f"rewards {tuple(rewards.shape)} and groups {tuple(groups.shape)} "
                         "must be the same 1-D shape")
    r = rewards.double()
    _, ids = torch.unique(groups, return_inverse=True)
    count = torch.zeros(int(ids.max()) + 1, dtype=r.dtype).index_add_(0, ids, torch.ones_like(r))
    mean = torch.zeros_like(count).index_add_(0, ids, r) / count
    dev = r - mean[ids]
    if global_std:
        std = r.std(unbiased=False)
    else:
        var = torch.zeros_like(count).index_add_(0, ids, dev.pow(2)) / count
        std = var.sqrt()[ids]
    return (dev / (std + STD_EPS)).float()


def tower_advantages(rewards: Mapping[str, Tensor], tags: Mapping[str, str],
                     weights: Mapping[str, float], groups: Tensor, routing: bool = True,
                     global_std: bool = True) -> dict[str, Tensor]:
    """{"video": A_v [N], "audio": A_a [N]} from rewards {name: [N]} tagged video/audio/joint.

    With routing each tower gets the weighted mean of its rewards' advantages (zero if no
    reward judges it, so the NFT loss only holds that tower near the old policy); without,
    both get the advantage of the weighted sum of all rewards.
    """
    if not rewards:
        raise ConfigError("RL needs at least one reward")
    if not routing:
        total = sum(weights[name] * r.double() for name, r in rewards.items())
        pooled = group_advantages(total, groups, global_std)  # type: ignore[arg-type]
        return {"video": pooled, "audio": pooled}
    per_reward = {name: group_advantages(r, groups, global_std) for name, r in rewards.items()}
    out = {}
    for tower, feeds in FEEDS.items():
        names = [n for n in rewards if tags[n] in feeds]
        total = sum(weights[n] for n in names)
        if not names or total == 0:
            out[tower] = torch.zeros(groups.shape[0])
            continue
        mixed = sum(weights[n] * per_reward[n] for n in names)
        out[tower] = mixed / total  # type: ignore[operator]
    return out
