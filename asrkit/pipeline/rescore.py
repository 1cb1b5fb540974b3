"""N-best rescoring (``asrkit rescore``): the n-best lists of ``asrkit decode --nbest N`` re-ranked
with a language model, the best hypothesis of each utterance written in decode's formats.

Every hypothesis ``W`` of an utterance gets the new score

    score(W) = acoustic(W) + lm_weight * ln P_lm(W </s> | <s>) + length_bonus * |W|

(``|W|``: words; ``ln P_lm``: :mod:`asrkit.lm.scorer`, an ARPA / kenlm file or a neural LM exp dir)
and the highest wins (ties: the decoder's order). Rescoring *replaces* the LM the decoder may have
used, it does not stack a second one on it, so ``acoustic(W)`` is the decoder's score without its own
LM part, from the fields of the n-best entry:

- ``am_score`` when the entry has one (CTC beam searches: the CTC log-probability, without the
  decoder's LM and word bonus; and this module's own jsonl output, so rescoring a rescored file
  starts again from the acoustic scores);
- otherwise, when the entry has an ``lm_score`` (an attention search with ``--lm``: its score is
  ``(1 - c) att + c ctc + w lm + b |Y|``), ``score - w * lm_score``, with ``w`` the entry's
  ``lm_weight`` (which ``asrkit decode`` records next to ``lm_score``) or, for a file that does not
  record it, ``--decoder-lm-weight`` (the decode's ``--lm-weight``); the CTC weight and the
  decoder's length bonus stay in;
- otherwise ``score`` (an attention search without an LM, a CTC search without one).

A ``score`` of null (the attention search writes one for a hypothesis that could not finish) is
``-inf``: never chosen while another hypothesis scores.

    from asrkit.lm.scorer import open_sentence_lm
    from asrkit.pipeline.rescore import read_nbest, rescore_all
    lm = open_sentence_lm("exp/lm4.arpa")
    for hyp in rescore_all(read_nbest("exp/tf/nbest_test.jsonl"), lm, lm_weight=0.5, length_bonus=1.0):
        print(hyp.utt, hyp.text, hyp.score)
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional, Sequence

from asrkit.decode.output import Hypothesis
from asrkit.errors import DataError, InputError, UsageError, quote
from asrkit.io import display_name, iter_lines

__all__ = ["CHUNK", "Candidate", "NbestUtterance", "acoustic_score", "check_weights", "choose", "read_nbest",
           "rescore_all", "rescored_hypothesis", "score_candidates"]

#: Utterances whose hypotheses are sent to the LM together (a neural LM scores them in batches).
CHUNK = 64
_NINF = float("-inf")
_HOW = "expected the jsonl of 'asrkit decode --nbest N' (one JSON object per utterance)"


@dataclass
class Candidate:
    """One hypothesis of an n-best list.

    Attributes:
        hyp: its text (words separated by single spaces).
        words: ``hyp.split()``.
        decoder_score: the decoder's ``score`` (``-inf`` for null).
        am_score: the acoustic score (module docstring).
        lm_score: natural-log probability under the rescoring LM (None until scored).
    """

    hyp: str
    words: list[str]
    decoder_score: float
    am_score: float
    lm_score: Optional[float] = None

    def score(self, lm_weight: float, length_bonus: float) -> float:
        """The rescored score; ``-inf`` for a hypothesis without an acoustic score."""
        if self.lm_score is None:
            raise ValueError(f"hypothesis {self.hyp!r} has no LM score yet (score_candidates)")
        if self.am_score == _NINF:
            return _NINF
        return self.am_score + lm_weight * self.lm_score + length_bonus * len(self.words)


@dataclass
class NbestUtterance:
    """One line of an n-best jsonl file: the utterance and its hypotheses (the decoder's order)."""

    utt: str
    candidates: list[Candidate]
    frames: int = 0
    out_frames: int = 0
    best_hyp: str = ""  # the decoder's best (the line's "hyp")
    best_units: list[str] = field(default_factory=list)  # its units (the line's "units")
    line: int = 0


def _number(value: Any) -> Optional[float]:
    """A JSON number as float (null and -Infinity -> -inf); None when it is not a number, or NaN or
    +Infinity (which Python's json reads)."""
    if value is None:
        return _NINF
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return None if math.isnan(v) or v == float("inf") else v


def acoustic_score(entry: dict, decoder_lm_weight: Optional[float] = None, where: str = "") -> float:
    """The acoustic part of one n-best ``entry`` (the module docstring's rule). ``where`` prefixes
    error messages (``file:line: utterance U``)."""
    if "am_score" in entry:
        am = _number(entry["am_score"])
        if am is None:
            raise InputError(f"{where}: 'am_score' is not a number ({quote(entry['am_score'])})")
        if decoder_lm_weight is not None:
            raise UsageError(f"--decoder-lm-weight: {where}: the hypotheses carry 'am_score' (their score "
                             f"without the decoder's LM); drop --decoder-lm-weight")
        return am
    score = _number(entry.get("score"))
    if score is None:
        raise InputError(f"{where}: 'score' is not a number ({quote(entry.get('score'))})")
    if "lm_score" in entry:
        lm = _number(entry["lm_score"])
        if lm is None:
            raise InputError(f"{where}: 'lm_score' is not a number ({quote(entry['lm_score'])})")
        if "lm_weight" in entry:
            w = _number(entry["lm_weight"])
            if w is None or not math.isfinite(w) or w < 0:
                raise InputError(f"{where}: 'lm_weight' is not a finite number >= 0 ({quote(entry['lm_weight'])})")
            if decoder_lm_weight is not None and decoder_lm_weight != w:
                raise UsageError(f"--decoder-lm-weight {decoder_lm_weight:g}: {where}: the hypotheses record the "
                                 f"decoder's LM weight ('lm_weight': {w:g}); drop --decoder-lm-weight")
            decoder_lm_weight = w
        if decoder_lm_weight is None:
            raise UsageError(f"{where}: the hypotheses' scores include the decoder's LM ('lm_score') with a weight "
                             f"the file does not record; give it with --decoder-lm-weight W (the decode's "
                             f"--lm-weight) so that rescoring replaces that LM")
        if score == _NINF or lm == _NINF:
            return _NINF
        return score - decoder_lm_weight * lm
    if decoder_lm_weight is not None:
        raise UsageError(f"--decoder-lm-weight: {where}: the hypotheses have no decoder LM part ('lm_score'); "
                         f"drop --decoder-lm-weight")
    return score


def read_nbest(path: str | os.PathLike, decoder_lm_weight: Optional[float] = None) -> Iterator[NbestUtterance]:
    """The utterances of an n-best jsonl file (``-`` = stdin), as a stream, in file order.

    Bad input raises :class:`InputError` naming the file and line: a line that is not JSON or not an
    object with ``utt``, a line without an ``nbest`` list (decoded without ``--nbest``), an empty
    ``nbest``, an entry without ``hyp`` or ``score``, and a file without any line. An utterance
    listed twice raises :class:`DataError`."""
    name = display_name(path)
    seen: set[str] = set()
    for lineno, line in iter_lines(path):
        where = f"{name}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: not JSON ({e.msg}); {_HOW}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("utt"), str):
            raise InputError(f"{where}: not an object with an 'utt' string; {_HOW}")
        utt = obj["utt"]
        if "nbest" not in obj:
            raise InputError(f"{where}: utterance {utt} has no 'nbest' field; decode with --nbest N "
                             f"(asrkit decode EXP FEATS --nbest 20 > nbest.jsonl)")
        nbest = obj["nbest"]
        if not isinstance(nbest, list):
            raise InputError(f"{where}: utterance {utt}: 'nbest' is not a list; {_HOW}")
        if not nbest:
            raise InputError(f"{where}: utterance {utt}: 'nbest' is empty; nothing to rescore")
        if utt in seen:
            raise DataError(f"{where}: utterance {utt} is listed twice")
        seen.add(utt)
        cands = []
        for k, entry in enumerate(nbest, start=1):
            at = f"{where}: utterance {utt}, hypothesis {k}"
            if not isinstance(entry, dict) or not isinstance(entry.get("hyp"), str) or "score" not in entry:
                raise InputError(f"{at}: expected an object with 'hyp' (a string) and 'score'; {_HOW}")
            decoder = _number(entry["score"])
            if decoder is None:
                raise InputError(f"{at}: 'score' is not a number ({quote(entry['score'])})")
            words = entry["hyp"].split()
            cands.append(Candidate(" ".join(words), words, decoder, acoustic_score(entry, decoder_lm_weight, at)))
        units = obj.get("units")
        yield NbestUtterance(utt, cands, frames=_int(obj.get("frames")), out_frames=_int(obj.get("out_frames")),
                             best_hyp=" ".join(str(obj.get("hyp", "")).split()),
                             best_units=[str(u) for u in units] if isinstance(units, list) else [], line=lineno)
    if not seen:
        raise InputError(f"{name}: empty; {_HOW}")


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else 0


def score_candidates(utts: Sequence[NbestUtterance], lm) -> None:
    """Fill ``lm_score`` of every candidate of ``utts`` with one call of the LM
    (:class:`asrkit.lm.scorer.SentenceLM`), each distinct sentence scored once."""
    from asrkit.lm.scorer import score_unique

    cands = [c for u in utts for c in u.candidates]
    for c, s in zip(cands, score_unique(lm, [c.words for c in cands])):
        c.lm_score = float(s)


def choose(utt: NbestUtterance, lm_weight: float, length_bonus: float) -> tuple[int, list[float]]:
    """The index of the best candidate of ``utt`` (ties: the decoder's order) and every candidate's score."""
    scores = [c.score(lm_weight, length_bonus) for c in utt.candidates]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return best, scores


def _round(v: float) -> Optional[float]:
    return round(float(v), 4) if math.isfinite(v) else None


def rescored_hypothesis(utt: NbestUtterance, lm_weight: float, length_bonus: float) -> Hypothesis:
    """The best hypothesis of ``utt`` after rescoring, as decode's :class:`Hypothesis`.

    ``score`` is the new score; ``extra`` (the jsonl fields): ``am_score``, ``lm_score`` (the
    rescoring LM's natural log), ``decoder_score``, ``nbest_rank`` (1 = the decoder's best) and
    ``nbest``, the list re-ranked with the same fields (so the output rescores again). ``units`` are
    the line's when the decoder's best won, else empty (the n-best entries do not list units)."""
    best, scores = choose(utt, lm_weight, length_bonus)
    c = utt.candidates[best]
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    extra: dict[str, Any] = {
        "am_score": _round(c.am_score), "lm_score": _round(c.lm_score), "decoder_score": _round(c.decoder_score),
        "nbest_rank": best + 1,
        "nbest": [{"hyp": utt.candidates[i].hyp, "score": _round(scores[i]),
                   "am_score": _round(utt.candidates[i].am_score), "lm_score": _round(utt.candidates[i].lm_score),
                   "decoder_score": _round(utt.candidates[i].decoder_score)} for i in order],
    }
    units = list(utt.best_units) if c.hyp == utt.best_hyp else []
    return Hypothesis(utt=utt.utt, tokens=list(c.words), score=scores[best], frames=utt.frames,
                      out_frames=utt.out_frames, units=units, extra=extra)


def check_weights(lm_weight: float, length_bonus: float) -> None:
    """:class:`UsageError` for a negative or non-finite LM weight, a non-finite length bonus."""
    if not math.isfinite(lm_weight) or lm_weight < 0:
        raise UsageError(f"--lm-weight must be a finite number >= 0, got {lm_weight:g}")
    if not math.isfinite(length_bonus):
        raise UsageError(f"--length-bonus must be a finite number, got {length_bonus:g}")


def _chunks(utts: Iterable[NbestUtterance], n: int) -> Iterator[list[NbestUtterance]]:
    chunk: list[NbestUtterance] = []
    for u in utts:
        chunk.append(u)
        if len(chunk) >= n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def rescore_all(utts: Iterable[NbestUtterance], lm, lm_weight: float, length_bonus: float = 0.0,
                chunk: int = CHUNK) -> Iterator[Hypothesis]:
    """The rescored best hypothesis of every utterance of ``utts`` (in order), the LM called once per
    ``chunk`` utterances."""
    check_weights(lm_weight, length_bonus)
    for part in _chunks(utts, chunk):
        score_candidates(part, lm)
        for u in part:
            yield rescored_hypothesis(u, lm_weight, length_bonus)
