"""n-gram language models: streaming counts, interpolated modified Kneser-Ney
estimation written as ARPA, an ARPA reader, and perplexity via kenlm.

No torch here (DESIGN: ``lm/`` imports no model code); numpy, kenlm, stdlib.
"""
from __future__ import annotations

from asrkit.lm.arpa import ArpaLM, prob_sum, read_arpa, write_arpa
from asrkit.lm.build import BuildStats, build_lm, build_model
from asrkit.lm.counts import BOS, EOS, UNK, NgramCounter, Vocabulary
from asrkit.lm.kneser_ney import KneserNeyModel, estimate, parse_prune
from asrkit.lm.ppl import Perplexity, load_kenlm, perplexity

__all__ = [
    "ArpaLM", "BOS", "BuildStats", "EOS", "KneserNeyModel", "NgramCounter", "Perplexity", "UNK",
    "Vocabulary", "build_lm", "build_model", "estimate", "load_kenlm", "parse_prune", "perplexity",
    "prob_sum", "read_arpa", "write_arpa",
]
