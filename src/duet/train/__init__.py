"""Training: flow-matching objectives, stages, and the (FSDP2) training loop.

    from duet.train import TrainConfig, train
    bundle_dir = train(TrainConfig.from_file("run.json"))
"""

from duet.train.config import TrainConfig
from duet.train.data import BatchPlan, LatentBatch, LatentDataset
from duet.train.objectives import FlowConfig, flow_matching_loss
from duet.train.parallel import parallelize
from duet.train.stages import STAGES, Stage, apply_stage, get_stage
from duet.train.trainer import main, train

__all__ = ["STAGES", "BatchPlan", "FlowConfig", "LatentBatch", "LatentDataset", "Stage",
           "TrainConfig", "apply_stage", "flow_matching_loss", "get_stage", "main", "parallelize",
           "train"]
