"""``asrkit lm ppl``: perplexity and OOV rate of a text under an ARPA or kenlm
binary model (computed with kenlm) or a neural LM exp dir (``asrkit train lm``).

Conventions (those of SRILM's ``ngram -ppl`` and kenlm's ``query``): every
line is a sentence scored with a ``<s>`` history and a final ``</s>``; words
not in the model are OOVs. ``perplexity`` leaves OOV tokens out of both the
log-probability sum and the token count (N = words - OOVs + sentences);
``perplexity_with_oov`` scores them as ``<unk>`` (N = words + sentences).

A neural LM counts the same way, so its numbers compare with an n-gram's on
the same text: word units have OOVs (a word outside the vocabulary is fed as
``<unk>`` and its own probability is left out of ``perplexity``); char and bpe
units spell every word, so they have none, and their log-probability (summed
over the units of each sentence and its ``</s>``) is still divided by words +
sentences: a word-level perplexity.
"""
from __future__ import annotations

import math
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator
from pathlib import Path

from asrkit.errors import InputError
from asrkit.io import display_name
from asrkit.lm.arpa import ArpaLM, read_arpa
from asrkit.lm.counts import BOS, EOS, UNK, iter_sentences


class _UnigramModel:
    """The part of kenlm.Model's interface :func:`perplexity` uses, for a
    unigram ARPA (which kenlm refuses to load)."""

    def __init__(self, lm: ArpaLM) -> None:
        self.lm = lm
        self.order = 1

    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True):
        words = sentence.split() + ([EOS] if eos else [])
        hist = [BOS] if bos else []
        for w in words:
            yield self.lm.logprob(w, hist), 1, w == UNK or (w,) not in self.lm.ngrams[1]


@dataclass
class Perplexity:
    """Result of :func:`perplexity`."""

    sentences: int
    words: int
    oovs: int
    logprob: float  # log10, OOVs excluded, </s> included
    logprob_with_oov: float  # log10, OOVs scored as <unk>

    @property
    def oov_rate(self) -> float:
        return self.oovs / self.words if self.words else 0.0

    @property
    def perplexity(self) -> float:
        n = self.words - self.oovs + self.sentences
        return 10.0 ** (-self.logprob / n) if n else float("nan")

    @property
    def perplexity_with_oov(self) -> float:
        n = self.words + self.sentences
        return 10.0 ** (-self.logprob_with_oov / n) if n else float("nan")


def load_kenlm(path: str | os.PathLike):
    """Load an ARPA or kenlm binary model; a missing or unreadable file raises
    :class:`InputError`."""
    import kenlm

    name = display_name(path)
    p = Path(path)
    if not p.exists():
        raise InputError(f"{name}: no such file")
    if p.is_dir():
        raise InputError(f"{name}: is a directory, expected an ARPA or kenlm binary file")
    config = kenlm.Config()
    config.show_progress = False
    try:
        with _silenced_stderr_fd():  # kenlm's C++ code prints loading chatter on fd 2
            return kenlm.Model(str(p), config)
    except (OSError, RuntimeError, ValueError) as e:
        if "at least a bigram" in str(e):
            # kenlm loads only orders >= 2; a unigram ARPA is read in Python instead.
            return _UnigramModel(read_arpa(p))
        msg = " ".join(str(e).split())
        m = re.search(r"threw \w+\.\s*(.*?)\)*$", msg)
        reason = m.group(1) if m else msg
        raise InputError(f"{name}: kenlm cannot load this model ({reason}); is it an ARPA or kenlm binary file?") from None


@contextmanager
def _silenced_stderr_fd() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration of the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def perplexity(lm_path: str | os.PathLike, text: str | os.PathLike, model=None) -> Perplexity:
    """Perplexity of the sentences (lines) of ``text`` (``-`` = stdin) under
    the model at ``lm_path`` (or an already loaded kenlm ``model`` or
    :class:`asrkit.lm.neural.NeuralLM`). A directory is a neural LM exp dir."""
    if model is None and Path(lm_path).is_dir():
        from asrkit.lm.neural import NeuralLM

        model = NeuralLM.load(lm_path, device="auto")
    if model is not None and not hasattr(model, "full_scores"):
        return neural_perplexity(model, text)
    m = model if model is not None else load_kenlm(lm_path)
    sentences = words = oovs = 0
    lp = lp_oov = 0.0
    for _, tokens in iter_sentences(text):
        sentences += 1
        words += len(tokens)
        for prob, _, oov in m.full_scores(" ".join(tokens), bos=True, eos=True):
            lp_oov += prob
            if oov:
                oovs += 1
            else:
                lp += prob
    return Perplexity(sentences=sentences, words=words, oovs=oovs, logprob=lp, logprob_with_oov=lp_oov)


#: sentences scored per batch by :func:`neural_perplexity`
NEURAL_CHUNK = 256


def neural_perplexity(lm, text: str | os.PathLike) -> Perplexity:
    """Perplexity of the sentences of ``text`` under a :class:`asrkit.lm.neural.NeuralLM`
    (the counting of the module docstring), scored in batches of sentences."""
    sentences = words = oovs = 0
    lp = lp_oov = 0.0
    ln10 = math.log(10.0)
    chunk: list[list[str]] = []

    def flush() -> None:
        nonlocal oovs, lp, lp_oov
        scores = lm.token_scores([lm.sentence_ids(tokens) for tokens in chunk])  # natural log, + </s>
        for tokens, s in zip(chunk, scores):
            total = float(s.sum())
            lp_oov += total / ln10
            if lm.kind == "word":  # one unit per word: drop the OOVs' own terms
                missed = [i for i, w in enumerate(tokens) if lm.is_oov(w)]
                oovs += len(missed)
                total -= float(s[missed].sum()) if missed else 0.0
            lp += total / ln10
        chunk.clear()

    for _, tokens in iter_sentences(text):
        sentences += 1
        words += len(tokens)
        chunk.append(tokens)
        if len(chunk) >= NEURAL_CHUNK:
            flush()
    if chunk:
        flush()
    return Perplexity(sentences=sentences, words=words, oovs=oovs, logprob=lp, logprob_with_oov=lp_oov)
