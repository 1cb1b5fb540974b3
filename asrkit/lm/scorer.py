"""Whole-sentence language model scores, for n-best rescoring.

One protocol, two kinds of model behind it::

    from asrkit.lm.scorer import open_sentence_lm
    lm = open_sentence_lm("exp/lm4.arpa")        # ARPA or kenlm binary file; a directory: a neural LM exp
    lm.sentence_scores([["the", "cat"], []])       # -> [ln P(<s> the cat </s>), ln P(<s> </s>)]

A score is the natural-log probability of the sentence's words and the final
``</s>``, given ``<s>`` (the conventions of ``asrkit lm ppl``). An n-gram
model is read by kenlm (:func:`asrkit.lm.ppl.load_kenlm`; a unigram ARPA, which
kenlm refuses, in Python as there) and its log10 scores are multiplied by
``ln 10``; a word it does not know is scored as ``<unk>`` (the ARPA's ``<unk>``
entry; kenlm's default when the file has none). A directory is a neural LM exp
dir (``asrkit train lm``), opened with :meth:`asrkit.lm.neural.NeuralLM.load`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

from asrkit.errors import InputError
from asrkit.io import display_name

__all__ = ["LN10", "KenLMScorer", "NeuralScorer", "SentenceLM", "open_sentence_lm", "score_unique"]

#: log10 -> natural log.
LN10 = math.log(10.0)


@runtime_checkable
class SentenceLM(Protocol):
    """A language model that scores whole sentences.

    Attributes:
        name: how messages name the model (its path).
    """

    name: str

    def sentence_scores(self, sentences: list[list[str]]) -> list[float]:
        """Natural-log ``P(w1 .. wn </s> | <s>)`` of each sentence (a list of words; may be empty)."""
        ...


class KenLMScorer:
    """An ARPA or kenlm binary model (any order; a unigram ARPA too) as a :class:`SentenceLM`."""

    def __init__(self, path: str | os.PathLike) -> None:
        from asrkit.lm.ppl import load_kenlm

        self.name = display_name(path)
        self.model = load_kenlm(path)  # InputError: missing, a directory, not a model
        self.order = int(self.model.order)

    def sentence_scores(self, sentences: list[list[str]]) -> list[float]:
        out = []
        for words in sentences:
            text = " ".join(words)
            if hasattr(self.model, "score"):
                log10 = self.model.score(text, bos=True, eos=True)
            else:  # the Python unigram model of load_kenlm
                log10 = sum(p for p, _, _ in self.model.full_scores(text, bos=True, eos=True))
            out.append(float(log10) * LN10)
        return out


class NeuralScorer:
    """A neural LM exp dir (``asrkit train lm``) as a :class:`SentenceLM`: the sentences of one call
    are scored in batches by :meth:`asrkit.lm.neural.NeuralLM.sentence_scores` (word units: a word
    outside the vocabulary is ``<unk>``)."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu") -> None:
        from asrkit.lm.neural import NeuralLM

        self.name = display_name(path)
        self.lm = NeuralLM.load(path, device=device)  # InputError when not an LM exp dir

    def sentence_scores(self, sentences: list[list[str]]) -> list[float]:
        return [float(s) for s in self.lm.sentence_scores(sentences)]


def open_sentence_lm(path: str | os.PathLike, device: str = "cpu") -> SentenceLM:
    """The :class:`SentenceLM` at ``path``: an ARPA or kenlm binary file, or a neural LM exp dir
    (``device``: where a neural model runs). A missing path or a file that is no model raises
    :class:`InputError`."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{display_name(path)}: no such file or folder (--lm takes an ARPA file, a kenlm "
                         f"binary or a neural LM exp dir)")
    if p.is_dir():
        return NeuralScorer(p, device=device)
    return KenLMScorer(p)


def score_unique(lm: SentenceLM, sentences: Sequence[Sequence[str]]) -> list[float]:
    """``lm``'s scores of ``sentences``, each distinct sentence scored once (an n-best list repeats
    words, and n-best lists of one utterance often share hypotheses)."""
    keys = [tuple(s) for s in sentences]
    distinct = list(dict.fromkeys(keys))
    scores = lm.sentence_scores([list(k) for k in distinct]) if distinct else []
    if len(scores) != len(distinct):
        raise RuntimeError(f"{lm.name}: {len(scores)} scores for {len(distinct)} sentences")
    found = dict(zip(distinct, scores))
    return [found[k] for k in keys]
