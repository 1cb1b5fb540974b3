"""asrkit.nn.optim: SGD, Adam, AdamW with hand-written update rules, and LR schedulers.

The optimizers subclass ``torch.optim.Optimizer`` (param groups, ``zero_grad``,
``state_dict`` with torch's state names), so torch's schedulers drive them and
a checkpoint moves between them and ``torch.optim``. The schedulers here work
with any ``torch.optim.Optimizer``.
"""
from __future__ import annotations

from asrkit.nn.optim.optimizers import SGD, Adam, AdamW
from asrkit.nn.optim.schedulers import (
    CosineAnnealingLR, LinearWarmupCosine, LRScheduler, Noam, ReduceLROnPlateau, StepLR,
)

__all__ = ["SGD", "Adam", "AdamW", "LRScheduler", "StepLR", "CosineAnnealingLR",
           "LinearWarmupCosine", "ReduceLROnPlateau", "Noam"]
