"""Adaptive softmax (Grave et al. 2017): ``torch.nn.AdaptiveLogSoftmaxWithLoss``'s twin.

Constructor, attributes and parameter names are torch's (``head.weight`` [``head.bias``],
``tail.{i}.0.weight``, ``tail.{i}.1.weight``), so one state_dict loads in both. The scratch
path runs :mod:`asrkit.nn.functional.adaptive` (forward and backward by hand, the tails only
on the rows whose target is in their cluster); native runs ``torch.nn.AdaptiveLogSoftmaxWithLoss``'s
own methods on these weights.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from asrkit.nn.functional import adaptive as A
from asrkit.nn.linear import Linear
from asrkit.nn.module import Module

__all__ = ["ASMOutput", "AdaptiveLogSoftmaxWithLoss"]

_Torch = torch.nn.AdaptiveLogSoftmaxWithLoss


class ASMOutput(NamedTuple):
    """What ``forward`` returns (torch's ``_ASMoutput``): ``output (N,)`` the log-probabilities
    of the targets, ``loss ()`` their mean negative."""

    output: Tensor
    loss: Tensor


class AdaptiveLogSoftmaxWithLoss(Module):
    """Adaptive softmax over ``n_classes`` classes sorted by falling frequency.

    ``cutoffs`` (increasing, in ``1 .. n_classes - 1``) cut the classes into a shortlist
    ``0 .. cutoffs[0] - 1``, predicted by the head with one more logit per cluster, and the
    clusters ``cutoffs[i] .. cutoffs[i + 1] - 1`` (the last one up to ``n_classes - 1``), each
    predicted by a tail ``Linear(in_features, in_features // div_value^(i+1), bias=False)`` then
    ``Linear(that, cluster size, bias=False)``.

    * ``forward(input (N, d), target (N,))`` -> :class:`ASMOutput` ``(output (N,), loss ())``
      (also ``input (d,)``, ``target ()``);
    * ``log_prob(input (N, d))`` -> ``(N, n_classes)`` log-probabilities;
    * ``predict(input (N, d))`` -> ``(N,)`` the most likely class.

    Attributes as torch's: ``in_features``, ``n_classes``, ``cutoffs`` (the given ones plus
    ``n_classes``), ``div_value``, ``head_bias``, ``shortlist_size``, ``n_clusters``, ``head_size``.
    """

    def __init__(self, in_features: int, n_classes: int, cutoffs: Sequence[int], div_value: float = 4.0,
                 head_bias: bool = False, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        fk = {"device": device, "dtype": dtype}
        cutoffs = list(cutoffs)
        if len(cutoffs) == 0:
            raise ValueError("cutoffs should be a sequence of length larger than 0")
        if (cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 or max(cutoffs) > n_classes - 1
                or len(set(cutoffs)) != len(cutoffs) or any(int(c) != c for c in cutoffs)):
            raise ValueError("cutoffs should be a sequence of unique, positive integers sorted in an increasing "
                             "order, where each value is between 1 and n_classes-1")
        self.in_features = in_features
        self.n_classes = n_classes
        self.cutoffs = cutoffs + [n_classes]
        self.div_value = div_value
        self.head_bias = head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        self.head = Linear(in_features, self.head_size, bias=head_bias, impl=impl, **fk)
        self.tail = torch.nn.ModuleList()
        for i in range(self.n_clusters):
            hsz = int(in_features // (div_value ** (i + 1)))
            osz = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append(torch.nn.Sequential(Linear(in_features, hsz, bias=False, impl=impl, **fk),
                                                 Linear(hsz, osz, bias=False, impl=impl, **fk)))

    def reset_parameters(self) -> None:
        self.head.reset_parameters()
        for i2h, h2o in self.tail:  # type: ignore[misc]
            i2h.reset_parameters()
            h2o.reset_parameters()

    def _tail_weights(self) -> list[Tensor]:
        return [w for proj in self.tail for w in (proj[0].weight, proj[1].weight)]

    def forward(self, input: Tensor, target: Tensor) -> ASMOutput:
        if self.native:
            return ASMOutput(*_Torch.forward(self, input, target))  # type: ignore[arg-type]
        if target.dim() == 1:
            if input.size(0) != target.size(0):
                raise RuntimeError("Input and target should have the same size in the batch dimension.")
            if input.dim() != 2:
                raise RuntimeError(f"1D target tensor expects 2D input tensors, but found inputs with size "
                                   f"{input.size()}")
        elif target.dim() == 0:
            if input.dim() != 1:
                raise RuntimeError(f"0D target tensor expects 1D input tensors, but found inputs with size "
                                   f"{input.size()}")
        else:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        batched = target.dim() > 0
        x, t = (input, target) if batched else (input.unsqueeze(0), target.unsqueeze(0))
        out, loss = A.adaptive_log_softmax(x, t, self.head.weight, self.head.bias, self.cutoffs,
                                           self._tail_weights())
        return ASMOutput(out if batched else out.squeeze(0), loss)

    def _get_full_log_prob(self, input: Tensor, head_output: Tensor) -> Tensor:
        """torch's helper, which its ``forward`` / ``log_prob`` / ``predict`` call (native)."""
        return _Torch._get_full_log_prob(self, input, head_output)  # type: ignore[arg-type]

    def log_prob(self, input: Tensor) -> Tensor:
        """``input (N, in_features)`` -> ``(N, n_classes)`` log-probabilities of every class."""
        if self.native:
            return _Torch.log_prob(self, input)  # type: ignore[arg-type]
        return A.adaptive_log_prob(input, self.head.weight, self.head.bias, self.cutoffs, self._tail_weights())

    def predict(self, input: Tensor) -> Tensor:
        """``input (N, in_features)`` -> ``(N,)`` the class of highest probability
        (``log_prob(input).argmax(1)``, without the tails where the head's best is a shortlist class)."""
        if self.native:
            return _Torch.predict(self, input)  # type: ignore[arg-type]
        return A.adaptive_predict(input, self.head.weight, self.head.bias, self.cutoffs, self._tail_weights())

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, n_classes={self.n_classes}, cutoffs={self.cutoffs[:-1]}, "
                f"div_value={self.div_value}, head_bias={self.head_bias}, " + super().extra_repr())
