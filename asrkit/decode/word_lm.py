"""Word n-gram shallow fusion for a unit-by-unit (attention) search.

An attention decoder emits char or bpe units one at a time; a word n-gram LM
(an ARPA file from ``asrkit lm build`` or a kenlm binary) scores words. The
:class:`WordLM` keeps, per hypothesis, the kenlm state of the words completed
so far and the word being spelled (:class:`WordState`). A word's score is
added when the word is complete:

- char units: at ``|`` (the space between words) or at ``<eos>``;
- bpe units: at a piece starting with ``▁`` (the next word starts) or at ``<eos>``;

and ``<eos>`` adds ``</s>`` after the last word. Scores are natural logs
(kenlm's log10 x ln 10), the same convention as ``asrkit decode``'s CTC LM
search: the search adds ``lm_weight * ln P_lm``. Phone units have no words to
score: :class:`WordLM` refuses them.

Words the LM does not know get kenlm's ``<unk>`` probability plus
``oov_penalty`` (natural log, default :data:`DEFAULT_OOV_PENALTY`). Without the
penalty a search scored at word ends learns to drop the spaces: one long
unknown "word" (one ``<unk>`` probability) costs less than the several known
words it swallows. The penalty is paid as soon as the word being spelled stops
being the beginning of any word of the LM (an ARPA's unigrams), so such a
hypothesis falls in the beam before it finishes the word, and at the word's
end for a word that is only a prefix of known words. With a kenlm binary
(no word list) it is paid at the word's end.

    lm = WordLM("exp/lm3.arpa", units)
    st = lm.initial()
    gain = lm.score(st, token)          # ln P of the word (and </s>) that ``token`` completes, else 0.0
    st = lm.advance(st, token)          # the state after ``token``

The search uses it through the row interface of :mod:`asrkit.decode.fusion`
(``init_rows`` / ``score_rows`` / ``select_rows``: a list of states, one per
hypothesis row, scored in Python where a candidate may complete a word).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

from asrkit.data.units import BLANK, UnitMap
from asrkit.errors import DataError, UsageError
from asrkit.io import display_name

__all__ = ["DEFAULT_OOV_PENALTY", "WordLM", "WordState", "check_lm_weight"]

_LN10 = math.log(10.0)
#: natural-log score added (before the LM weight) for every word the LM does not know
DEFAULT_OOV_PENALTY = -20.0
# what a unit does to the word being spelled
_EOS, _SPACE, _START, _PIECE = range(4)


class WordState(NamedTuple):
    """One hypothesis' LM side: the kenlm state after its completed words, and the word being spelled."""

    context: object  # kenlm.State
    word: str


class WordLM:
    """A kenlm word n-gram scoring the words of char/bpe unit sequences.

    Args:
        lm: ARPA file or kenlm binary (order >= 2).
        units: the model's :class:`UnitMap`; id 0 (``<blank>``) is the search's ``<eos>``.
        eos: the end-of-sentence id (0 for the attention models).

    Raises :class:`UsageError` for phone units, :class:`InputError` for a
    missing or unreadable LM, :class:`DataError` for a unigram LM.
    """

    def __init__(self, lm: str | os.PathLike, units: UnitMap, eos: int = 0,
                 oov_penalty: float = DEFAULT_OOV_PENALTY):
        import kenlm

        from asrkit.decode.backends import is_kenlm_binary, read_lm_words
        from asrkit.lm import load_kenlm

        if units.kind not in ("char", "bpe"):
            raise UsageError(f"--lm: a word LM scores words, and this attention model's units are {units.kind}s; "
                             f"decode it without --lm (its output is {units.kind}s)")
        self.path = Path(lm)
        self.units = units
        self.eos = int(eos)
        name = display_name(lm)
        model = load_kenlm(lm)  # InputError for missing / unreadable / not an LM
        if not isinstance(model, kenlm.Model):
            raise DataError(f"{name}: is a unigram LM; shallow fusion needs order >= 2 "
                            f"(asrkit lm build TEXT --order 3)")
        self.model = model
        self._kenlm = kenlm
        self.oov_penalty = float(oov_penalty)
        #: every beginning of a word of the LM ('' included); None for a binary (no word list)
        self.prefixes: set[str] | None = None
        if not is_kenlm_binary(lm):
            self.prefixes = {""}
            for w in read_lm_words(lm):
                self.prefixes.update(w[:k] for k in range(1, len(w) + 1))
        self.kind: list[int] = []
        self.text: list[str] = []
        for i, u in enumerate(units.units):
            if i == self.eos:
                self.kind.append(_EOS)
                self.text.append("")
            elif u == BLANK:  # pragma: no cover - the blank is id 0, the eos
                self.kind.append(_PIECE)
                self.text.append("")
            elif units.kind == "char" and u == "|":
                self.kind.append(_SPACE)
                self.text.append("")
            elif units.kind == "bpe" and u.startswith("▁"):
                self.kind.append(_START)
                self.text.append(u[1:])
            else:
                self.kind.append(_PIECE)
                self.text.append(u)
        #: ids whose :meth:`score` may be non-zero: those that complete a word (``|`` / ``▁``
        #: pieces, eos), and with a word list every unit (any may leave the vocabulary)
        self.scored_ids: list[int] = [i for i, k in enumerate(self.kind)
                                      if k in (_EOS, _SPACE, _START) or self.prefixes is not None]
        self._cache: dict[tuple[object, str], tuple[float, object]] = {}
        self._scored_t = None  # scored_ids as a tensor on the search's device

    def initial(self) -> WordState:
        """The state before the first unit: ``<s>``, no word started."""
        st = self._kenlm.State()
        self.model.BeginSentenceWrite(st)
        return WordState(st, "")

    def _word(self, context, word: str) -> tuple[float, object]:
        """log10 P(word | context) and the state after it (cached)."""
        key = (context, word)
        hit = self._cache.get(key)
        if hit is None:
            out = self._kenlm.State()
            hit = (self.model.BaseScore(context, word, out), out)
            self._cache[key] = hit
        return hit

    def _leaves_vocabulary(self, word: str, more: str) -> bool:
        """True when ``word + more`` is no beginning of an LM word but ``word`` was."""
        return self.prefixes is not None and word in self.prefixes and word + more not in self.prefixes

    def _oov_at_end(self, word: str) -> bool:
        """True when the finished ``word`` is unknown and its penalty was not paid on the way."""
        if word in self.model:
            return False
        return self.prefixes is None or word in self.prefixes

    def score(self, state: WordState, token: int) -> float:
        """Natural-log LM probability of what ``token`` completes after ``state``: the
        word being spelled (``|``, a ``▁`` piece, eos) and ``</s>`` (eos); plus the
        OOV penalty where ``token`` makes or ends an unknown word; 0.0 otherwise."""
        kind = self.kind[token]
        if kind == _PIECE:
            return self.oov_penalty if self._leaves_vocabulary(state.word, self.text[token]) else 0.0
        gain = self.oov_penalty if kind == _START and self._leaves_vocabulary("", self.text[token]) else 0.0
        if kind != _EOS and not state.word:
            return gain
        total, context = 0.0, state.context
        if state.word:
            total, context = self._word(context, state.word)
            if self._oov_at_end(state.word):
                gain += self.oov_penalty
        if kind == _EOS:
            total += self._word(context, "</s>")[0]
        return total * _LN10 + gain

    def advance(self, state: WordState, token: int) -> WordState:
        """The state after ``token`` (not eos: a hypothesis ends there)."""
        kind = self.kind[token]
        if kind == _PIECE:
            return WordState(state.context, state.word + self.text[token])
        context = self._word(state.context, state.word)[1] if state.word else state.context
        return WordState(context, self.text[token])  # '|': '', '▁x': 'x'

    # -- the search's row interface (asrkit.decode.fusion.FusionLM)

    def init_rows(self, n: int, device=None) -> list[WordState]:
        """``n`` hypotheses after ``<s>``."""
        return [self.initial() for _ in range(n)]

    def score_rows(self, rows: list[WordState], cand):
        """``cand (R, K)`` ids -> ``(R, K)`` float32 :meth:`score` of each (0 where no word can
        end or leave the vocabulary), on ``cand``'s device."""
        import torch

        R, K = cand.shape
        gains = torch.zeros(R, K)
        if self._scored_t is None or self._scored_t.device != cand.device:
            self._scored_t = torch.tensor(self.scored_ids, device=cand.device)
        cand_l = cand.tolist()
        for r, k in torch.isin(cand, self._scored_t).nonzero().tolist():
            gains[r, k] = self.score(rows[r], cand_l[r][k])
        return gains.to(cand.device)

    def select_rows(self, rows: list[WordState], idx, tokens) -> list[WordState]:
        """Rows ``idx (R',)``, each after its token of ``tokens (R',)`` (:meth:`advance`)."""
        return [self.advance(rows[p], t) for p, t in zip(idx.tolist(), tokens.tolist())]

    def words_score(self, words: list[str], eos: bool = True) -> float:
        """Natural-log LM probability of a word sequence from ``<s>`` (and ``</s>`` with
        ``eos``), with the OOV penalty of each unknown word: what the search adds up."""
        st = self.initial()
        total, context = 0.0, st.context
        for w in words:
            lp, context = self._word(context, w)
            total += lp
        if eos:
            total += self._word(context, "</s>")[0]
        return total * _LN10 + self.oov_penalty * sum(w not in self.model for w in words)

    def close(self) -> None:
        self._cache.clear()


def check_lm_weight(lm_weight: float, option: str = "--lm-weight") -> float:
    """``lm_weight`` when finite and >= 0, else :class:`UsageError`."""
    if not math.isfinite(lm_weight) or lm_weight < 0:
        raise UsageError(f"{option} must be a finite number >= 0, got {lm_weight}")
    return float(lm_weight)

