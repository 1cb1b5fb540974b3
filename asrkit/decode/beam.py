"""CTC beam search, with or without a word n-gram LM.

    from asrkit.decode import load_exp, beam_decode, BeamDecoder
    exp = load_exp("exp/ctc", device="cpu")
    with BeamDecoder(exp.units, beam=20, lm="exp/lm3.arpa", lm_weight=0.5, word_bonus=1.5, nbest=5) as dec:
        for hyp in beam_decode(exp, FeatureStore("feats/test"), dec):
            print(hyp.utt, hyp.text, hyp.score, hyp.extra["nbest"])

Three searches behind one :class:`BeamDecoder` (the backend is picked by
:func:`asrkit.decode.backends.resolve_backend`):

- **flashlight** (the default with an LM, any CTC units): flashlight's
  lexicon-constrained search (:mod:`asrkit.decode.flashlight`); phone models
  decode to words through their lexicon.
- **pyctcdecode** (char and bpe models): pyctcdecode's CTC prefix beam search
  fused with a kenlm word n-gram model (shallow fusion). The decoder's
  alphabet is built from the model's units: ``<blank>`` -> the CTC blank,
  ``|`` (char) -> the space between words, sentencepiece ``▁`` pieces (bpe)
  start a word, ``<unk>`` -> pyctcdecode's unknown token. The word list that
  guides partial words is the ARPA file's unigrams (``<s>``, ``</s>`` and
  ``<unk>`` left out). A hypothesis ``W`` is ranked by
  ``log P_ctc(W) + lm_weight * ln P_lm(W </s>) + word_bonus * |W|``
  (natural log; words missing from the LM get an extra -10).
- **plain** (without an LM, any unit kind): the prefix beam search of
  :func:`asrkit.nn.search.ctc_prefix_beam_search_nbest`, ranked by
  ``log P_ctc`` summed over the alignments kept in the beam.

The beam is at most :data:`MAX_BEAM` wide (a warning above
:data:`WARN_BEAM`); every backend keeps memory proportional to it (the
flashlight search also caps the units expanded per frame, ``beam_size_token``,
at the number of classes).

Scores in a :class:`Hypothesis`: ``score`` is the ranking score above;
``extra["am_score"]`` the CTC (acoustic) part; with ``nbest=N``
``extra["nbest"]`` lists the ``nbest`` best ``{"hyp", "score", "am_score"}``,
best first (fewer when the beam holds fewer distinct hypotheses).

:func:`decode_store` / :func:`search_outputs` run the search (or greedy) over
a model's outputs, in worker processes with ``jobs > 1``
(:mod:`asrkit.workers`); saved emissions are read and written by
:mod:`asrkit.decode.emissions`.
"""
from __future__ import annotations

import logging
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch

from asrkit.data.units import BLANK, UnitMap
from asrkit.decode.backends import is_kenlm_binary, read_lm_words, read_word_list, resolve_backend
from asrkit.decode.emissions import ModelOutput, check_emissions, iter_outputs, save_emissions
from asrkit.decode.output import Hypothesis
from asrkit.workers import check_jobs, in_worker, worker_pool
from asrkit.errors import DataError, InputError, UsageError
from asrkit.io import display_name

__all__ = [
    "DEFAULT_BEAM", "DEFAULT_BLANK_SKIP", "DEFAULT_LM_WEIGHT", "DEFAULT_WORD_BONUS", "MAX_BEAM",
    "DEFAULT_WEIGHTS", "WARN_BEAM", "BeamDecoder", "beam_decode", "beam_hypotheses", "check_beam", "check_pruning",
    "decode_emissions", "decode_store", "default_weights", "search_outputs",
]

#: Beam width when ``--lm`` or ``--nbest`` is given without ``--beam``.
DEFAULT_BEAM = 20
#: Widest beam accepted: search time and memory grow with the beam, and past
#: a few hundred hypotheses the best one does not change any more.
MAX_BEAM = 10000
#: A beam wider than this decodes with a warning (slow, no better).
WARN_BEAM = 500
#: Weight of the LM's natural-log probability (pyctcdecode's ``alpha``).
DEFAULT_LM_WEIGHT = 0.5
#: Score added per word (pyctcdecode's ``beta``).
DEFAULT_WORD_BONUS = 1.5
#: ``(lm_weight, word_bonus)`` of an LM search when neither ``--lm-weight``/``--word-bonus`` nor
#: ``EXP/lm_tuning.yaml`` gives them, per backend (docs/decode.md says which tuning runs chose them).
DEFAULT_WEIGHTS: dict[str, tuple[float, float]] = {
    "flashlight": (0.75, -1.0),
    "pyctcdecode": (DEFAULT_LM_WEIGHT, DEFAULT_WORD_BONUS),
}
#: Without an LM, classes more than this far (log) below a frame's best are not expanded.
NO_LM_PRUNE = 10.0
#: ``--blank-skip``: runs of frames whose blank probability is above this are merged into one
#: before the search (:mod:`asrkit.decode.blank_skip`); 1 merges nothing.
DEFAULT_BLANK_SKIP = 1.0

_WARNED_MISSING: set[tuple[str, str]] = set()
_PCD_UNK = "⁇"  # pyctcdecode's unknown token in decoded text
_MAX_LISTED = 10


def default_weights(backend: str) -> tuple[float, float]:
    """The untuned ``(lm_weight, word_bonus)`` of an LM backend (:data:`DEFAULT_WEIGHTS`)."""
    return DEFAULT_WEIGHTS.get(backend, (DEFAULT_LM_WEIGHT, DEFAULT_WORD_BONUS))


def check_beam(beam: int, warn: bool = True) -> int:
    """``beam`` when ``1 <= beam <= MAX_BEAM`` (with ``warn``, a warning
    above :data:`WARN_BEAM`), else :class:`UsageError` naming ``--beam``."""
    if beam < 1:
        raise UsageError(f"--beam must be >= 1, got {beam}")
    if beam > MAX_BEAM:
        raise UsageError(f"--beam {beam} is too wide; at most {MAX_BEAM} (20-100 is usual; wider is slower, "
                         f"not better)")
    if warn and beam > WARN_BEAM and not in_worker():
        from asrkit import log
        log.warn(f"--beam {beam} is wide (search time and memory grow with it); 20-100 is usual")
    return int(beam)


def check_pruning(beam_threshold: Optional[float], beam_size_token: Optional[int], *, with_lm: bool = True,
                  backend: Optional[str] = None) -> None:
    """:class:`UsageError` naming ``--beam-threshold`` / ``--beam-size-token`` unless each is None or
    in range (a finite threshold > 0, at least 1 unit per frame), and, when either is given, the
    search is an LM search (``with_lm``) of flashlight (``backend``; None: not known yet)."""
    if beam_threshold is not None and (not math.isfinite(beam_threshold) or beam_threshold <= 0):
        raise UsageError(f"--beam-threshold must be a finite number > 0 (log score below a frame's best), "
                         f"got {beam_threshold:g}")
    if beam_size_token is not None and beam_size_token < 1:
        raise UsageError(f"--beam-size-token must be >= 1 (units tried per frame), got {beam_size_token}")
    if beam_threshold is None and beam_size_token is None:
        return
    if not with_lm or backend not in (None, "flashlight"):
        flag = "--beam-threshold" if beam_threshold is not None else "--beam-size-token"
        raise UsageError(f"{flag} prunes the flashlight LM search; give --lm LM" + (
            f" (this search is {backend}'s)" if with_lm else ""))


@contextmanager
def _quiet_pyctcdecode() -> Iterator[None]:
    """pyctcdecode logs warnings (small vocabulary, ...) through ``logging``;
    keep them off stderr while the decoder is built and used."""
    logger = logging.getLogger("pyctcdecode")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _alphabet_labels(units: UnitMap) -> list[str]:
    """pyctcdecode labels in unit-id order for char / bpe units."""
    from pyctcdecode.alphabet import UNK_BPE_TOKEN

    labels = []
    for u in units.units:
        if u == BLANK:
            labels.append("")
        elif u == "<unk>":
            labels.append(UNK_BPE_TOKEN if units.kind == "bpe" else _PCD_UNK)
        elif units.kind == "char" and u == "|":
            labels.append(" ")
        else:
            labels.append(u)
    if len(set(labels)) != len(labels):
        dup = sorted({lab for lab in labels if labels.count(lab) > 1})
        raise DataError(f"{units.source}: units {', '.join(repr(d) for d in dup)} clash with the beam "
                        f"decoder's blank/space/unknown symbols")
    return labels


def _check_lm_units(units: UnitMap, words: Sequence[str], lm_name: str) -> None:
    """Every LM word must be spellable with the model's units: an LM whose
    words mostly are not (upper vs lower case, another alphabet) is a
    :class:`DataError` naming the symbols; a few unspellable words a warning."""
    from asrkit import log

    chars: set[str] = set()
    for u in units.units:
        if u in (BLANK, "<unk>") or (units.kind == "char" and u == "|"):
            continue
        chars.update(u.replace("▁", "") if units.kind == "bpe" else u)
    bad_words = [w for w in words if any(c not in chars for c in w)]
    if not bad_words:
        return
    missing = sorted({c for w in bad_words for c in w if c not in chars})
    shown = " ".join(repr(c) for c in missing[:_MAX_LISTED]) + (" ..." if len(missing) > _MAX_LISTED else "")
    if len(bad_words) * 2 > len(words):
        raise DataError(f"{lm_name}: {len(bad_words)} of {len(words)} LM words use symbols the model's "
                        f"{units.kind} units ({units.source}) lack: {shown}; build the LM on text written like "
                        f"the model's training text (same case and alphabet)")
    if not in_worker():  # the caller built its decoder first and warned
        log.warn(f"{lm_name}: {len(bad_words)} of {len(words)} LM words use symbols the model's units lack "
                 f"({shown}); the decoder cannot produce them")


class BeamDecoder:
    """CTC beam search over one utterance's log-probabilities at a time.

    Args:
        units: the model's :class:`UnitMap` (kind phone, char or bpe).
        beam: beam width (hypotheses kept per frame).
        lm: an ARPA word n-gram model (order >= 2), or None for a plain beam.
        lm_weight, word_bonus: shallow-fusion weights (only with ``lm``; None: the backend's
            default, :func:`default_weights`).
        nbest: list this many best hypotheses in ``extra["nbest"]`` (``<= beam``);
            None lists none.
        backend: flashlight, pyctcdecode or plain (None: the default, see
            :func:`~asrkit.decode.backends.resolve_backend`).
        lexicon: the words the LM search may produce (phone units: with their
            pronunciations), replacing the model's lexicon / the ARPA unigrams.
        extra_lexicon: words (phone units: pronunciations) added to the model's
            lexicon / the ARPA unigrams.
        blank_skip: runs of frames whose blank probability is above this are
            merged into their first frame before the search
            (:mod:`asrkit.decode.blank_skip`); 1: none.
        beam_threshold, beam_size_token: the flashlight search's pruning (None: its defaults,
            :data:`asrkit.decode.flashlight.BEAM_THRESHOLD` / ``BEAM_SIZE_TOKEN``).

    A decoder pickles as its settings: unpickled (in a worker process) it
    builds its own search and loads the LM again.

    Raises :class:`UsageError` for bad settings or a phone model with an LM,
    :class:`InputError` for a missing/unreadable LM, :class:`DataError` when
    the LM's words do not fit the units. Call :meth:`close` (or use ``with``)
    to release the LM.
    """

    def __init__(self, units: UnitMap, *, beam: int = DEFAULT_BEAM, lm: Optional[str | os.PathLike] = None,
                 lm_weight: Optional[float] = None, word_bonus: Optional[float] = None,
                 nbest: Optional[int] = None, backend: Optional[str] = None,
                 lexicon: Optional[str | os.PathLike] = None, extra_lexicon: Optional[str | os.PathLike] = None,
                 blank_skip: Optional[float] = None, beam_threshold: Optional[float] = None,
                 beam_size_token: Optional[int] = None):
        from asrkit.decode.blank_skip import check_blank_skip

        beam = check_beam(beam)
        self.blank_skip = check_blank_skip(DEFAULT_BLANK_SKIP if blank_skip is None else blank_skip)
        self.beam_threshold, self.beam_size_token = beam_threshold, beam_size_token
        if nbest is not None and nbest < 1:
            raise UsageError(f"--nbest must be >= 1, got {nbest}")
        if nbest is not None and nbest > beam:
            raise UsageError(f"--nbest {nbest} is larger than --beam {beam}; the beam holds at most {beam} "
                             f"hypotheses")
        if units.kind not in ("phone", "char", "bpe") or units.blank_id is None:
            raise UsageError(f"{units.source}: {units.kind} units are not CTC units; beam search needs a CTC model")
        self.backend = resolve_backend(units.kind, lm is not None, backend)
        if lexicon is not None and lm is None:
            raise UsageError("--lexicon lists the words of an LM search; give the LM with --lm")
        if extra_lexicon is not None and lm is None:
            raise UsageError("--extra-lexicon adds words to an LM search; give the LM with --lm")
        check_pruning(beam_threshold, beam_size_token, with_lm=lm is not None, backend=self.backend)
        self.units = units
        self._unit_set = set(units.units)
        self.beam = int(beam)
        self.nbest = None if nbest is None else int(nbest)
        self.lm_path = None if lm is None else Path(lm)
        self.lexicon_path = None if lexicon is None else Path(lexicon)
        self.extra_lexicon_path = None if extra_lexicon is None else Path(extra_lexicon)
        default_w, default_b = default_weights(self.backend)
        #: which weights are the untuned defaults (not given): ``asrkit decode`` says so
        self.untuned = tuple(name for name, v in (("lm_weight", lm_weight), ("word_bonus", word_bonus)) if v is None)
        lm_weight = default_w if lm_weight is None else lm_weight
        word_bonus = default_b if word_bonus is None else word_bonus
        self._check_weights(lm_weight, word_bonus)
        self.lm_weight = float(lm_weight)
        self.word_bonus = float(word_bonus)
        self._decoder = None  # pyctcdecode
        self._search = None  # flashlight
        if lm is not None:
            if self.backend == "flashlight":
                self._search = self._build_flashlight(Path(lm))
            else:
                self._decoder = self._build_lm_decoder(Path(lm))

    @staticmethod
    def _check_weights(lm_weight: float, word_bonus: float) -> None:
        if not math.isfinite(lm_weight) or lm_weight < 0:
            raise UsageError(f"--lm-weight must be a finite number >= 0, got {lm_weight}")
        if not math.isfinite(word_bonus):
            raise UsageError(f"--word-bonus must be a finite number, got {word_bonus}")

    def set_weights(self, lm_weight: float, word_bonus: float) -> None:
        """New LM weight and word bonus, keeping the loaded LM (what ``asrkit tune`` sweeps)."""
        self._check_weights(lm_weight, word_bonus)
        self.lm_weight, self.word_bonus = float(lm_weight), float(word_bonus)
        if self._search is not None:
            self._search.set_weights(self.lm_weight, self.word_bonus)
        elif self._decoder is not None:
            self._decoder.reset_params(alpha=self.lm_weight, beta=self.word_bonus)

    # -- construction ---------------------------------------------------------

    def _lm_words(self, path: Path) -> tuple[list[str], object, object]:
        """Check the LM (loads in kenlm, order >= 2) and return the search's
        vocabulary, for phone units the lexicon that spells it, and the loaded
        ``kenlm.Model``. The vocabulary is the ``--lexicon`` file's words when
        given, else the ARPA unigrams (a kenlm binary has no readable word
        list: phone models then use the whole lexicon, char/bpe models need
        ``--lexicon``); ``--extra-lexicon`` adds its words (phone units: its
        pronunciations, before the model's)."""
        import kenlm

        from asrkit.lm import load_kenlm

        name = display_name(path)
        model = load_kenlm(path)  # InputError for missing / unreadable / not an LM; stderr kept clean
        if not isinstance(model, kenlm.Model):
            raise DataError(f"{name}: is a unigram LM; the beam decoder needs order >= 2 "
                            f"(asrkit lm build TEXT --order 3)")
        binary = is_kenlm_binary(path)
        lexicon = None
        extra: list[str] = []
        if self.units.kind == "phone":
            from asrkit.data.lexicon import Lexicon

            # InputError when missing / malformed
            lexicon = Lexicon.load(self.lexicon_path) if self.lexicon_path is not None else self.units.tokenizer.lexicon
            if self.extra_lexicon_path is not None:
                lexicon = Lexicon.combine([Lexicon.load(self.extra_lexicon_path), lexicon])
        elif self.extra_lexicon_path is not None:
            extra = read_word_list(self.extra_lexicon_path)
        if self.lexicon_path is not None:
            words = lexicon.words() if lexicon is not None else read_word_list(self.lexicon_path)
        elif not binary:
            words = read_lm_words(path)
        elif lexicon is not None:
            words = lexicon.words()
        else:
            raise InputError(f"{name}: is a kenlm binary, which has no readable word list; give the words with "
                             f"--lexicon FILE (one word per line, or a lexicon), or decode with the ARPA file")
        if extra:
            words = list(dict.fromkeys([*words, *extra]))
        if self.units.kind == "phone" and self.lexicon_path is None and not binary:
            missing = [w for w in words if w not in lexicon]
            key = (str(path.resolve()), self.units.source)
            # once per LM and model in a process (tune builds many), never again in a worker
            if missing and key not in _WARNED_MISSING and not in_worker():
                _WARNED_MISSING.add(key)
                from asrkit import log
                from asrkit.data.lexicon import list_words
                log.warn(f"{name}: {len(missing)} of {len(words)} LM words have no pronunciation in "
                         f"{self.units.source.rsplit('/', 1)[0]}'s lexicon and cannot be decoded: "
                         f"{list_words(missing)} (add them with --extra-lexicon FILE)")
        return list(words), lexicon, model

    def _build_flashlight(self, path: Path):
        from asrkit.decode.flashlight import FlashlightSearch
        from asrkit.lm.ppl import _silenced_stderr_fd

        words, lexicon, model = self._lm_words(path)
        del model  # flashlight loads the file with its own kenlm
        if self.units.kind != "phone":
            _check_lm_units(self.units, words, display_name(self.lexicon_path or path))
        lexicon_name = display_name(self.lexicon_path) if self.lexicon_path else "the model's lexicon"
        if self.extra_lexicon_path is not None:
            lexicon_name = f"{display_name(self.extra_lexicon_path)} + {lexicon_name}"
        pruning = {k: v for k, v in (("beam_threshold", self.beam_threshold),
                                     ("beam_size_token", self.beam_size_token)) if v is not None}
        with _silenced_stderr_fd():  # kenlm's loading chatter
            return FlashlightSearch(self.units, path, words, lexicon=lexicon, lexicon_name=lexicon_name,
                                    beam=self.beam, lm_weight=self.lm_weight, word_bonus=self.word_bonus,
                                    nbest=self.nbest, **pruning)

    def _build_lm_decoder(self, path: Path):
        from pyctcdecode.alphabet import Alphabet
        from pyctcdecode.decoder import BeamSearchDecoderCTC
        from pyctcdecode.language_model import LanguageModel

        words, _, model = self._lm_words(path)
        _check_lm_units(self.units, words, display_name(self.lexicon_path or path))
        labels = _alphabet_labels(self.units)
        with _quiet_pyctcdecode():
            language_model = LanguageModel(model, words, alpha=self.lm_weight, beta=self.word_bonus)
            return BeamSearchDecoderCTC(Alphabet(labels, is_bpe=self.units.kind == "bpe"), language_model)

    def settings(self) -> dict:
        """The keyword arguments that build this decoder again (current weights)."""
        return {"beam": self.beam, "lm": self.lm_path, "lm_weight": self.lm_weight, "word_bonus": self.word_bonus,
                "nbest": self.nbest, "backend": self.backend, "lexicon": self.lexicon_path,
                "extra_lexicon": self.extra_lexicon_path, "blank_skip": self.blank_skip,
                "beam_threshold": self.beam_threshold, "beam_size_token": self.beam_size_token}

    def __reduce__(self):
        return _rebuild_decoder, (self.units, self.settings())

    def close(self) -> None:
        """Release the LM (pyctcdecode keeps it in a class-level registry)."""
        if self._decoder is not None:
            self._decoder.cleanup()
            self._decoder = None
        self._search = None

    def __enter__(self) -> "BeamDecoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def uses_lm(self) -> bool:
        return self.lm_path is not None

    # -- decoding ---------------------------------------------------------------

    def _words(self, text: str) -> list[str]:
        return [("<unk>" if w == _PCD_UNK else w.replace(_PCD_UNK, "<unk>")) for w in text.split()]

    def _spell(self, words: list[str]) -> list[str]:
        """Unit symbols of an LM-decoded word sequence: its spelling in the
        model's units (pyctcdecode does not return the unit path itself)."""
        out: list[str] = []
        for k, w in enumerate(words):
            if self.units.kind == "char":
                if k:
                    out.append("|")
                out.extend(self._char_units(w))
            elif w == "<unk>":
                out.append("<unk>")
            else:
                out.extend(self.units.symbols(self.units.tokenizer.encode([w])))
        return out

    def _char_units(self, word: str) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(word):
            if word.startswith("<unk>", i):
                out.append("<unk>")
                i += len("<unk>")
            else:
                out.append(word[i] if word[i] in self._unit_set else "<unk>")
                i += 1
        return out

    def decode(self, out: ModelOutput) -> Hypothesis:
        """The best hypothesis of one utterance (``extra["nbest"]`` with the
        ``nbest`` best when ``nbest`` is set)."""
        from asrkit.decode.blank_skip import frames_back, skip_blanks

        check_emissions(out)
        spans = None
        log_probs, index = skip_blanks(out.log_probs, int(self.units.blank_id), self.blank_skip)  # (T2, C)
        if out.out_frames == 0:  # nothing to search (pyctcdecode would average an empty array)
            cands = [([], [], 0.0, 0.0)]
        elif self._search is not None:
            found = self._search.search(log_probs)
            cands = [(w, self.units.symbols(ids), sc, am) for w, ids, sc, am, _ in found]
            if len(found[0][4]) == len(found[0][0]):  # the search's own word times, in the model's frames
                spans = frames_back(found[0][4], index)
        elif self._decoder is not None:
            cands = self._decode_lm(log_probs)
        else:
            cands = self._decode_plain(log_probs)
        tokens, units, score, am = cands[0]
        extra: dict = {"am_score": round(am, 4)}
        if self.nbest is not None:
            extra["nbest"] = [{"hyp": " ".join(t), "score": round(s, 4), "am_score": round(a, 4)}
                              for t, _, s, a in cands[:self.nbest]]
        return Hypothesis(utt=out.utt, tokens=tokens, score=score, frames=out.frames, out_frames=out.out_frames,
                          units=units, extra=extra, token_frames=spans)

    def _decode_plain(self, log_probs: torch.Tensor) -> list[tuple[list[str], list[str], float, float]]:
        from asrkit.nn.search import ctc_prefix_beam_search_nbest

        beams = ctc_prefix_beam_search_nbest(log_probs, beam=self.beam, blank=int(self.units.blank_id),
                                             prune=NO_LM_PRUNE)
        return [(self.units.tokens(ids), self.units.symbols(ids), float(s), float(s)) for ids, s in beams]

    def _decode_lm(self, log_probs: torch.Tensor) -> list[tuple[list[str], list[str], float, float]]:
        logits = log_probs.numpy().astype(np.float32, copy=False)  # (T', C)
        with _quiet_pyctcdecode():
            beams = self._decoder.decode_beams(logits, beam_width=self.beam)
        cands = []
        for text, _state, _frames, am_score, score in beams:
            words = self._words(text)
            cands.append((words, self._spell(words), float(score), float(am_score)))
        return cands


def beam_hypotheses(outputs: Iterable[ModelOutput], decoder: BeamDecoder,
                    on_hypothesis: Optional[Callable[[], None]] = None) -> Iterator[Hypothesis]:
    """:meth:`BeamDecoder.decode` of every output, in order (``on_hypothesis``
    is called after each, e.g. to advance a progress bar)."""
    for out in outputs:
        hyp = decoder.decode(out)
        if on_hypothesis is not None:
            on_hypothesis()
        yield hyp


def beam_decode(exp, store, decoder: BeamDecoder, *, batch_size: int = 16, utts: Optional[Sequence[str]] = None,
                on_hypothesis: Optional[Callable[[], None]] = None) -> Iterator[Hypothesis]:
    """Beam-search hypotheses of every utterance of ``store`` (utt-id order)
    with the model of a loaded exp dir (:func:`asrkit.decode.exp.load_exp`)."""
    return decode_store(exp, store, decoder, batch_size=batch_size, utts=utts, on_hypothesis=on_hypothesis)


def decode_store(exp, store, decoder: Optional[BeamDecoder] = None, *, batch_size: int = 16,
                 utts: Optional[Sequence[str]] = None, save: Optional[str | os.PathLike] = None,
                 on_hypothesis: Optional[Callable[[], None]] = None, times: bool = False,
                 jobs: int = 1, max_frames: Optional[int] = None, batch_frames: Optional[int] = None,
                 clock=None, warps: Sequence[float] = ()) -> Iterator[Hypothesis]:
    """Hypotheses of every utterance of ``store`` (utt-id order): the beam
    search of ``decoder``, or greedy when it is None; with ``save`` the
    log-probabilities are also written to that folder (:func:`save_emissions`).

    ``times``: also place each token in time (:attr:`Hypothesis.token_frames`:
    greedy from its own best path, a beam hypothesis from the Viterbi
    alignment of its units). ``jobs > 1``: the searches run in that many
    worker processes (:mod:`asrkit.workers`, each with its own ``decoder``) while the
    model computes the next batches; results and their order are the same.
    ``max_frames``: longer utterances go through the model in pieces cut at pauses, their
    log-probabilities joined before the search (:mod:`asrkit.decode.longform`).
    ``batch_frames``: batches of that many padded frames instead of ``batch_size`` utterances;
    ``clock``: a :class:`~asrkit.decode.stopwatch.Stopwatch` for the features and forward time
    (:func:`~asrkit.decode.emissions.map_batches`). ``warps``: test-time VTLP
    (:func:`~asrkit.decode.emissions.iter_outputs`)."""
    from asrkit.decode.timing import output_frame_seconds

    outputs: Iterable[ModelOutput] = iter_outputs(
        exp.model, store, cmvn=exp.cmvn, norm_vars=exp.norm_vars, batch_size=batch_size, device=exp.device,
        utts=utts, input_dim=exp.input_dim, max_frames=max_frames, batch_frames=batch_frames, clock=clock,
        warps=warps)
    if save is not None:
        outputs = save_emissions(outputs, save, exp=exp, store=store)
    frame_seconds = output_frame_seconds((store.conf or {}).get("frame_shift"), exp.subsampling)
    yield from _timed_hypotheses(outputs, exp.units, decoder, frame_seconds, on_hypothesis, times, jobs)


def decode_emissions(saved, units: UnitMap, decoder: Optional[BeamDecoder] = None, *,
                     utts: Optional[Sequence[str]] = None, on_hypothesis: Optional[Callable[[], None]] = None,
                     times: bool = False, jobs: int = 1) -> Iterator[Hypothesis]:
    """:func:`decode_store` over saved emissions (``asrkit decode EXP EMISSIONS_DIR``): the same
    search (or greedy) and hypotheses, without the model. ``saved`` is a
    :class:`~asrkit.decode.emissions.SavedEmissions` (:func:`~asrkit.decode.emissions.open_saved_emissions`,
    checked to fit ``units``); word times use the frame shift and subsampling it recorded."""
    from asrkit.decode.timing import output_frame_seconds

    frame_seconds = output_frame_seconds(saved.frame_shift, saved.subsampling)
    yield from _timed_hypotheses(saved.outputs(utts), units, decoder, frame_seconds, on_hypothesis, times, jobs)


def _timed_hypotheses(outputs: Iterable[ModelOutput], units: UnitMap, decoder: Optional[BeamDecoder],
                      frame_seconds: float, on_hypothesis: Optional[Callable[[], None]], times: bool,
                      jobs: int) -> Iterator[Hypothesis]:
    for hyp in search_outputs(outputs, units, decoder, times=times, jobs=jobs):
        hyp.frame_seconds = frame_seconds
        if on_hypothesis is not None:
            on_hypothesis()
        yield hyp


def search_outputs(outputs: Iterable[ModelOutput], units: UnitMap, decoder: Optional[BeamDecoder] = None, *,
                   times: bool = False, jobs: int = 1) -> Iterator[Hypothesis]:
    """The hypothesis of every model output, in order: ``decoder``'s beam
    search or greedy (None); ``times`` and ``jobs`` as in :func:`decode_store`."""
    check_jobs(jobs)
    if jobs == 1:
        for out in outputs:
            yield _hypothesis(out, units, decoder, times)
        return
    with worker_pool(jobs, _init_search_worker, (units, decoder, times)) as pool:
        packed = ((o.utt, o.log_probs.numpy(), o.frames) for o in outputs)
        yield from pool.imap(_search_one, packed, chunksize=2)


def _rebuild_decoder(units: UnitMap, settings: dict) -> BeamDecoder:
    return BeamDecoder(units, **settings)


_WORKER: Optional[tuple] = None  # (units, decoder, times) in a search worker


def _init_search_worker(units: UnitMap, decoder: Optional[BeamDecoder], times: bool) -> None:
    global _WORKER
    _WORKER = (units, decoder, times)


def _search_one(item: tuple[str, np.ndarray, int]) -> Hypothesis:
    units, decoder, times = _WORKER  # type: ignore[misc]
    utt, lp, frames = item
    return _hypothesis(ModelOutput(utt, torch.from_numpy(lp), frames), units, decoder, times)


def _hypothesis(out: ModelOutput, units: UnitMap, decoder: Optional[BeamDecoder], times: bool) -> Hypothesis:
    from asrkit.decode.greedy import greedy_hypothesis
    from asrkit.decode.timing import best_path, token_spans, unit_segments

    if decoder is not None:
        hyp = decoder.decode(out)
    else:
        check_emissions(out)
        hyp = greedy_hypothesis(out, units, blank=units.blank_id)
    if times and hyp.token_frames is None:
        blank = int(units.blank_id or 0)
        if decoder is None:
            path = out.log_probs.argmax(-1)
        else:
            index = {u: i for i, u in enumerate(units.units)}
            path = best_path(out.log_probs, [index[u] for u in hyp.units], blank=blank, utt=out.utt)
        spans = token_spans(units, unit_segments(path, blank))
        if len(spans) != len(hyp.tokens):
            raise DataError(f"utterance {out.utt}: {len(hyp.tokens)} tokens but {len(spans)} placed in time; "
                            f"the units do not spell the hypothesis")
        hyp.token_frames = [(s, e) for _, s, e in spans]
    return hyp
