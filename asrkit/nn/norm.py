"""Normalization layers: LayerNorm, BatchNorm1d, BatchNorm2d (torch.nn signatures,
parameter and buffer names, defaults and train/eval behaviour) and UtteranceNorm
(per-utterance normalization over time; no parameters, no torch twin)."""
from __future__ import annotations

import torch
import torch.nn.functional as TF

from asrkit.nn import init
from asrkit.nn.functional import norm as N
from asrkit.nn.module import Module


class LayerNorm(Module):
    """Normalizes over the trailing ``normalized_shape`` dims: ``(*, *normalized_shape)``.

    Parameters ``weight`` (ones) and ``bias`` (zeros) of shape ``normalized_shape``
    when ``elementwise_affine``.
    """

    def __init__(self, normalized_shape: int | tuple[int, ...] | list[int] | torch.Size,
                 eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 *, impl: str = "scratch") -> None:
        super().__init__(impl)
        fk = {"device": device, "dtype": dtype}
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = torch.nn.Parameter(torch.empty(self.normalized_shape, **fk))
            if bias:
                self.bias = torch.nn.Parameter(torch.empty(self.normalized_shape, **fk))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.elementwise_affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native:
            return TF.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return N.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, " + super().extra_repr())


class _BatchNorm(Module):
    """Per-channel normalization of ``(N, C, *)`` with batch statistics in training
    and running statistics (updated with ``momentum``, unbiased variance) in eval.
    ``momentum=None`` uses a cumulative moving average, as torch."""

    _version = 2
    _dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 *, bias: bool = True, impl: str = "scratch") -> None:
        super().__init__(impl)
        fk = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = torch.nn.Parameter(torch.empty(num_features, **fk))
            if bias:
                self.bias = torch.nn.Parameter(torch.empty(num_features, **fk))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **fk))
            self.register_buffer("running_var", torch.ones(num_features, **fk))
            self.register_buffer("num_batches_tracked", torch.tensor(
                0, dtype=torch.long, **{k: v for k, v in fk.items() if k != "dtype"}))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in self._dims:
            want = " or ".join(f"{d}D" for d in self._dims)
            raise ValueError(f"expected {want} input (got {x.dim()}D input)")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        # as torch: checkpoints from before num_batches_tracked existed load with 0
        version = local_metadata.get("version", None)
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in state_dict:
            state_dict[key] = torch.tensor(0, dtype=torch.long)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        use_running = not self.training or self.track_running_stats
        rm = self.running_mean if use_running else None
        rv = self.running_var if use_running else None
        if self.native:
            return TF.batch_norm(x, rm, rv, self.weight, self.bias, bn_training, factor, self.eps)
        return N.batch_norm(x, rm, rv, self.weight, self.bias, bn_training, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}, " + super().extra_repr())


class BatchNorm1d(_BatchNorm):
    """Batch norm over ``(N, C)`` or ``(N, C, L)``."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over ``(N, C, H, W)``."""

    _dims = (4,)


class UtteranceNorm(Module):
    """Per utterance and feature: mean 0, variance 1 over the utterance's own frames.

    ``forward(x (B, T, D), lengths (B,)) -> (B, T, D)``; frames past each length
    come out zero, so an utterance gives the same result alone or padded in a
    batch. No parameters. torch has no such layer: ``impl="native"`` runs the
    same formula with torch ops (autograd), scratch the hand-written kernel
    :func:`asrkit.nn.functional.norm.utterance_norm`.
    """

    def __init__(self, eps: float = 1e-5, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.eps = eps

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.native:
            return N.utterance_norm(x, lengths, self.eps)
        keep = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).to(x.dtype)
        keep = keep.unsqueeze(-1)  # (B, T, 1)
        n = keep.sum(1, keepdim=True).clamp_min(1.0)  # (B, 1, 1)
        mean = (x * keep).sum(1, keepdim=True) / n  # (B, 1, D)
        centred = (x - mean) * keep  # (B, T, D)
        var = (centred * centred).sum(1, keepdim=True) / n  # (B, 1, D)
        return centred * torch.rsqrt(var + self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, " + super().extra_repr()
