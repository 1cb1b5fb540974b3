"""A small deterministic sequence-to-sequence model for the attention search tests.

It implements the decoding contract of asrkit.models.seq2seq (Encoded with
memory / lengths / ctc_logits / index, init_state, step, select_state,
SOS = EOS = 0, has_ctc, encode, output_lengths) without any learning:

- table mode: ``step`` returns the log-probabilities a table gives for the
  hypothesis' prefix (the same for every utterance unless ``utt_scale`` mixes
  in the utterance's features), and the CTC head returns the log-probabilities
  it was given;
- pseudo-random mode (no table): the logits of a prefix are drawn from a
  generator seeded by the prefix, plus the utterance's mean memory (so
  utterances differ), with ``<eos>`` more likely as the prefix grows.

The attention of a step peaks at frame ``2 x len(prefix)`` of the utterance's
valid frames. Every ``step`` call records its row count (``rows_seen``).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

EOS = SOS = 0


@dataclass
class Encoded:
    memory: Tensor  # (B, S, H)
    lengths: Tensor  # (B,)
    ctc_logits: Optional[Tensor]  # (B, S, C)

    def index(self, idx: Tensor) -> "Encoded":
        return Encoded(self.memory[idx], self.lengths[idx], None if self.ctc_logits is None else self.ctc_logits[idx])


def probs_table(spec: dict[tuple[int, ...], dict[int, float]], C: int, floor: float = 1e-6) -> dict:
    """prefix -> {token: probability} (the rest of the mass spread over the others, at least
    ``floor`` each) as prefix -> (C,) log-probabilities."""
    out = {}
    for prefix, probs in spec.items():
        p = torch.full((C,), floor, dtype=torch.float64)
        for tok, v in probs.items():
            p[tok] = v
        out[tuple(prefix)] = (p / p.sum()).log().float()
    return out


class FakeSeq2Seq(torch.nn.Module):
    """See the module docstring. ``table``: prefix -> (C,) log-probabilities (prefixes not in it
    say ``<eos>`` almost surely; ``utt_scale`` defaults to 0 with a table, 1 without);
    ``ctc_log_probs``: (B, S, C) CTC logits ``encode`` returns as they are (else the memory x 2)."""

    def __init__(self, num_classes: int, *, table: Optional[dict] = None, has_ctc: bool = True,
                 ctc_log_probs: Optional[Tensor] = None, subsampling: int = 2, utt_scale: Optional[float] = None,
                 eos_push: float = 1.2, input_dim: int = 20, never_eos: bool = False, seed: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.input_dim = input_dim
        self.table = table
        self.has_ctc = has_ctc
        self.ctc_log_probs = ctc_log_probs
        self.subsampling = subsampling
        self.utt_scale = (0.0 if table is not None else 1.0) if utt_scale is None else utt_scale
        self.eos_push = eos_push
        self.never_eos = never_eos
        self.seed = seed
        self.proj = torch.randn(input_dim, num_classes, generator=torch.Generator().manual_seed(seed)) * 0.5
        self.rows_seen: list[int] = []
        self.config = {"type": "fake"}

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return (lengths + self.subsampling - 1) // self.subsampling

    def encode(self, feats: Tensor, lengths: Tensor) -> Encoded:
        memory = feats[:, ::self.subsampling] @ self.proj  # (B, S, C)
        out_len = self.output_lengths(lengths)
        memory = memory * (torch.arange(memory.shape[1])[None, :, None] < out_len[:, None, None])
        ctc = None
        if self.has_ctc:
            ctc = self.ctc_log_probs if self.ctc_log_probs is not None else memory * 2.0
        return Encoded(memory, out_len, ctc)

    def init_state(self, enc: Encoded):
        return (torch.zeros(enc.lengths.shape[0], 0, dtype=torch.int64), False)

    def select_state(self, state, idx: Tensor):
        prefix, started = state
        return (prefix[idx], started)

    def _logits(self, prefix: tuple[int, ...], mem_mean: Tensor) -> Tensor:
        C = self.num_classes
        if self.table is not None:
            base = self.table.get(prefix)
            if base is None:
                base = torch.full((C,), -30.0)
                base[EOS] = 0.0
            return base + self.utt_scale * mem_mean if self.utt_scale else base
        seed = zlib.crc32(bytes(str((self.seed,) + prefix), "ascii"))
        logits = torch.randn(C, generator=torch.Generator().manual_seed(seed)) * 2.0
        logits = logits + self.utt_scale * mem_mean
        if self.never_eos:
            logits[EOS] = -30.0
        else:
            logits[EOS] += self.eos_push * (len(prefix) - 3)
        return logits

    def step(self, enc: Encoded, state, tokens: Tensor):
        prefix, started = state
        if started:
            prefix = torch.cat([prefix, tokens[:, None].to(prefix.device)], dim=1)
        N, S = enc.memory.shape[0], enc.memory.shape[1]
        self.rows_seen.append(N)
        mem_mean = enc.memory.sum(1) / enc.lengths[:, None].clamp(min=1)  # (N, C)
        logits = torch.stack([self._logits(tuple(prefix[n].tolist()), mem_mean[n]) for n in range(N)])
        lp = torch.log_softmax(logits.float(), dim=-1)
        L = prefix.shape[1]
        pos = torch.arange(S, dtype=torch.float32)
        energy = (-(pos - 2.0 * L) ** 2)[None].expand(N, S)  # (N, S)
        att = torch.softmax(energy.masked_fill(pos[None] >= enc.lengths[:, None], -math.inf), dim=-1)
        return lp, (prefix, True), att
