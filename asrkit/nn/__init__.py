"""asrkit.nn: the scratch layer set.

Three levels (see DESIGN.md): kernels in ``asrkit/nn/functional/<area>.py``
(``<op>_forward -> (out, cache)``, ``<op>_backward(grad_out, cache)``), one
``torch.autograd.Function`` per op, and modules here whose constructor
arguments, parameter names and shapes are exactly torch's, each with
``impl="scratch" | "native"``.
"""
from __future__ import annotations

from asrkit.nn.module import IMPLS, Module, set_impl

__all__ = ["IMPLS", "Module", "set_impl"]

# --- part 1: MLP/CNN layers, losses ---
from asrkit.nn import init, optim  # noqa: E402
from asrkit.nn.adaptive import AdaptiveLogSoftmaxWithLoss  # noqa: E402
from asrkit.nn.activation import (  # noqa: E402
    GELU, GLU, Identity, LeakyReLU, LogSoftmax, MaskedSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh,
)
from asrkit.nn.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d  # noqa: E402
from asrkit.nn.dropout import Dropout, EmbeddingDropout, LockedDropout  # noqa: E402
from asrkit.nn.embedding import Embedding  # noqa: E402
from asrkit.nn.linear import Flatten, Linear  # noqa: E402
from asrkit.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss  # noqa: E402
from asrkit.nn.norm import BatchNorm1d, BatchNorm2d, LayerNorm, UtteranceNorm  # noqa: E402
from asrkit.nn.pool import (  # noqa: E402
    AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, Downsample1d, Downsample2d, MaxPool1d, MaxPool2d, Upsample1d, Upsample2d,
)

__all__ += [
    "init", "optim", "Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "GELU", "SiLU", "GLU", "Softmax", "LogSoftmax",
    "MaskedSoftmax", "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "Dropout", "LockedDropout",
    "EmbeddingDropout",
    "Embedding", "Flatten",
    "Linear", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "UtteranceNorm",
    "MSELoss", "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "AdaptiveLogSoftmaxWithLoss",
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "Upsample1d", "Upsample2d",
    "Downsample1d", "Downsample2d",
]

# --- part 2: recurrent layers, CTC, attention, Transformer/Conformer blocks ---
from asrkit.nn import search  # noqa: E402
from asrkit.nn.attention import (  # noqa: E402
    LearnedPositionalEncoding, MultiheadAttention, RelPositionMultiheadAttention,
    SinusoidalPositionalEncoding,
)
from asrkit.nn.conformer import Conformer, ConformerBlock  # noqa: E402
from asrkit.nn.ctc import CTCLoss  # noqa: E402
from asrkit.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell  # noqa: E402
from asrkit.nn.seq2seq_attention import DotProductAttention, LocationAwareAttention  # noqa: E402
from asrkit.nn.spectral import remove_spectral_norm, spectral_norm  # noqa: E402
from asrkit.nn.transformer import TransformerDecoderLayer, TransformerEncoderLayer  # noqa: E402

__all__ += [
    "search", "RNNCell", "GRUCell", "LSTMCell", "RNN", "GRU", "LSTM", "CTCLoss", "MultiheadAttention",
    "RelPositionMultiheadAttention", "SinusoidalPositionalEncoding", "LearnedPositionalEncoding",
    "TransformerEncoderLayer", "TransformerDecoderLayer", "ConformerBlock", "Conformer",
    "DotProductAttention", "LocationAwareAttention", "spectral_norm", "remove_spectral_norm",
]

# --- face models: global pooling, embedding normalization, margin heads ---
from asrkit.nn.margin import MarginLinear, Normalize  # noqa: E402

__all__ += ["AdaptiveAvgPool2d", "Normalize", "MarginLinear"]
