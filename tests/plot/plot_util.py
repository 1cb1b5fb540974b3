"""A stand-in attention model for the plot tests: it encodes by halving the frames, and its
"search" attends along the diagonal. The real models and search are tested in tests/models and
tests/decode; these stand-ins check what asrkit.plot does with their outputs."""
from __future__ import annotations

import sys
from dataclasses import dataclass
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


@dataclass
class Result:
    ids: list
    score: float
    attention: torch.Tensor
    hit_max: bool


def diagonal_search(ids=(2, 3, 4), eos_row=True, as_tuple=True, hit_max=False, nan=False):
    """A search returning ``ids`` with attention on a diagonal over all of ``memory`` (padding too)."""
    calls = []

    def search(model, enc, max_len):
        calls.append(max_len)
        rows = len(ids) + (1 if eos_row else 0)
        width = enc.memory.shape[1]  # padded S
        att = torch.full((rows, width), 1e-3)
        for u in range(rows):
            att[u, min(width - 2, u * (width - 2) // max(1, rows - 1))] = 1.0
        att = att / att.sum(-1, keepdim=True)
        if nan:
            att[0, 0] = float("nan")
        if as_tuple:
            return [(list(ids), -1.25, att)]
        return [Result(list(ids), -1.25, att, hit_max)]

    search.calls = calls
    return search


def fake_loaded(input_dim: int = DIM, cmvn: str | None = "global"):
    """What asrkit.decode.load_exp gives, for the stand-in model."""
    return SimpleNamespace(model=HalvingEncoder(), units=UnitMap("phone", UNITS), device=torch.device("cpu"),
                           cmvn=cmvn, norm_vars=True, input_dim=input_dim)


def nonzero_rows(a: np.ndarray) -> int:
    return int((a.sum(1) > 0).sum())
