"""Recurrent layers: ``RNNCell, GRUCell, LSTMCell, RNN, GRU, LSTM``.

Constructor arguments, parameter names (``weight_ih_l0``, ``bias_hh_l1_reverse``,
``weight_hr_l0`` ...), shapes, init and return values are torch's, so a
``torch.nn.LSTM`` state_dict loads unchanged. ``impl="scratch"`` runs the
hand-written BPTT of :mod:`asrkit.nn.functional.rnn` (one autograd Function per
layer and direction); ``impl="native"`` calls torch's own kernels (``torch._VF``,
cuDNN on CUDA), exactly as ``torch.nn.LSTM.forward`` does.

Variable lengths: pass a ``torch.nn.utils.rnn.PackedSequence`` (the output is
then packed too), or a padded batch plus ``lengths=`` (an asrkit extension; the
output is padded with zeros to the input's length). Either way each sequence
is processed only up to its own length: the reverse direction starts at each
sequence's own last frame and ``h_n`` is the state at each sequence's last
frame, exactly as torch's packed layers.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import Tensor
from torch import _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from asrkit.nn import init
from asrkit.nn.functional import dropout as _D
from asrkit.nn.functional import rnn as R
from asrkit.nn.functional import shape as S
from asrkit.nn.module import Module

__all__ = ["RNNCell", "GRUCell", "LSTMCell", "RNN", "GRU", "LSTM"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


# ----------------------------------------------------------------------------
# cells
# ----------------------------------------------------------------------------


class _CellBase(Module):
    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 device=None, dtype=None, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        fk = {"device": device, "dtype": dtype}
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.weight_ih = torch.nn.Parameter(torch.empty(num_chunks * hidden_size, input_size, **fk))
        self.weight_hh = torch.nn.Parameter(torch.empty(num_chunks * hidden_size, hidden_size, **fk))
        if bias:
            self.bias_ih = torch.nn.Parameter(torch.empty(num_chunks * hidden_size, **fk))
            self.bias_hh = torch.nn.Parameter(torch.empty(num_chunks * hidden_size, **fk))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(hidden), 1/sqrt(hidden)) for every parameter, as torch."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _prep(self, x: Tensor, hx: Optional[Tensor]):
        if x.dim() not in (1, 2):
            raise ValueError(f"{type(self).__name__}: Expected input to be 1D or 2D, got {x.dim()}D instead")
        batched = x.dim() == 2
        if not batched:
            x = x.unsqueeze(0)
        if hx is not None and not batched:
            hx = hx.unsqueeze(0)
        return x, hx, batched

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        return s + ", " + super().extra_repr()


class RNNCell(_CellBase):
    """``h' = act(W_ih x + b_ih + W_hh h + b_hh)``: ``x (B, I), h (B, H) -> h' (B, H)``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None, *, impl: str = "scratch") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, 1, device, dtype, impl=impl)

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        x, hx, batched = self._prep(input, hx)
        if hx is None:
            hx = x.new_zeros(x.shape[0], self.hidden_size)
        if self.native:
            fn = _VF.rnn_tanh_cell if self.nonlinearity == "tanh" else _VF.rnn_relu_cell
            h = fn(x, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        else:
            _, h = R.rnn_layer(x.unsqueeze(0), hx, self.weight_ih, self.weight_hh, self.bias_ih,
                               self.bias_hh, self.nonlinearity)
        return h if batched else h.squeeze(0)


class GRUCell(_CellBase):
    """One GRU step (gates r, z, n): ``x (B, I), h (B, H) -> h' (B, H)``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None,
                 *, impl: str = "scratch") -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype, impl=impl)

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        x, hx, batched = self._prep(input, hx)
        if hx is None:
            hx = x.new_zeros(x.shape[0], self.hidden_size)
        if self.native:
            h = _VF.gru_cell(x, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        else:
            _, h = R.gru_layer(x.unsqueeze(0), hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h if batched else h.squeeze(0)


class LSTMCell(_CellBase):
    """One LSTM step (gates i, f, g, o): ``x (B, I), (h, c) (B, H) -> (h', c')``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None,
                 *, impl: str = "scratch") -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype, impl=impl)

    def forward(self, input: Tensor, hx: Optional[tuple[Tensor, Tensor]] = None) -> tuple[Tensor, Tensor]:
        batched = input.dim() == 2
        x, _, _ = self._prep(input, None)
        if hx is None:
            z = x.new_zeros(x.shape[0], self.hidden_size)
            hx = (z, z)
        elif not batched:
            hx = (hx[0].unsqueeze(0), hx[1].unsqueeze(0))
        if self.native:
            h, c = _VF.lstm_cell(x, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        else:
            _, h, c = R.lstm_layer(x.unsqueeze(0), hx[0], hx[1], self.weight_ih, self.weight_hh,
                                   self.bias_ih, self.bias_hh)
        if not batched:
            h, c = h.squeeze(0), c.squeeze(0)
        return h, c


# ----------------------------------------------------------------------------
# sequence layers
# ----------------------------------------------------------------------------


class _RNNBase(Module):
    """Shared by RNN, GRU and LSTM: parameters, init, variable lengths, dispatch."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None,
                 *, impl: str = "scratch") -> None:
        super().__init__(impl)
        fk = {"device": device, "dtype": dtype}
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability "
                             "of an element being zeroed")
        if hidden_size <= 0 or num_layers <= 0:
            raise ValueError("hidden_size and num_layers must be greater than 0")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        num_dirs = 2 if bidirectional else 1
        gate = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            for d in range(num_dirs):
                layer_in = input_size if layer == 0 else real_hidden * num_dirs
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                params = [("weight_ih", (gate, layer_in)), ("weight_hh", (gate, real_hidden))]
                if bias:
                    params += [("bias_ih", (gate,)), ("bias_hh", (gate,))]
                if proj_size > 0:
                    params += [("weight_hr", (proj_size, hidden_size))]
                for name, shape in params:
                    setattr(self, name + sfx, torch.nn.Parameter(torch.empty(shape, **fk)))
                    self._flat_weights_names.append(name + sfx)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(hidden), 1/sqrt(hidden)) for every parameter, in torch's order."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _layer_params(self, layer: int, d: int):
        sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
        g = lambda n: getattr(self, n + sfx, None)  # noqa: E731
        return g("weight_ih"), g("weight_hh"), g("bias_ih"), g("bias_hh"), g("weight_hr")

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s + ", " + super().extra_repr()

    # -- forward ------------------------------------------------------------

    def forward(self, input: Union[Tensor, PackedSequence], hx=None, lengths: Optional[Tensor] = None):
        """``input (T, B, I)`` (``(B, T, I)`` if batch_first), ``(T, I)`` unbatched, or a
        ``PackedSequence``; ``hx`` as torch (``(h0, c0)`` for LSTM, each
        ``(num_layers * num_directions, B, H)``); optional ``lengths (B,)`` for a
        padded batch. Returns ``(output, h_n)`` or, for LSTM, ``(output, (h_n, c_n))``.
        """
        lstm = self.mode == "LSTM"
        D, L = self.num_directions, self.num_layers
        H_out = self.proj_size if self.proj_size > 0 else self.hidden_size
        packed = isinstance(input, PackedSequence)
        unbatched = False
        if packed:
            if lengths is not None:
                raise ValueError("lengths= is for padded input; a PackedSequence carries its own")
            data, batch_sizes, sorted_idx, unsorted_idx = input
            B = int(batch_sizes[0])
        else:
            if input.dim() not in (2, 3):
                raise ValueError(f"{self.mode}: Expected input to be 2D or 3D, got {input.dim()}D instead")
            unbatched = input.dim() == 2
            if unbatched:
                input = input.unsqueeze(1 if not self.batch_first else 0)
                if lengths is not None:
                    raise ValueError("lengths= needs a batched input")
            B = input.shape[0 if self.batch_first else 1]
            sorted_idx = unsorted_idx = None
        if input.shape[-1] != self.input_size if not packed else data.shape[-1] != self.input_size:
            raise ValueError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                             f"got {(data if packed else input).shape[-1]}")
        ref = data if packed else input
        # initial states (num_layers * D, B, H), in the caller's batch order
        if hx is None:
            h0 = ref.new_zeros(L * D, B, H_out)
            c0 = ref.new_zeros(L * D, B, self.hidden_size) if lstm else None
        else:
            if lstm:
                h0, c0 = hx
            else:
                h0, c0 = hx, None
            if unbatched:
                h0 = h0.unsqueeze(1)
                c0 = c0.unsqueeze(1) if c0 is not None else None
        if not packed and lengths is not None:
            return self._forward_lengths(input, h0, c0, lengths, B)
        if sorted_idx is not None:
            h0 = self._select(h0, 1, sorted_idx)
            c0 = self._select(c0, 1, sorted_idx) if c0 is not None else None
        if self.native:
            out, h_n, c_n = self._native(data if packed else input, batch_sizes if packed else None, h0, c0)
        elif packed:
            out, h_n, c_n = self._scratch_packed(data, batch_sizes, h0, c0)
        else:
            x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
            y, h_n, c_n = self._scratch(x, None, h0, c0)
            out = y.transpose(0, 1) if self.batch_first else y
        if unsorted_idx is not None:
            h_n = self._select(h_n, 1, unsorted_idx)
            c_n = self._select(c_n, 1, unsorted_idx) if c_n is not None else None
        if packed:
            out = PackedSequence(out, batch_sizes, sorted_idx, unsorted_idx)
        elif unbatched:
            out = out.squeeze(1 if not self.batch_first else 0)
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        return (out, (h_n, c_n)) if lstm else (out, h_n)

    def _select(self, x: Tensor, dim: int, index: Tensor) -> Tensor:
        """Reorder the batch (sort by length and back): torch's op when native, the kernel when scratch."""
        return x.index_select(dim, index) if self.native else S.index_select(x, dim, index)

    def _forward_lengths(self, input: Tensor, h0: Tensor, c0: Optional[Tensor], lengths, B: int):
        """Padded batch + lengths: each sequence runs to its own length; output padded to the input's length.

        Native packs, runs torch's packed kernel and pads back. Scratch needs no
        packing: it sorts the batch by length, runs the padded kernels with the
        batch sizes per step (they leave zeros past each length) and unsorts.
        """
        lengths = torch.as_tensor(lengths)
        T = input.shape[1 if self.batch_first else 0]
        if lengths.dim() != 1 or lengths.numel() != B:
            raise ValueError(f"lengths must have shape ({B},), got {tuple(lengths.shape)}")
        if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > T):
            raise ValueError(f"lengths must be in [1, {T}], got min {int(lengths.min())} max {int(lengths.max())}")
        lstm = self.mode == "LSTM"
        if self.native:
            packed = pack_padded_sequence(input, lengths.cpu(), batch_first=self.batch_first, enforce_sorted=False)
            out, hn = self.forward(packed, (h0, c0) if lstm else h0)
            y, _ = pad_packed_sequence(out, batch_first=self.batch_first, total_length=T)
            return y, hn
        lengths = lengths.cpu()
        sorted_len, order = torch.sort(lengths, descending=True)  # (B,), longest first
        unorder = torch.empty_like(order)
        unorder[order] = torch.arange(B)
        order, unorder = order.to(input.device), unorder.to(input.device)
        bdim = 0 if self.batch_first else 1
        x = self._select(input, bdim, order)  # sorted, (B, T, I) or (T, B, I)
        x = x.transpose(0, 1) if self.batch_first else x  # (T, B, I)
        sizes = (torch.arange(T)[:, None] < sorted_len[None, :]).sum(1).tolist()  # batch size per step
        y, h_n, c_n = self._scratch(x, None if sizes[-1] == B else sizes, self._select(h0, 1, order),
                                    self._select(c0, 1, order) if c0 is not None else None)
        y = y.transpose(0, 1) if self.batch_first else y
        y = self._select(y, bdim, unorder)
        h_n = self._select(h_n, 1, unorder)
        c_n = self._select(c_n, 1, unorder) if c_n is not None else None
        return (y, (h_n, c_n)) if lstm else (y, h_n)

    def _native(self, x: Tensor, batch_sizes: Optional[Tensor], h0: Tensor, c0: Optional[Tensor]):
        weights = [getattr(self, n) for n in self._flat_weights_names]
        args = (weights, self.bias, self.num_layers, self.dropout, self.training, self.bidirectional)
        if self.mode == "LSTM":
            if batch_sizes is None:
                res = _VF.lstm(x, (h0, c0), *args, self.batch_first)
            else:
                res = _VF.lstm(x, batch_sizes, (h0, c0), *args)
            return res[0], res[1], res[2]
        fn = {"GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}[self.mode]
        if batch_sizes is None:
            res = fn(x, h0, *args, self.batch_first)
        else:
            res = fn(x, batch_sizes, h0, *args)
        return res[0], res[1], None

    def _scratch_packed(self, data: Tensor, batch_sizes: Tensor, h0: Tensor, c0: Optional[Tensor]):
        """PackedSequence data (sum_t bs_t, I) -> sorted padded (T, B, I) -> run -> packed."""
        sizes = [int(n) for n in batch_sizes]
        B = sizes[0]
        mask = R.packed_mask(batch_sizes, data.device)  # (T, B); row-major = packed order
        x = S.unpack(data, mask)  # (T, B, I)
        full = sizes[-1] == B
        y, h_n, c_n = self._scratch(x, None if full else sizes, h0, c0)
        return S.pack(y, mask), h_n, c_n  # (sum_t bs_t, D * H)

    def _scratch(self, x: Tensor, sizes: Optional[Sequence[int]], h0: Tensor, c0: Optional[Tensor]):
        """x (T, B, I) sorted by length; returns y (T, B, D * H_out), h_n, c_n (L * D, B, .)."""
        D = self.num_directions
        rev_index = R.reverse_index(sizes, x.device) if (sizes is not None and D == 2) else None
        layer_in = x
        hs, cs = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_params(layer, d)
                rev = d == 1
                if self.mode == "LSTM":
                    y, h, c = R.lstm_layer(layer_in, h0[k], c0[k], w_ih, w_hh, b_ih, b_hh, w_hr, sizes,
                                           rev, rev_index)
                    cs.append(c)
                elif self.mode == "GRU":
                    y, h = R.gru_layer(layer_in, h0[k], w_ih, w_hh, b_ih, b_hh, sizes, rev, rev_index)
                else:
                    nl = "tanh" if self.mode == "RNN_TANH" else "relu"
                    y, h = R.rnn_layer(layer_in, h0[k], w_ih, w_hh, b_ih, b_hh, nl, sizes, rev, rev_index)
                outs.append(y)
                hs.append(h)
            layer_in = outs[0] if D == 1 else torch.cat(outs, 2)  # (T, B, D * H_out)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_in = _D.dropout(layer_in, self.dropout, True)
        c_n = torch.stack(cs, 0) if cs else None
        return layer_in, torch.stack(hs, 0), c_n


class RNN(_RNNBase):
    """Elman RNN, ``nonlinearity`` "tanh" or "relu"; torch.nn.RNN's arguments and names."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None, *, impl: str = "scratch") -> None:
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, impl=impl)


class GRU(_RNNBase):
    """GRU (gates r, z, n); torch.nn.GRU's arguments and parameter names."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, impl: str = "scratch") -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, impl=impl)


class LSTM(_RNNBase):
    """LSTM (gates i, f, g, o; optional ``proj_size``); torch.nn.LSTM's arguments and names."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, impl: str = "scratch") -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype, impl=impl)
