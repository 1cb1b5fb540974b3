"""CTC beam search, with or without a word n-gram LM.

    from asrkit.decode import load_exp, beam_decode, BeamDecoder
    exp = load_exp("exp/ctc", device="cpu")
    with BeamDecoder(exp.units, beam=20, lm="exp/lm3.arpa", lm_weight=0.5, word_bonus=1.5, nbest=5) as dec:
        for hyp in beam_decode(exp, FeatureStore("feats/test"), dec):
            print(hyp.utt, hyp.text, hyp.score, hyp.extra["nbest"])

Two searches behind one :class:`BeamDecoder`:

- **with an LM** (char and bpe models): pyctcdecode's CTC prefix beam search
  fused with a kenlm word n-gram model (shallow fusion). The decoder's
  alphabet is built from the model's units: ``<blank>`` -> the CTC blank,
  ``|`` (char) -> the space between words, sentencepiece ``▁`` pieces (bpe)
  start a word, ``<unk>`` -> pyctcdecode's unknown token. The word list that
  guides partial words is the ARPA file's unigrams (``<s>``, ``</s>`` and
  ``<unk>`` left out). A hypothesis ``W`` is ranked by
  ``log P_ctc(W) + lm_weight * ln P_lm(W </s>) + word_bonus * |W|``
  (natural log; words missing from the LM get an extra -10).
- **without an LM** (any unit kind): the prefix beam search of
  :func:`asrkit.nn.search.ctc_prefix_beam_search_nbest`, ranked by
  ``log P_ctc`` summed over the alignments kept in the beam.

Phone models with a word LM need a lexicon-constrained decoder, which is not
part of this module: :class:`BeamDecoder` refuses that combination with a
:class:`UsageError`.

Scores in a :class:`Hypothesis`: ``score`` is the ranking score above;
``extra["am_score"]`` the CTC (acoustic) part; with ``nbest=N``
``extra["nbest"]`` lists the ``nbest`` best ``{"hyp", "score", "am_score"}``,
best first (fewer when the beam holds fewer distinct hypotheses).

Saved emissions (``asrkit decode --save-emissions DIR``, :func:`save_emissions`)
are a feature store (:mod:`asrkit.data.feature_store`) of the model's
``(T', C)`` log-probabilities, one "feature" row per output frame, plus
``emissions.json`` (exp dir, checkpoint, unit kind, classes, subsampling,
source store), ``utt2frames`` (input frames per utterance) and the source
store's ``text``/``utt2spk``. :func:`load_emissions` reads them back as
:class:`ModelOutput`, so a search can be rerun (e.g. with other LM weights)
without the model::

    for hyp in beam_hypotheses(load_emissions("exp/ctc/emissions_dev"), decoder): ...
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch

from asrkit.decode.emissions import ModelOutput, iter_outputs
from asrkit.decode.output import Hypothesis
from asrkit.decode.units import BLANK, UnitMap
from asrkit.errors import DataError, InputError, UsageError
from asrkit.io import atomic_write, display_name

__all__ = [
    "BACKENDS", "DEFAULT_LM_BACKEND", "DEFAULT_WORD_BONUS_FLASHLIGHT", "resolve_backend", "read_word_list", "DEFAULT_BEAM", "DEFAULT_LM_WEIGHT", "DEFAULT_WORD_BONUS", "BeamDecoder", "beam_decode",
    "beam_hypotheses", "check_emissions", "decode_store", "load_emissions", "read_arpa_unigrams",
    "save_emissions",
]

#: Beam width when ``--lm`` or ``--nbest`` is given without ``--beam``.
DEFAULT_BEAM = 20
#: Weight of the LM's natural-log probability (pyctcdecode's ``alpha``).
DEFAULT_LM_WEIGHT = 0.5
#: Score added per word (pyctcdecode's ``beta``).
DEFAULT_WORD_BONUS = 1.5
#: Score added per word with the flashlight backend (its lexicon already keeps
#: out non-words, which pyctcdecode's bonus partly makes up for).
DEFAULT_WORD_BONUS_FLASHLIGHT = 0.0
#: Without an LM, classes more than this far (log) below a frame's best are not expanded.
NO_LM_PRUNE = 10.0

#: Search backends: flashlight (lexicon-constrained, word LM; any CTC units), pyctcdecode (open
#: vocabulary, word LM; char and bpe), plain (prefix beam search without an LM; any CTC units).
BACKENDS = ("flashlight", "pyctcdecode", "plain")
#: The backend used with an LM when --backend is not given: flashlight for every unit kind
#: (benchmarks/decode_bench.py: on the same emissions and LM it is faster than pyctcdecode at equal or lower
#: WER, and it is the one that decodes phone models to words).
DEFAULT_LM_BACKEND = "flashlight"


def resolve_backend(kind: str, has_lm: bool, backend: Optional[str] = None) -> str:
    """The search backend for ``kind`` units: ``backend`` checked, or the
    default (``plain`` without an LM, :data:`DEFAULT_LM_BACKEND` with one)."""
    if backend is None:
        return DEFAULT_LM_BACKEND if has_lm else "plain"
    if backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    if backend == "plain" and has_lm:
        raise UsageError("--backend plain searches without an LM; drop --lm or use flashlight / pyctcdecode")
    if backend != "plain" and not has_lm:
        raise UsageError(f"--backend {backend} fuses a word LM into the search; give one with --lm LM.arpa")
    if backend == "pyctcdecode" and kind == "phone":
        raise UsageError("pyctcdecode cannot decode a phone model to words; use --backend flashlight "
                         "(lexicon-constrained, the default with --lm)")
    return backend


_SPECIAL_WORDS = {"<s>", "</s>", "<unk>"}
_WARNED_MISSING: set[tuple[str, str]] = set()
_PCD_UNK = "⁇"  # pyctcdecode's unknown token in decoded text
_KENLM_BINARY_MAGIC = b"mmap lm "
_MAX_LISTED = 10


def check_emissions(out: ModelOutput) -> None:
    """Raise :class:`DataError` when an utterance's log-probabilities hold NaN."""
    if torch.isnan(out.log_probs).any():
        bad = int(torch.isnan(out.log_probs).any(dim=-1).nonzero()[0, 0])
        raise DataError(f"utterance {out.utt}: the model's output is NaN (first at output frame {bad} of "
                        f"{out.out_frames}); the checkpoint or the features are broken (check them for NaN/inf)")


def read_arpa_unigrams(path: str | os.PathLike) -> list[str]:
    """The words of an ARPA file's ``\\1-grams:`` section, in file order,
    without ``<s>``, ``</s>`` and ``<unk>``. Streams the file (stops at the
    next section). Missing, unreadable or non-ARPA files raise :class:`InputError`."""
    name = display_name(path)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{name}: no such file" if not p.exists() else f"{name}: is not a file")
    words: list[str] = []
    seen_data = in_unigrams = False
    try:
        with open(p, encoding="utf-8") as f:
            for lineno, raw in enumerate(f, start=1):
                line = raw.strip()
                if line == "\\data\\":
                    seen_data = True
                elif line == "\\1-grams:":
                    in_unigrams = True
                elif in_unigrams and (line.startswith("\\") or not line):
                    if line:
                        break
                elif in_unigrams:
                    fields = line.split()
                    if len(fields) < 2:
                        raise InputError(f"{name}:{lineno}: malformed 1-gram line")
                    if fields[1] not in _SPECIAL_WORDS:
                        words.append(fields[1])
    except UnicodeDecodeError:
        raise InputError(f"{name}: not UTF-8 text; the beam decoder needs the ARPA file (its word list), "
                         f"not a kenlm binary") from None
    except OSError as e:
        raise InputError(f"{name}: cannot read: {e.strerror or e}") from None
    if not seen_data or not in_unigrams:
        raise InputError(f"{name}: no \\data\\ header or \\1-grams: section; is this an ARPA file?")
    if not words:
        raise InputError(f"{name}: the ARPA file has no words besides <s>, </s>, <unk>")
    return words


def _is_kenlm_binary(path: Path) -> bool:
    """True when ``path`` starts with kenlm's binary magic (unreadable files: False; loading says why)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(_KENLM_BINARY_MAGIC)) == _KENLM_BINARY_MAGIC
    except OSError:
        return False


def read_word_list(path: str | os.PathLike) -> list[str]:
    """The words of a word list or lexicon file: the first field of every
    line (``word``, ``word phone ...``, CMU ``word(2) ...``), in file order,
    once each; ``#`` / ``;;;`` comment lines and blank lines skipped."""
    from asrkit.io import iter_lines

    words: dict[str, None] = {}
    for _lineno, line in iter_lines(path):  # InputError for missing / unreadable / not UTF-8
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";;;")):
            continue
        w = re.sub(r"\(\d+\)$", "", fields[0])
        if w not in _SPECIAL_WORDS:
            words[w] = None
    if not words:
        raise InputError(f"{display_name(path)}: no words")
    return list(words)


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
    log.warn(f"{lm_name}: {len(bad_words)} of {len(words)} LM words use symbols the model's units lack "
             f"({shown}); the decoder cannot produce them")


class BeamDecoder:
    """CTC beam search over one utterance's log-probabilities at a time.

    Args:
        units: the model's :class:`UnitMap` (kind phone, char or bpe).
        beam: beam width (hypotheses kept per frame).
        lm: an ARPA word n-gram model (order >= 2), or None for a plain beam.
        lm_weight, word_bonus: shallow-fusion weights (only with ``lm``).
        nbest: list this many best hypotheses in ``extra["nbest"]`` (``<= beam``);
            None lists none.

    Raises :class:`UsageError` for bad settings or a phone model with an LM,
    :class:`InputError` for a missing/unreadable LM, :class:`DataError` when
    the LM's words do not fit the units. Call :meth:`close` (or use ``with``)
    to release the LM.
    """

    def __init__(self, units: UnitMap, *, beam: int = DEFAULT_BEAM, lm: Optional[str | os.PathLike] = None,
                 lm_weight: float = DEFAULT_LM_WEIGHT, word_bonus: Optional[float] = None,
                 nbest: Optional[int] = None, backend: Optional[str] = None,
                 lexicon: Optional[str | os.PathLike] = None):
        if beam < 1:
            raise UsageError(f"--beam must be >= 1, got {beam}")
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
        self.units = units
        self._unit_set = set(units.units)
        self.beam = int(beam)
        self.nbest = None if nbest is None else int(nbest)
        self.lm_path = None if lm is None else Path(lm)
        self.lexicon_path = None if lexicon is None else Path(lexicon)
        if word_bonus is None:
            word_bonus = DEFAULT_WORD_BONUS_FLASHLIGHT if self.backend == "flashlight" else DEFAULT_WORD_BONUS
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
        ``kenlm.Model``. The vocabulary is the
        ``--lexicon`` file's words when given, else the ARPA unigrams (a kenlm
        binary has no readable word list: phone models then use the whole
        tokenizer lexicon, char/bpe models need ``--lexicon``)."""
        import kenlm

        from asrkit.lm import load_kenlm

        name = display_name(path)
        model = load_kenlm(path)  # InputError for missing / unreadable / not an LM; stderr kept clean
        if not isinstance(model, kenlm.Model):
            raise DataError(f"{name}: is a unigram LM; the beam decoder needs order >= 2 "
                            f"(asrkit lm build TEXT --order 3)")
        lexicon = None
        if self.units.kind == "phone":
            if self.lexicon_path is not None:
                from asrkit.data.lexicon import Lexicon
                lexicon = Lexicon.load(self.lexicon_path)  # InputError when missing / malformed
            else:
                lexicon = self.units.tokenizer.lexicon
        if self.lexicon_path is not None:
            words = lexicon.words() if lexicon is not None else read_word_list(self.lexicon_path)
        elif not _is_kenlm_binary(path):
            words = read_arpa_unigrams(path)
        elif lexicon is not None:
            words = lexicon.words()
        else:
            raise InputError(f"{name}: is a kenlm binary, which has no readable word list; give the words with "
                             f"--lexicon FILE (one word per line, or a lexicon), or decode with the ARPA file")
        if self.units.kind == "phone" and self.lexicon_path is None and not _is_kenlm_binary(path):
            missing = [w for w in words if w not in lexicon]
            key = (str(path.resolve()), self.units.source)
            if missing and key not in _WARNED_MISSING:  # once per LM and model in a process (tune builds many)
                _WARNED_MISSING.add(key)
                from asrkit import log
                from asrkit.data.lexicon import list_words
                log.warn(f"{name}: {len(missing)} of {len(words)} LM words have no pronunciation in "
                         f"{self.units.source.rsplit('/', 1)[0]}'s lexicon and cannot be decoded: "
                         f"{list_words(missing)} (add them with --lexicon FILE)")
        return list(words), lexicon, model

    def _build_flashlight(self, path: Path):
        from asrkit.decode.flashlight import FlashlightSearch
        from asrkit.lm.ppl import _silenced_stderr_fd

        words, lexicon, model = self._lm_words(path)
        del model  # flashlight loads the file with its own kenlm
        if self.units.kind != "phone":
            _check_lm_units(self.units, words, display_name(self.lexicon_path or path))
        lexicon_name = display_name(self.lexicon_path) if self.lexicon_path else "the model's lexicon"
        with _silenced_stderr_fd():  # kenlm's loading chatter
            return FlashlightSearch(self.units, path, words, lexicon=lexicon, lexicon_name=lexicon_name,
                                    beam=self.beam, lm_weight=self.lm_weight, word_bonus=self.word_bonus,
                                    nbest=self.nbest)

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
        check_emissions(out)
        spans = None
        if out.out_frames == 0:  # nothing to search (pyctcdecode would average an empty array)
            cands = [([], [], 0.0, 0.0)]
        elif self._search is not None:
            found = self._search.search(out.log_probs)
            cands = [(w, self.units.symbols(ids), sc, am) for w, ids, sc, am, _ in found]
            if len(found[0][4]) == len(found[0][0]):  # the search's own word times
                spans = found[0][4]
        elif self._decoder is not None:
            cands = self._decode_lm(out)
        else:
            cands = self._decode_plain(out)
        tokens, units, score, am = cands[0]
        extra: dict = {"am_score": round(am, 4)}
        if self.nbest is not None:
            extra["nbest"] = [{"hyp": " ".join(t), "score": round(s, 4), "am_score": round(a, 4)}
                              for t, _, s, a in cands[:self.nbest]]
        return Hypothesis(utt=out.utt, tokens=tokens, score=score, frames=out.frames, out_frames=out.out_frames,
                          units=units, extra=extra, token_frames=spans)

    def _decode_plain(self, out: ModelOutput) -> list[tuple[list[str], list[str], float, float]]:
        from asrkit.nn.search import ctc_prefix_beam_search_nbest

        beams = ctc_prefix_beam_search_nbest(out.log_probs, beam=self.beam, blank=int(self.units.blank_id),
                                             prune=NO_LM_PRUNE)
        return [(self.units.tokens(ids), self.units.symbols(ids), float(s), float(s)) for ids, s in beams]

    def _decode_lm(self, out: ModelOutput) -> list[tuple[list[str], list[str], float, float]]:
        logits = out.log_probs.numpy().astype(np.float32, copy=False)  # (T', C)
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
                 jobs: int = 1) -> Iterator[Hypothesis]:
    """Hypotheses of every utterance of ``store`` (utt-id order): the beam
    search of ``decoder``, or greedy when it is None; with ``save`` the
    log-probabilities are also written to that folder (:func:`save_emissions`).

    ``times``: also place each token in time (:attr:`Hypothesis.token_frames`:
    greedy from its own best path, a beam hypothesis from the Viterbi
    alignment of its units). ``jobs > 1``: the searches run in that many
    worker processes (forked, each with a copy of ``decoder``) while the
    model computes the next batches; results and their order are the same."""
    from asrkit.decode.timing import output_frame_seconds

    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    outputs: Iterable[ModelOutput] = iter_outputs(
        exp.model, store, cmvn=exp.cmvn, norm_vars=exp.norm_vars, batch_size=batch_size, device=exp.device,
        utts=utts, input_dim=exp.input_dim)
    if save is not None:
        outputs = save_emissions(outputs, save, exp=exp, store=store)
    frame_seconds = output_frame_seconds((store.conf or {}).get("frame_shift"), exp.subsampling)
    for hyp in search_outputs(outputs, exp.units, decoder, times=times, jobs=jobs):
        hyp.frame_seconds = frame_seconds
        if on_hypothesis is not None:
            on_hypothesis()
        yield hyp


def search_outputs(outputs: Iterable[ModelOutput], units: UnitMap, decoder: Optional[BeamDecoder] = None, *,
                   times: bool = False, jobs: int = 1) -> Iterator[Hypothesis]:
    """The hypothesis of every model output, in order: ``decoder``'s beam
    search or greedy (None); ``times`` and ``jobs`` as in :func:`decode_store`."""
    global _WORKER
    if jobs <= 1:
        for out in outputs:
            yield _hypothesis(out, units, decoder, times)
        return
    import multiprocessing as mp

    _WORKER = (units, decoder, times)  # inherited by the forked workers
    try:
        with mp.get_context("fork").Pool(jobs, initializer=_worker_init) as pool:
            packed = ((o.utt, o.log_probs.numpy(), o.frames) for o in outputs)
            yield from pool.imap(_worker_search, packed, chunksize=2)
    finally:
        _WORKER = None


_WORKER: Optional[tuple] = None


def _worker_init() -> None:
    torch.set_num_threads(1)


def _worker_search(item: tuple[str, np.ndarray, int]) -> Hypothesis:
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


# -- saved emissions ---------------------------------------------------------------------------------

EMISSIONS_META = "emissions.json"
UTT2FRAMES = "utt2frames"


def _prepare_emissions_dir(path: Path) -> None:
    """Make ``path`` ready for a new emissions store: created if missing; an
    earlier emissions store there is replaced; anything else is refused."""
    from asrkit.data.feature_store import INDEX

    if path.exists() and not path.is_dir():
        raise UsageError(f"--save-emissions {path}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not (path / EMISSIONS_META).is_file():
            raise UsageError(f"--save-emissions {path}: folder exists and does not hold saved emissions; "
                             f"give a new or empty folder")
        (path / INDEX).unlink(missing_ok=True)  # first, so a half-rewritten store never looks complete
        for child in path.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    path.mkdir(parents=True, exist_ok=True)


def save_emissions(outputs: Iterable[ModelOutput], path: str | os.PathLike, *, exp=None,
                   store=None) -> Iterator[ModelOutput]:
    """Pass ``outputs`` through while writing them to the emissions store
    ``path`` (see the module docstring); the store is complete (has its
    ``index.tsv``) only once every output went through. ``exp`` (a
    :class:`~asrkit.decode.exp.LoadedExp`) and ``store`` (the source
    :class:`~asrkit.data.FeatureStore`) fill ``emissions.json`` and the copied
    ``text`` / ``utt2spk``."""
    from asrkit.data.feature_store import ShardWriter, merge_shards
    from asrkit.data.table import write_table

    out_dir = Path(path)
    _prepare_emissions_dir(out_dir)
    utt2spk = store.utt2spk if store is not None else {}
    frames: dict[str, str] = {}
    with ShardWriter(out_dir, 0) as writer:  # an exception (or an abandoned generator) drops the partial shard
        for out in outputs:
            writer.add(out.utt, utt2spk.get(out.utt, out.utt), out.log_probs.numpy())
            frames[out.utt] = str(out.frames)
            yield out
    write_table(out_dir / UTT2FRAMES, frames)
    if store is not None:
        text = store.text
        if text is not None:
            write_table(out_dir / "text", {u: t for u, t in text.items() if u in frames})
        write_table(out_dir / "utt2spk", {u: utt2spk.get(u, u) for u in frames})
    meta = {"kind": "ctc-log-probs", "utterances": len(frames)}
    if exp is not None:
        meta.update({"exp": str(Path(exp.path).resolve()), "checkpoint": str(Path(exp.checkpoint).resolve()),
                     "units": exp.units.kind,
                     "num_classes": exp.units.num_classes, "subsampling": exp.subsampling})
    if store is not None:
        meta["feats"] = str(store.path)
    with atomic_write(out_dir / EMISSIONS_META) as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    merge_shards(out_dir, 1)  # writes index.tsv last


def load_emissions(path: str | os.PathLike, utts: Optional[Sequence[str]] = None) -> Iterator[ModelOutput]:
    """The :class:`ModelOutput` of every utterance saved by
    :func:`save_emissions` (utt-id order, or those of ``utts``)."""
    from asrkit.data import FeatureStore
    from asrkit.data.table import read_table

    p = Path(path)
    if not (p / EMISSIONS_META).is_file():
        raise InputError(f"{p}: no {EMISSIONS_META}; not a folder written by 'asrkit decode --save-emissions'")
    fs = FeatureStore(p)  # InputError when incomplete
    frames = read_table(p / UTT2FRAMES) if (p / UTT2FRAMES).is_file() else {}
    for u in (fs.keys() if utts is None else utts):
        if u not in fs:
            raise DataError(f"{p}: has no emissions for utterance {u}")
        lp = torch.from_numpy(np.array(fs[u], dtype=np.float32))  # (T', C), a copy off the memory map
        yield ModelOutput(u, lp, int(frames.get(u, lp.shape[0])))
