"""Lexicon-constrained CTC beam search with a word n-gram LM (flashlight-text).

The search of flashlight's ``LexiconDecoder`` (the decoder behind
:func:`torchaudio.models.decoder.ctc_decoder`), used directly: hypotheses
only ever spell words of a lexicon, a word's LM score is added when its last
unit is emitted (and smeared over its prefix in the trie, so partial words are
ranked by their best completion), and a KenLM model (ARPA or kenlm binary)
scores word sequences.

Spellings per unit kind:

- ``phone``: the word's pronunciations in a phone :class:`~asrkit.data.lexicon.Lexicon`
  (the model's tokenizer lexicon -- the shipped CMU dict plus any training
  lexicon -- or ``--lexicon FILE``); phone models decode to words this way.
  The "silence" token of the search is the blank (phone CTC targets have no
  ``sil``).
- ``char``: the word's letters; the ``|`` unit between words is the search's
  silence token (optional between words, never inside one).
- ``bpe``: the word's sentencepiece pieces (``▁the``, or ``▁c at``); silence
  is the blank.

Scores are in natural log like the rest of :mod:`asrkit.decode.beam`: a
hypothesis ``W`` is ranked by ``log P_ctc(best path of W) + lm_weight * ln
P_lm(W) + word_bonus * |W|`` (flashlight's KenLM wrapper works in log10, so the
weight handed to it is ``lm_weight * ln 10``). Unlike pyctcdecode (prefix
probabilities summed over paths), the acoustic score is the Viterbi (max)
path's.
"""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence

import torch
from torch import Tensor

from asrkit.data.units import BLANK, UnitMap
from asrkit.errors import DataError, InputError, UsageError
from asrkit.io import display_name

__all__ = ["FlashlightSearch", "lexicon_spellings"]

#: hypotheses whose score is this far (log) below the best of a frame are dropped
#: (12 and 8 units, against 15 and 16 before: the same dev WER on the tiny char and phone models with
#: weights tuned for each, at 1.6x the speed; docs/benchmarks.md "Search only")
BEAM_THRESHOLD = 12.0
#: unit classes tried per frame (the best ones); the rest are not expanded
BEAM_SIZE_TOKEN = 8
#: Added when the search consumes its silence token (the blank for phone/bpe models, '|' for char):
#: tiny, but it keeps a word ending through a spelling's trailing blank/'|' from tying exactly with
#: the same word ended one frame earlier; flashlight orders exact ties by memory address, so ties
#: would make results change from run to run.
SIL_SCORE = -1e-3
#: The LM weight used in place of 0: with no LM score at all, different word sequences with the
#: same units ("into" / "in to") tie exactly and flashlight orders exact ties by memory address,
#: so the same search gave other words from run to run. This weight only orders such ties (by
#: the LM); it is far below any score difference the search otherwise acts on.
TIE_LM_WEIGHT = 1e-4
#: The word bonus used in place of 0. A word is completed either on its last unit or on the
#: blank/'|' after it (both spellings are in the trie); with no word bonus the two hypotheses
#: tie exactly whenever the LM gives the word its unigram score (a backed-off n-gram), and
#: flashlight orders exact ties by memory address, so the beam kept other hypotheses from run
#: to run. This bonus only orders such ties.
TIE_WORD_BONUS = -1e-6
#: Words a trie node holds (flashlight's ``kTrieMaxLabel``): a word inserted at a node that
#: already has this many is silently dropped. With a large vocabulary more words than that share a
#: spelling (y uw: you, u, ewe, hugh, uwe, yew, yoo, yu, yue), so each spelling keeps the ones the
#: LM's unigrams like best; in alphabetical order "you" was the one dropped.
TRIE_MAX_WORDS = 6
#: Size of the tie-break added to each log-probability the search sees (see :class:`_TieBreak`).
TIE_JITTER = 1e-4
_LN10 = math.log(10.0)
_MAX_LISTED = 10


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(repr(x) for x in items[:_MAX_LISTED])
    return shown + (f" (and {len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def lexicon_spellings(units: UnitMap, words: Sequence[str], lexicon=None,
                      lexicon_name: str = "the lexicon") -> dict[str, list[list[int]]]:
    """Unit-id spellings of ``words`` for the search's trie.

    phone: every pronunciation in ``lexicon`` (words without one are left out);
    char: the letters (words with letters the units lack are left out); bpe:
    the tokenizer's pieces. A lexicon that spells words with phones the model
    does not have is a :class:`DataError` naming them.
    """
    index = {u: i for i, u in enumerate(units.units)}
    out: dict[str, list[list[int]]] = {}
    if units.kind == "phone":
        if lexicon is None:
            raise UsageError("a phone model needs a lexicon (phone spellings of the words) to decode to words")
        bad_phones: set[str] = set()
        for w in words:
            prons = lexicon.prons(w) if w in lexicon else []
            spellings = []
            for p in prons:
                missing = [ph for ph in p if ph not in index or ph in (BLANK, "sil")]
                if missing:
                    bad_phones.update(missing)
                    continue
                spellings.append([index[ph] for ph in p])
            if spellings:
                out[w] = spellings
        if bad_phones and not out:
            raise DataError(f"{lexicon_name}: spells words with phones the model's units ({units.source}) lack: "
                            f"{_listed(sorted(bad_phones))}")
        from asrkit.workers import in_worker

        if bad_phones and not in_worker():  # a worker's caller has warned already
            from asrkit import log
            log.warn(f"{lexicon_name}: pronunciations with phones the model lacks were left out: "
                     f"{_listed(sorted(bad_phones))}")
    elif units.kind == "char":
        for w in words:
            if all(c in index and c != "|" for c in w) and w:
                out[w] = [[index[c] for c in w]]
    elif units.kind == "bpe":
        for w in words:
            ids = units.tokenizer.encode([w])
            if ids and all(units.units[i] != "<unk>" for i in ids):
                out[w] = [list(ids)]
    else:
        raise UsageError(f"{units.source}: {units.kind} units are not CTC units")
    return out


def _unit_hash(n: int, salt: int) -> "np.ndarray":
    """``n`` fixed numbers in [0, 1), the i-th a function of ``i`` and ``salt``
    only (splitmix64)."""
    import numpy as np

    with np.errstate(over="ignore"):
        x = np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class _TieBreak:
    """What the search sees instead of the log-probabilities: each frame's
    log-probabilities less the frame's best (the same shift for every
    hypothesis, so nothing is decided differently), plus ``TIE_JITTER *
    u(t mod 256, c)``, ``u`` fixed pseudo-random numbers in [0, 1).

    flashlight keeps the beam with ``std::nth_element`` over hypotheses
    ordered by the *addresses* of their LM states and trie nodes
    (``LMState::compare`` compares pointers). When two hypotheses' scores
    tie exactly -- a random or saturated model gives several units the same
    log-probability, and a small LM gives their words the same score --
    which one stays in the beam then depends on where the allocator put
    those objects, and the words change from run to run (another process,
    another utterance decoded first). With the tie-break two different unit
    paths no longer sum to the same score. Shifting each frame's best to 0
    first keeps the competing values small, so that a float32 can hold the
    tie-break's differences. The scores reported are the path's own
    log-probabilities (the tie-break taken back out)."""

    BLOCK = 256  # frames of the table (reused cyclically for longer inputs)

    def __init__(self, num_classes: int):
        u = _unit_hash(self.BLOCK * num_classes, 0x5EED).reshape(self.BLOCK, num_classes)
        self._table = torch.from_numpy(u * TIE_JITTER).to(torch.float32)  # (BLOCK, C)

    def __call__(self, em: Tensor) -> Tensor:
        """``em`` (T, C) float32 -> what the search sees, (T, C) float32, contiguous."""
        T = em.shape[0]
        out = em - em.max(dim=1, keepdim=True).values if T else em.clone()
        for start in range(0, T, self.BLOCK):
            n = min(self.BLOCK, T - start)
            out[start:start + n] += self._table[:n]
        return out.contiguous()


class FlashlightSearch:
    """One lexicon decoder: trie of spellings + KenLM, reused for every utterance.

    Args:
        units: the model's units (phone, char or bpe).
        lm: ARPA or kenlm binary word LM.
        words: the vocabulary (LM unigrams, or the lexicon's words).
        lexicon: phone :class:`Lexicon` (phone units only).
        beam, lm_weight, word_bonus, nbest: as in :class:`~asrkit.decode.beam.BeamDecoder`.
    """

    def __init__(self, units: UnitMap, lm: str | os.PathLike, words: Sequence[str], *, lexicon=None,
                 lexicon_name: str = "the lexicon", beam: int = 20, lm_weight: float = 0.5,
                 word_bonus: float = 0.0, nbest: Optional[int] = None,
                 beam_threshold: float = BEAM_THRESHOLD, beam_size_token: int = BEAM_SIZE_TOKEN):
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        self.units = units
        self.beam = int(beam)
        self.nbest = nbest
        self.beam_threshold = float(beam_threshold)
        self.beam_size_token = min(int(beam_size_token), units.num_classes)
        spellings = lexicon_spellings(units, words, lexicon, lexicon_name)
        lm_name = display_name(lm)
        if not spellings:
            raise DataError(f"{lm_name}: none of its {len(words)} words can be spelled with the model's "
                            f"{units.kind} units ({units.source})" + (f" and {lexicon_name}" if lexicon else ""))
        self.words = sorted(spellings)
        self.spellings = spellings
        self.blank = int(units.blank_id or 0)
        self.sil = units.units.index("|") if units.kind == "char" and "|" in units.units else self.blank
        self.word_dict = Dictionary()
        for w in self.words:
            self.word_dict.add_entry(w)
        self.word_dict.add_entry("<unk>")
        self.unk = self.word_dict.get_index("<unk>")
        try:
            self.lm = KenLM(str(lm), self.word_dict)
        except Exception as e:  # kenlm's own message is long and multi-line
            raise InputError(f"{lm_name}: kenlm cannot load it ({str(e).splitlines()[0] if str(e) else e})") from None
        start = self.lm.start(False)
        self._unigram = {w: self.lm.score(start, self.word_dict.get_index(w))[1] for w in self.words}
        self.trie = self._make_trie(self.spellings)
        self._alike = self._lm_alike_homophones()
        self._lexicon_trie = None  # made when an LM weight of 0 is first asked for
        self._tie_break = _TieBreak(units.num_classes)
        self.set_weights(lm_weight, word_bonus)

    def _make_trie(self, spellings: dict[str, list[list[int]]]):
        """A trie of the words' spellings, each with its unigram score (for smearing); a
        spelling shared by more than :data:`TRIE_MAX_WORDS` words keeps the most likely ones."""
        from flashlight.lib.text.decoder import SmearingMode, Trie

        trie = Trie(self.units.num_classes, self.sil)
        # flashlight completes a word on its last unit's first frame and cannot stay on that unit
        # afterwards (only on the silence token), so a last unit held for several frames would
        # have to become more words. Each spelling is also inserted followed by the blank (and, for
        # char units, by '|'): the word then ends at the first frame after its last unit's run.
        enders = sorted({self.blank, self.sil})
        held: dict[tuple[int, ...], int] = {}
        for w in sorted(spellings, key=lambda w: (-self._unigram[w], w)):  # most likely first
            idx, score = self.word_dict.get_index(w), self._unigram[w]
            for sp in spellings[w]:
                key = tuple(sp)
                if held.get(key, 0) >= TRIE_MAX_WORDS:
                    continue
                held[key] = held.get(key, 0) + 1
                trie.insert(sp, idx, score)
                for end in enders:
                    trie.insert(sp + [end], idx, score)
        trie.smear(SmearingMode.MAX)
        return trie

    def _lm_alike_homophones(self) -> dict[str, list[str]]:
        """word -> the other words with the same spellings and the same unigram score, sorted.

        Such words (two names seen equally often) tie exactly wherever the LM backs off to
        unigrams, and no tie-break on the log-probabilities can part them (their paths are the
        same): which of them stays in the beam is flashlight's choice by memory address. The
        search's hypotheses are rewritten to the first in alphabetical order of the words that
        give them the same LM score (:meth:`_canonical`)."""
        groups: dict[tuple, list[str]] = {}
        for w in self.words:
            key = (tuple(sorted(tuple(sp) for sp in self.spellings[w])), self._unigram[w])
            groups.setdefault(key, []).append(w)
        return {w: sorted(g) for g in groups.values() if len(g) > 1 for w in g}

    def _lm_score(self, words: Sequence[str]) -> float:
        state, total = self.lm.start(False), 0.0
        for w in words:
            state, score = self.lm.score(state, self.word_dict.get_index(w))
            total += score
        return total + self.lm.finish(state)[1]

    def _canonical(self, words: tuple[str, ...]) -> tuple[str, ...]:
        """``words`` with each word that has LM-alike homophones replaced by the first of them
        (alphabetically) that leaves the sentence's LM score exactly the same: the same
        hypothesis whichever of them flashlight kept."""
        if not self._alike or not any(w in self._alike for w in words):
            return words
        out = list(words)
        base = self._lm_score(out)
        for i, w in enumerate(words):
            for alt in self._alike.get(w, ()):
                if alt >= w:
                    break
                trial = out[:i] + [alt] + out[i + 1:]
                if self._lm_score(trial) == base:
                    out = trial
                    break
        return tuple(out)

    def _homophone_free_trie(self):
        """The trie for an LM weight of 0: one word per spelling, the one the LM's unigrams
        like best (then the first in alphabetical order). Homophones (to / two / too) would
        otherwise tie whenever the LM (at :data:`TIE_LM_WEIGHT`) scores them alike; a search
        with no LM picks the most frequent word of a pronunciation, always the same one."""
        if self._lexicon_trie is None:
            best: dict[tuple[int, ...], str] = {}
            for w in sorted(self.words, key=lambda w: (-self._unigram[w], w)):
                for sp in self.spellings[w]:
                    best.setdefault(tuple(sp), w)
            kept: dict[str, list[list[int]]] = {}
            for sp, w in best.items():
                kept.setdefault(w, []).append(list(sp))
            self._lexicon_trie = self._make_trie(kept)
        return self._lexicon_trie

    def set_weights(self, lm_weight: float, word_bonus: float) -> None:
        """New shallow-fusion weights (the trie and LM are kept)."""
        from flashlight.lib.text.decoder import CriterionType, LexiconDecoder, LexiconDecoderOptions

        self.lm_weight = float(lm_weight)
        self.word_bonus = float(word_bonus)
        opts = LexiconDecoderOptions(
            beam_size=self.beam, beam_size_token=self.beam_size_token, beam_threshold=self.beam_threshold,
            lm_weight=(self.lm_weight or TIE_LM_WEIGHT) * _LN10, word_score=self.word_bonus or TIE_WORD_BONUS,
            unk_score=-math.inf, sil_score=SIL_SCORE,
            log_add=False, criterion_type=CriterionType.CTC)
        trie = self.trie if self.lm_weight != 0 else self._homophone_free_trie()
        self.decoder = LexiconDecoder(opts, trie, self.lm, self.sil, self.blank, self.unk, [], False)

    def search(self, log_probs: Tensor) -> list[tuple[list[str], list[int], float, float, list[tuple[int, int]]]]:
        """``[(words, unit ids, score, am_score, word frames), ...]`` best first
        (``nbest`` of them, at least one) for one utterance's ``(T', C)``
        log-probabilities; word frames are ``(start, end)`` output frames of
        each word on the search's own path (end exclusive)."""
        import numpy as np

        em = log_probs.detach().to(torch.float32).cpu().contiguous()
        T, N = em.shape
        jittered = self._tie_break(em)  # (T, N)
        results = self.decoder.decode(jittered.data_ptr(), T, N)
        if not results:
            return [([], [], -math.inf, -math.inf, [])]
        out = []
        seen: set[tuple[str, ...]] = set()
        em_np, jit_np = em.numpy(), jittered.numpy()
        want = self.nbest or 1
        rows = np.arange(T)
        # best first; equal scores (what the tie-break cannot part: homophones the LM scores alike)
        # in the order of their words and paths, not flashlight's (memory addresses). Only the
        # hypotheses up to the wanted ones are turned into words (the beam holds up to --beam).
        scores = [float(r.score) for r in results]
        order = sorted(range(len(results)), key=lambda i: -scores[i])
        k = 0
        while k < len(order) and len(out) < want:
            tie = k + 1
            while tie < len(order) and scores[order[tie]] == scores[order[k]]:
                tie += 1
            group = [(self._canonical(tuple(self.word_dict.get_entry(x) for x in results[i].words if x >= 0)),
                      list(results[i].tokens), results[i]) for i in order[k:tie]]
            group.sort(key=lambda g: (g[0], g[1]))
            k = tie
            for words, all_tokens, r in group:
                if words in seen:  # different paths of the same words: keep the best
                    continue
                seen.add(words)
                tokens = all_tokens[1:-1]  # T + 2: start/end states
                ids, spans = self._path(tokens, list(r.words)[1:-1])
                # the scores without the tie-break: the path's own log-probabilities
                if T:
                    tok = np.asarray(tokens, dtype=np.int64)
                    am = float(em_np[rows, tok].sum(dtype=np.float64))
                    am_jit = float(jit_np[rows, tok].sum(dtype=np.float64))
                else:
                    am = am_jit = 0.0
                out.append((list(words), ids, float(r.score) - (am_jit - am), am, spans))
                if len(out) >= want:
                    break
        return out

    def _path(self, tokens: list[int], word_at: list[int]) -> tuple[list[int], list[tuple[int, int]]]:
        """Unit ids and word spans of one path: ``tokens[t]`` is frame ``t``'s
        class, ``word_at[t] >= 0`` where a word was completed (array work per frame, a
        Python step per word)."""
        import numpy as np

        tok = np.asarray(tokens, dtype=np.int64)  # (T,)
        if tok.size == 0:
            return [], []
        change = np.ones(tok.shape, dtype=bool)
        change[1:] = tok[1:] != tok[:-1]
        seg_start = np.flatnonzero(change)  # runs of one class
        seg_end = np.append(seg_start[1:], tok.size)
        seg_tok = tok[seg_start]
        unit = (seg_tok >= 0) & (seg_tok != self.blank)  # the non-blank runs are the path's units
        run_tok, run_start, run_end = seg_tok[unit], seg_start[unit], seg_end[unit]
        started = np.zeros(tok.shape, dtype=np.int64)
        started[run_start] = 1
        run_at = np.cumsum(started) - 1  # frame -> index of the latest run started at or before it
        spans: list[tuple[int, int]] = []
        first = 0  # the first run of the next word
        for t in np.flatnonzero(np.asarray(word_at) >= 0).tolist():
            last = int(run_at[t])
            if last < first:
                continue
            own = [k for k in range(first, last + 1) if run_tok[k] != self.sil]
            if own:
                spans.append((int(run_start[own[0]]), int(run_end[own[-1]])))
            first = last + 1
        return run_tok.tolist(), spans
