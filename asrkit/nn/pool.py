"""Pooling and resampling layers: MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool2d (torch.nn signatures),
Upsample1d/2d and Downsample1d/2d (integer-factor zero insertion / decimation)."""
from __future__ import annotations

import torch
import torch.nn.functional as TF

from asrkit.nn.functional import pool as P
from asrkit.nn.functional import resample as R
from asrkit.nn.module import Module


class _MaxPoolNd(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}, " + super().extra_repr())


class MaxPool1d(_MaxPoolNd):
    """``(N, C, T) -> (N, C, T_out)`` window maxima (``return_indices`` adds the arg-max positions)."""

    def forward(self, x: torch.Tensor):
        f = TF.max_pool1d if self.native else P.max_pool1d
        return f(x, self.kernel_size, self.stride, self.padding, self.dilation,
                 ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class MaxPool2d(_MaxPoolNd):
    """``(N, C, H, W) -> (N, C, H_out, W_out)`` window maxima."""

    def forward(self, x: torch.Tensor):
        f = TF.max_pool2d if self.native else P.max_pool2d
        return f(x, self.kernel_size, self.stride, self.padding, self.dilation,
                 ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool1d(Module):
    """``(N, C, T) -> (N, C, T_out)`` window means."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = TF.avg_pool1d if self.native else P.avg_pool1d
        return f(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                + super().extra_repr())


class AvgPool2d(Module):
    """``(N, C, H, W) -> (N, C, H_out, W_out)`` window means."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None,
                 *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = TF.avg_pool2d if self.native else P.avg_pool2d
        return f(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                 self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                + super().extra_repr())


class AdaptiveAvgPool2d(Module):
    """``(N, C, H, W) -> (N, C, Ho, Wo)`` bin means; ``AdaptiveAvgPool2d(1)`` is global average pooling."""

    def __init__(self, output_size, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = TF.adaptive_avg_pool2d if self.native else P.adaptive_avg_pool2d
        return f(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, " + super().extra_repr()


def _native_upsample(x: torch.Tensor, k: int, dims: int) -> torch.Tensor:
    shape = list(x.shape)
    for d in range(1, dims + 1):
        shape[-d] = (shape[-d] - 1) * k + 1
    y = x.new_zeros(shape)
    y[(Ellipsis,) + (slice(None, None, k),) * dims] = x       # torch's autograd does the backward
    return y


class _Resample(Module):
    _dims = 1
    _up = True

    def __init__(self, factor: int, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"resampling factor must be a positive integer, got {factor!r}")
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native:   # plain torch indexing, differentiated by torch's autograd
            if self._up:
                return _native_upsample(x, self.factor, self._dims)
            return x[(Ellipsis,) + (slice(None, None, self.factor),) * self._dims]
        f = R.upsample if self._up else R.downsample
        return f(x, self.factor, self._dims)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, " + super().extra_repr()


class Upsample1d(_Resample):
    """Zero insertion along time: ``(N, C, W) -> (N, C, (W-1) k + 1)``;
    ``[1, 2, 3]`` with ``k=2`` gives ``[1, 0, 2, 0, 3]``."""

    def __init__(self, upsampling_factor: int, *, impl: str = "scratch") -> None:
        super().__init__(upsampling_factor, impl=impl)


class Upsample2d(_Resample):
    """Zero insertion along H and W: ``(N, C, H, W) -> (N, C, (H-1) k + 1, (W-1) k + 1)``."""

    _dims = 2

    def __init__(self, upsampling_factor: int, *, impl: str = "scratch") -> None:
        super().__init__(upsampling_factor, impl=impl)


class Downsample1d(_Resample):
    """Decimation along time: ``(N, C, W) -> (N, C, ceil(W / k))``, keeping ``x[..., ::k]``."""

    _up = False

    def __init__(self, downsampling_factor: int, *, impl: str = "scratch") -> None:
        super().__init__(downsampling_factor, impl=impl)


class Downsample2d(_Resample):
    """Decimation along H and W: ``(N, C, H, W) -> (N, C, ceil(H / k), ceil(W / k))``."""

    _dims = 2
    _up = False

    def __init__(self, downsampling_factor: int, *, impl: str = "scratch") -> None:
        super().__init__(downsampling_factor, impl=impl)
