"""asrkit.train: configs, the training loop, checkpoints and DDP.

    from asrkit.train import load_config, train, average_checkpoints
    cfg = load_config("ctc", "conf/ctc_bilstm.yaml", ["optim.lr=1e-3", "train.epochs=10"])
    result = train(cfg, "feats/train", "feats/dev", "exp/ctc")      # TrainResult
    average_checkpoints("exp/ctc", last=3)                           # checkpoints/avg-last-3.pt
"""
from __future__ import annotations

from asrkit.train.checkpoint import average_checkpoints, load_checkpoint
from asrkit.train.config import defaults, load_config, parse_overrides, validate
from asrkit.train.trainer import TrainResult, check_config, train

__all__ = [
           "TrainResult",
           "average_checkpoints",
           "check_config",
           "defaults",
           "load_checkpoint",
           "load_config",
           "parse_overrides",
           "train",
           "validate",
]
