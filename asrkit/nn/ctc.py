"""``CTCLoss``: torch.nn.CTCLoss's signature and semantics, scratch or native."""
from __future__ import annotations

import torch.nn.functional as TF
from torch import Tensor

from asrkit.nn.functional import ctc as _C
from asrkit.nn.module import Module

__all__ = ["CTCLoss"]


class CTCLoss(Module):
    """Connectionist Temporal Classification loss.

    ``forward(log_probs (T, B, C), targets (B, U) or (sum U_b,), input_lengths (B,),
    target_lengths (B,))``. ``log_probs`` are log-softmax outputs, as for
    ``torch.nn.CTCLoss``; ``reduction="mean"`` divides each loss by its target
    length, then averages. ``zero_infinity=True`` zeroes the loss and gradient
    of impossible alignments. The scratch path is
    :func:`asrkit.nn.functional.ctc.ctc_loss` (log-space alpha/beta over the
    whole batch, gradient written out); native calls ``F.ctc_loss``.
    """

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False,
                 *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"{reduction} is not a valid value for reduction")
        self.blank = blank
        self.reduction = reduction
        self.zero_infinity = zero_infinity

    def forward(self, log_probs: Tensor, targets: Tensor, input_lengths, target_lengths) -> Tensor:
        if self.native:
            return TF.ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank,
                               self.reduction, self.zero_infinity)
        return _C.ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank,
                           self.reduction, self.zero_infinity)

    def extra_repr(self) -> str:
        return (f"blank={self.blank}, reduction={self.reduction!r}, zero_infinity={self.zero_infinity}, "
                + super().extra_repr())
