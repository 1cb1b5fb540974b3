"""A stand-in attention model for the plot tests: it encodes by halving the frames, and its
"search" attends along the diagonal. The real models and search are tested in tests/models and
tests/decode; these stand-ins check what asrkit.plot does with their outputs."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "decode"))

from decode_util import DIM, make_ctc_exp, make_store  # noqa: E402,F401

from asrkit.data.units import UnitMap  # noqa: E402

UNITS = ["<blank>", "ah", "k", "ae", "t"]


class HalvingEncoder(torch.nn.Module):
    """``encode`` keeps every second frame; remembers its last input."""

    def __init__(self):
        super().__init__()
        self.seen: torch.Tensor | None = None

    def encode(self, feats, lengths):  # (B, T, D), (B,)
        self.seen = feats
        memory = feats[:, ::2]  # (B, ceil(T/2), D)
        # one padding frame beyond the valid ones: the search's attention may cover it
        memory = torch.cat([memory, memory[:, :1]], dim=1)
        return SimpleNamespace(memory=memory, lengths=(lengths + 1) // 2, ctc_logits=None)


class DiagonalSearch:
    """A search (the :class:`asrkit.decode.attention.AttentionSearch` interface: ``check_model``,
    ``run``) returning ``ids`` with attention on a diagonal over all of ``memory`` (padding too)."""

    def __init__(self, ids=(2, 3, 4), hit_max=False, nan=False):
        self.ids, self.hit_max, self.nan = list(ids), hit_max, nan
        self.checked = []

    def check_model(self, model):
        self.checked.append(model)

    def run(self, model, enc):
        from asrkit.decode.attention import AttentionHyp

        rows = len(self.ids)
        width = enc.memory.shape[1]  # padded S
        att = torch.full((rows, width), 1e-3)
        for u in range(rows):
            att[u, min(width - 2, u * (width - 2) // max(1, rows - 1))] = 1.0
        att = att / att.sum(-1, keepdim=True)
        if self.nan:
            att[0, 0] = float("nan")
        return [[AttentionHyp(list(self.ids), -1.25, att[:, :int(enc.lengths[0])], self.hit_max, {"att": -1.25})]]


def fake_loaded(input_dim: int = DIM, cmvn: str | None = "global"):
    """What asrkit.decode.load_exp gives, for the stand-in model."""
    return SimpleNamespace(model=HalvingEncoder(), units=UnitMap("phone", UNITS), device=torch.device("cpu"),
                           cmvn=cmvn, norm_vars=True, input_dim=input_dim)


def nonzero_rows(a: np.ndarray) -> int:
    return int((a.sum(1) > 0).sum())
