"""Convolution layers: Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d.

Constructor signatures, parameter names/shapes and init are ``torch.nn``'s:
``Conv*d.weight (out, in/groups, *k)``, ``ConvTranspose*d.weight (in, out/groups, *k)``,
``bias (out,)``; kaiming_uniform(a=sqrt(5)) and U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
The scratch path is im2col + matmul (:mod:`asrkit.nn.functional.conv`).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as TF

from asrkit.nn import init
from asrkit.nn.functional import conv as C
from asrkit.nn.module import Module

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(v: int | Sequence[int], n: int) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * n
    v = tuple(v)
    return v * n if len(v) == 1 else v


class _ConvNd(Module):
    _n = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding, dilation,
                 transposed: bool, output_padding, groups: int, bias: bool, padding_mode: str,
                 device, dtype, impl: str) -> None:
        super().__init__(impl)
        fk = {"device": device, "dtype": dtype}
        n = self._n
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in _ntuple(stride, n)):
                raise ValueError("padding='same' is not supported for strided convolutions")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, but got padding_mode='{padding_mode}'")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _ntuple(kernel_size, n)
        self.stride = _ntuple(stride, n)
        self.padding = padding if isinstance(padding, str) else _ntuple(padding, n)
        self.dilation = _ntuple(dilation, n)
        self.transposed = transposed
        self.output_padding = _ntuple(output_padding, n)
        self.groups = groups
        self.padding_mode = padding_mode
        # F.pad order (last dim first), as torch's _reversed_padding_repeated_twice
        if isinstance(self.padding, str):
            pairs = ([(0, 0)] * n if self.padding == "valid"
                     else C.same_padding(self.kernel_size, self.dilation))
        else:
            pairs = [(p, p) for p in self.padding]
        self._reversed_padding_repeated_twice = [v for pr in reversed(pairs) for v in pr]
        if transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = torch.nn.Parameter(torch.empty(shape, **fk))
        if bias:
            self.bias = torch.nn.Parameter(torch.empty(out_channels, **fk))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        if self.bias is not None:
            init.bias_uniform_(self.bias, self.weight)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s + ", " + super().extra_repr()

    def _conv(self, x: torch.Tensor, conv) -> torch.Tensor:
        """Run ``conv`` (torch's or the scratch functional of this rank), first
        padding explicitly for the non-zero padding modes, as torch does."""
        padding = self.padding
        if self.padding_mode != "zeros":
            pad = TF.pad if self.native else C.pad
            x, padding = pad(x, self._reversed_padding_repeated_twice, self.padding_mode), 0
        return conv(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """``(N, C_in, T) -> (N, C_out, T_out)``, ``T_out = (T + 2p - d (k-1) - 1) // s + 1``."""

    _n = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: str | int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None, *, impl: str = "scratch") -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, 0,
                         groups, bias, padding_mode, device, dtype, impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(x, TF.conv1d if self.native else C.conv1d)


class Conv2d(_ConvNd):
    """``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``."""

    _n = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: str | int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None, *, impl: str = "scratch") -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, 0,
                         groups, bias, padding_mode, device, dtype, impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(x, TF.conv2d if self.native else C.conv2d)


class _ConvTransposeNd(_ConvNd):
    def _conv_t(self, x: torch.Tensor, output_size: Sequence[int] | None, conv_t) -> torch.Tensor:
        """Run ``conv_t`` (torch's or the scratch functional of this rank)."""
        op = self._output_padding(x, output_size)
        return conv_t(x, self.weight, self.bias, self.stride, self.padding, op, self.groups, self.dilation)

    def _output_padding(self, x: torch.Tensor, output_size: Sequence[int] | None) -> tuple[int, ...]:
        """As torch: the output_padding that yields ``output_size`` (or the constructor's)."""
        if output_size is None:
            return self.output_padding
        n = self._n
        output_size = list(output_size)[-n:]
        out = []
        for d in range(n):
            size = x.shape[x.dim() - n + d]
            lo = ((size - 1) * self.stride[d] - 2 * self.padding[d]
                  + self.dilation[d] * (self.kernel_size[d] - 1) + 1)
            hi = lo + self.stride[d] - 1
            if not lo <= output_size[d] <= hi:
                raise ValueError(f"requested an output size of {output_size}, but valid sizes range "
                                 f"from {lo} to {hi} (for an input of {list(x.shape[2:])})")
            out.append(output_size[d] - lo)
        return tuple(out)


class ConvTranspose1d(_ConvTransposeNd):
    """``(N, C_in, T) -> (N, C_out, T_out)``, ``T_out = (T-1) s - 2p + d (k-1) + output_padding + 1``."""

    _n = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 output_padding: int | Sequence[int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | Sequence[int] = 1, padding_mode: str = "zeros", device=None, dtype=None,
                 *, impl: str = "scratch") -> None:
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, True,
                         output_padding, groups, bias, padding_mode, device, dtype, impl)

    def forward(self, x: torch.Tensor, output_size: Sequence[int] | None = None) -> torch.Tensor:
        return self._conv_t(x, output_size, TF.conv_transpose1d if self.native else C.conv_transpose1d)


class ConvTranspose2d(_ConvTransposeNd):
    """``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``."""

    _n = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 output_padding: int | Sequence[int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | Sequence[int] = 1, padding_mode: str = "zeros", device=None, dtype=None,
                 *, impl: str = "scratch") -> None:
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, True,
                         output_padding, groups, bias, padding_mode, device, dtype, impl)

    def forward(self, x: torch.Tensor, output_size: Sequence[int] | None = None) -> torch.Tensor:
        return self._conv_t(x, output_size, TF.conv_transpose2d if self.native else C.conv_transpose2d)
