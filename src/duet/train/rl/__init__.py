"""RL fine-tuning of joint models: OmniNFT on top of DiffusionNFT.

    from duet.train.rl import RLConfig, train_rl
    bundle_dir = train_rl(RLConfig.from_file("rl.json"))

Pieces, one module each: `rollout` (sampling with the project's sampler), `generated` (the
clip a reward sees), `rewards` (the registry, with the synthetic world's rewards from
`world_rewards`), `advantages` (group normalisation, modality-wise routing), `loss`
(DiffusionNFT), `surgery` (layer-wise gradient surgery), `reweight` (region-wise loss
weights), `policy` (old and reference policies), `trainer` (the loop). See docs/rl.md.
"""

from duet.train.rl.config import RLConfig
from duet.train.rl.generated import GeneratedClip
from duet.train.rl.rewards import REWARDS, Reward, get_reward, register_reward
from duet.train.rl.trainer import main, train_rl

__all__ = ["REWARDS", "GeneratedClip", "RLConfig", "Reward", "get_reward", "main",
           "register_reward", "train_rl"]
