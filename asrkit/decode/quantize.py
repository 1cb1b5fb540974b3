"""Dynamic int8 quantization of a loaded model for CPU decoding: ``asrkit decode --quantize int8``.

    exp = load_exp("exp/ctc", device="cpu", quantize="int8")   # or: quantize_model(exp.model, "int8")

torch's dynamic quantization (:func:`torch.ao.quantization.quantize_dynamic`) stores the weights
of ``Linear``, ``LSTM``/``GRU`` and ``LSTMCell``/``GRUCell`` layers as int8 and quantizes their
inputs on the fly, batch by batch; everything else (convolutions, norms, attention scores) stays
float32. It works on torch's own layer classes, so the asrkit layers are first switched to
torch's kernels (``impl: native``, :func:`asrkit.nn.set_impl`; a state_dict moves between the two
unchanged) and each asrkit ``Linear`` / recurrent layer is replaced by the torch layer holding the
same weights. A recurrent layer called with ``lengths=`` (asrkit's padded-batch extension) is
wrapped so that it packs the batch by length for torch's kernel and pads the output back.

Only CPU: torch's int8 kernels (fbgemm / qnnpack) run there. A ``Linear`` whose weight another
layer reads directly (the output projection of ``MultiheadAttention``, which torch's fused
attention takes as a tensor) stays float32.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import asrkit.nn as ann
from asrkit.errors import UsageError
from asrkit.nn.module import Module as AsrkitModule

__all__ = ["QUANTIZE", "QuantizeReport", "check_quantize", "quantize_model"]

#: The values of ``--quantize``.
QUANTIZE = ("int8",)


def check_quantize(quantize: Optional[str], device: Optional[torch.device | str] = None) -> None:
    """:class:`UsageError` for a value outside :data:`QUANTIZE` or a device other than the CPU."""
    if quantize is None:
        return
    if quantize not in QUANTIZE:
        raise UsageError(f"--quantize must be {' or '.join(QUANTIZE)}, got '{quantize}'")
    if device is not None and torch.device(device).type != "cpu":
        raise UsageError(f"--quantize {quantize}: int8 kernels run on the CPU only; use --device cpu "
                         f"(or leave --quantize out on {torch.device(device).type})")


@dataclass
class QuantizeReport:
    """What :func:`quantize_model` changed: layers quantized per kind, and whether asrkit's own
    layers were switched to torch's kernels first."""

    linear: int = 0
    recurrent: int = 0
    cells: int = 0
    switched_to_native: bool = False

    def describe(self) -> str:
        s = f"{self.linear} Linear, {self.recurrent} LSTM/GRU and {self.cells} recurrent cell layers as int8"
        return s + (" (the other layers switched to torch's kernels, impl native)" if self.switched_to_native
                    else "")


class _PaddedRNN(torch.nn.Module):
    """A torch LSTM/GRU that also takes asrkit's ``lengths=`` (a padded batch): packs it by length,
    runs the (quantized) layer and pads the output back to the input's length."""

    def __init__(self, rnn: torch.nn.Module) -> None:
        super().__init__()
        self.rnn = rnn
        self.batch_first = rnn.batch_first

    def forward(self, input: Tensor, hx=None, lengths: Optional[Tensor] = None):
        if lengths is None:
            return self.rnn(input, hx)
        T = input.shape[1 if self.batch_first else 0]
        packed = pack_padded_sequence(input, torch.as_tensor(lengths).cpu(), batch_first=self.batch_first,
                                      enforce_sorted=False)
        out, h = self.rnn(packed, hx)
        y, _ = pad_packed_sequence(out, batch_first=self.batch_first, total_length=T)
        return y, h


def _torch_linear(m) -> torch.nn.Linear:
    lin = torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    lin.load_state_dict(m.state_dict())
    return lin


def _torch_rnn(m) -> torch.nn.Module:
    cls = torch.nn.LSTM if m.mode == "LSTM" else torch.nn.GRU
    rnn = cls(m.input_size, m.hidden_size, num_layers=m.num_layers, bias=m.bias, batch_first=m.batch_first,
              dropout=m.dropout, bidirectional=m.bidirectional)
    rnn.load_state_dict(m.state_dict())
    return rnn


def _torch_cell(m) -> torch.nn.Module:
    cls = torch.nn.LSTMCell if isinstance(m, ann.LSTMCell) else torch.nn.GRUCell
    cell = cls(m.input_size, m.hidden_size, bias=m.bias)
    cell.load_state_dict(m.state_dict())
    return cell


def quantize_model(model: torch.nn.Module, quantize: str = "int8") -> QuantizeReport:
    """Quantize ``model`` (in eval mode, on the CPU) in place for decoding; see the module
    docstring. Returns what was changed."""
    param = next(model.parameters(), None)
    check_quantize(quantize, None if param is None else param.device)
    report = QuantizeReport()
    report.switched_to_native = any(isinstance(m, AsrkitModule) and m.impl != "native" for m in model.modules())
    ann.set_impl(model, "native")
    keep = set()  # Linear layers whose weight tensor another layer reads
    for m in model.modules():
        if isinstance(m, ann.MultiheadAttention):
            keep.add(id(m.out_proj))
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ann.Linear) and id(child) not in keep:
                setattr(parent, name, _torch_linear(child))
                report.linear += 1
            elif isinstance(child, (ann.LSTM, ann.GRU)) and not child.proj_size:
                setattr(parent, name, _PaddedRNN(_torch_rnn(child)))
                report.recurrent += 1
            elif isinstance(child, (ann.LSTMCell, ann.GRUCell)):
                setattr(parent, name, _torch_cell(child))
                report.cells += 1
    kinds = {torch.nn.Linear, torch.nn.LSTM, torch.nn.GRU, torch.nn.LSTMCell, torch.nn.GRUCell}
    with warnings.catch_warnings():  # torch 2.10+ announces a future replacement of its quantized tensors
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*", category=DeprecationWarning)
        q = torch.ao.quantization
        # Linear weights with one scale per output row (per channel): closer to float32 than one
        # scale per tensor; the recurrent layers have only torch's per-tensor dynamic kernels
        spec = {k: (q.per_channel_dynamic_qconfig if k is torch.nn.Linear else q.default_dynamic_qconfig)
                for k in kinds}
        q.quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
    model.eval()
    return report
